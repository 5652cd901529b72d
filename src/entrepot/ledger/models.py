"""Ledger tables: accounts, journals, fiscal years and periods, entries and lines, rates.

Journal lines carry their entry's date, and the functional debit/credit, so
every report is one aggregate over `ledger_journal_lines` (GROUP BY in SQL)
served by a covering index, never a walk over lines in Python.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from entrepot.db.base import Base, HasId, TenantOwned, Timestamps, Versioned


class DecimalText(TypeDecorator[Decimal]):
    """An exact decimal kept as text: exchange rates need more places than money's
    4-place storage (1 JPY = 0.006712 USD), and rates are never summed in SQL."""

    impl = String(40)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else format(Decimal(value), "f")

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else Decimal(value)


class Account(TenantOwned, HasId, Timestamps, Versioned, Base):
    """An account of the chart. `role` marks the one account a posting rule uses
    for receivables, inventory, COGS, …; at most one active account per role."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        Index("ix_ledger_accounts_tenant_id_role", "tenant_id", "role"),
    )
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20))  # asset | liability | equity | income | expense
    role: Mapped[str | None] = mapped_column(String(40))
    archived: Mapped[bool] = mapped_column(Boolean, default=False)


class Journal(TenantOwned, HasId, Timestamps, Base):
    """A book of entries with its own gapless numbering (sales, purchases, cash, inventory, general)."""

    __tablename__ = "ledger_journals"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(10))


class FiscalYear(TenantOwned, HasId, Timestamps, Base):
    __tablename__ = "ledger_fiscal_years"
    __table_args__ = (UniqueConstraint("tenant_id", "year"),)
    year: Mapped[int] = mapped_column(Integer)
    starts_on: Mapped[date]
    ends_on: Mapped[date]


class Period(TenantOwned, HasId, Timestamps, Versioned, Base):
    """A month of a fiscal year. Closed periods refuse postings (states.PERIOD)."""

    __tablename__ = "ledger_periods"
    __table_args__ = (
        UniqueConstraint("tenant_id", "year", "month"),
        Index("ix_ledger_periods_tenant_id_starts_on", "tenant_id", "starts_on"),
    )
    fiscal_year_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_fiscal_years.id"))
    year: Mapped[int] = mapped_column(Integer)
    month: Mapped[int] = mapped_column(Integer)
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    state: Mapped[str] = mapped_column(String(20), default="open")
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(200))


class JournalEntry(TenantOwned, HasId, Base):
    """A posted entry. Insert-only: a correction is a new entry with `reversal_of`."""

    __tablename__ = "ledger_journal_entries"
    __table_args__ = (
        UniqueConstraint("tenant_id", "journal_id", "number"),
        # one reversal per entry; partial: most entries reverse nothing, and a posting then
        # pays no insert into this index (NULLs would be distinct, but still indexed)
        Index("uq_ledger_journal_entries_tenant_id_reversal_of_id", "tenant_id", "reversal_of_id", unique=True,
              postgresql_where=text("reversal_of_id IS NOT NULL"), sqlite_where=text("reversal_of_id IS NOT NULL")),
        Index("ix_ledger_journal_entries_tenant_id_source", "tenant_id", "source_type", "source_id"),
        Index("ix_ledger_journal_entries_tenant_id_entry_date", "tenant_id", "entry_date"),
    )
    journal_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_journals.id"))
    number: Mapped[str] = mapped_column(String(40))  # "SAL-000123"; "~<id>" until its transaction commits
    entry_date: Mapped[date]
    period_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_periods.id"))
    description: Mapped[str] = mapped_column(String(500), default="")
    source_type: Mapped[str] = mapped_column(String(40))
    source_id: Mapped[uuid.UUID | None]
    reversal_of_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_journal_entries.id"))
    currency: Mapped[str] = mapped_column(String(3))  # the document's currency
    rate: Mapped[Decimal] = mapped_column(DecimalText)  # document → functional, on entry_date
    total: Mapped[Decimal]  # functional debits (= credits)
    state: Mapped[str] = mapped_column(String(20), default="posted")
    posted_at: Mapped[datetime]
    posted_by: Mapped[str] = mapped_column(String(200))


class JournalLine(TenantOwned, Base):
    """One side of an entry. `debit`/`credit` are in the functional currency;
    `amount` is the signed document-currency amount (+ debit, − credit).

    A line is its entry's line number: the key is (tenant, entry, line_no), which also
    serves reading an entry's lines, so a posted line costs one index entry fewer than
    an id of its own (and a billing run writes a million of them). On SQLite the table is
    that key's b-tree (WITHOUT ROWID): one b-tree written per line instead of two."""

    __tablename__ = "ledger_journal_lines"
    __table_args__ = (
        # covering index of the trial balance / P&L: GROUP BY account over a date range
        Index("ix_ledger_journal_lines_tenant_id_account_id_entry_date", "tenant_id", "account_id",
              "entry_date", "debit", "credit"),
        # aging and statements, covering; partial: most lines (revenue, COGS, cash) have no party
        Index("ix_ledger_journal_lines_tenant_id_party_id_account_id", "tenant_id", "party_id",
              "account_id", "entry_date", "due_on", "debit", "credit", postgresql_where=text("party_id IS NOT NULL"),
              sqlite_where=text("party_id IS NOT NULL")),
        {"sqlite_with_rowid": False},
    )
    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    entry_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_journal_entries.id"), primary_key=True)
    line_no: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    account_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ledger_accounts.id"))
    entry_date: Mapped[date]
    debit: Mapped[Decimal]
    credit: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal]
    party_id: Mapped[uuid.UUID | None]
    product_id: Mapped[uuid.UUID | None]
    due_on: Mapped[date | None]
    description: Mapped[str] = mapped_column(String(500), default="")


class ExchangeRate(TenantOwned, HasId, Timestamps, Versioned, Base):
    """1 unit of `currency` = `rate` units of the tenant's functional currency, from `valid_on`."""

    __tablename__ = "ledger_exchange_rates"
    __table_args__ = (UniqueConstraint("tenant_id", "currency", "valid_on"),)
    currency: Mapped[str] = mapped_column(String(3))
    valid_on: Mapped[date]
    rate: Mapped[Decimal] = mapped_column(DecimalText)
