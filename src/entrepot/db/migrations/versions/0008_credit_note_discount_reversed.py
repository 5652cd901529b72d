"""credit notes keep the early-payment discount the goods they credit had earned, taken back

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29 21:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import entrepot.db.types

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("credit_notes") as batch:
        batch.add_column(sa.Column("discount_reversed", entrepot.db.types.Exact(precision=20, scale=4),
                                   nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("credit_notes") as batch:
        batch.drop_column("discount_reversed")
