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

# What a note paid back before it kept it: the receivable (customer) legs of its refund entries, in
# the note's currency (the lines' `amount`; a refund is never reversed by hand: it touches a control account).
_BACKFILL = """
UPDATE credit_notes SET refunded = (
    SELECT COALESCE(SUM(l.amount), 0)
    FROM ledger_journal_entries e
    JOIN ledger_journal_lines l ON l.tenant_id = e.tenant_id AND l.entry_id = e.id
    WHERE e.tenant_id = credit_notes.tenant_id AND e.source_type = 'customer_refund'
      AND e.source_id = credit_notes.id AND e.reversal_of_id IS NULL
      AND l.party_id IS NOT NULL AND l.debit > 0)
WHERE EXISTS (
    SELECT 1 FROM ledger_journal_entries e
    WHERE e.tenant_id = credit_notes.tenant_id AND e.source_type = 'customer_refund'
      AND e.source_id = credit_notes.id)
"""
_TABLES = ("credit_notes", "ledger_journal_entries", "ledger_journal_lines")


def upgrade() -> None:
    with op.batch_alter_table("credit_notes") as batch:
        batch.add_column(sa.Column("refunded", entrepot.db.types.Exact(precision=20, scale=4),
                                   nullable=False, server_default="0"))
    # Notes refunded before this revision: without it they would show `refunded` 0.00 beside the
    # money paid out. On PostgreSQL the tables' forced row-level security would hide every row from
    # the owner running this; it is lifted for the statement and forced again after it.
    conn = op.get_bind()
    forced: list[str] = []
    if conn.dialect.name == "postgresql":
        forced = list(conn.execute(sa.text(
            "SELECT relname FROM pg_class WHERE relname = ANY(:t) AND relforcerowsecurity"),
            {"t": list(_TABLES)}).scalars())
        for table in forced:
            op.execute(f'ALTER TABLE "{table}" NO FORCE ROW LEVEL SECURITY')
    op.execute(_BACKFILL)
    for table in forced:
        op.execute(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY')


def downgrade() -> None:
    with op.batch_alter_table("credit_notes") as batch:
        batch.drop_column("refunded")
