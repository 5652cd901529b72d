"""lots remember the expiry they were announced for

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 05:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inventory_lots") as batch:
        batch.add_column(sa.Column("expiry_warned_for", sa.Date(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inventory_lots") as batch:
        batch.drop_column("expiry_warned_for")
