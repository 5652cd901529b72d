"""sales order lines keep what was returned before it was invoiced

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 06:45:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import entrepot.db.types

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sales_order_lines") as batch:
        batch.add_column(sa.Column("quantity_returned_unbilled", entrepot.db.types.Exact(precision=20, scale=4),
                                   nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("sales_order_lines") as batch:
        batch.drop_column("quantity_returned_unbilled")
