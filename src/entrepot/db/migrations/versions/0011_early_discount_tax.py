"""an early-payment discount may reduce the tax due (tenant setting early_discount_reduces_tax): the
tax part of each discount taken, and of each one a credit note takes back, is kept

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 00:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import entrepot.db.types

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (("invoices", "discount_tax"), ("payments", "discount_tax"), ("payment_allocations", "discount_tax"),
            ("credit_notes", "discount_tax_reversed"))


def upgrade() -> None:
    for table, column in _COLUMNS:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column(column, entrepot.db.types.Exact(precision=20, scale=4),
                                       nullable=False, server_default="0"))


def downgrade() -> None:
    for table, column in reversed(_COLUMNS):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
