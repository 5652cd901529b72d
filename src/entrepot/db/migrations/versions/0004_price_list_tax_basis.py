"""price lists may keep their prices on the other tax basis than the tenant's

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 09:30:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pricing_price_lists") as batch:
        batch.add_column(sa.Column("prices_include_tax", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pricing_price_lists") as batch:
        batch.drop_column("prices_include_tax")
