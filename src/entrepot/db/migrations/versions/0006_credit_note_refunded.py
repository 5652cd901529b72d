"""credit notes keep what was paid back to the customer

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 19:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import entrepot.db.types

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("credit_notes") as batch:
        batch.add_column(sa.Column("refunded", entrepot.db.types.Exact(precision=20, scale=4),
                                   nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("credit_notes") as batch:
        batch.drop_column("refunded")
