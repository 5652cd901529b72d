"""API shapes of the ledger. Money in and out is a decimal string; inputs also take numbers."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from entrepot.kernel.money import InvalidAmount, to_decimal


def _decimal(value: Any) -> Decimal:
    try:
        return to_decimal(value)
    except InvalidAmount as exc:
        raise ValueError(str(exc)) from exc


DecimalIn = Annotated[Decimal, BeforeValidator(_decimal)]


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AccountCreate(Input):
    code: str = Field(min_length=1, max_length=20)
    name: str = Field(min_length=1, max_length=200)
    type: str = Field(description="asset, liability, equity, income or expense")
    role: str | None = Field(default=None, description="posting role, e.g. receivable, cogs, cash")


class AccountUpdate(Input):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    role: str | None = None
    archived: bool | None = None


class AccountRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    code: str
    name: str
    type: str
    role: str | None
    archived: bool
    control: bool = Field(default=False, description="touched only by its subledger; refused in manual entries")
    version: int


class JournalRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    code: str
    name: str
    prefix: str


class PeriodCreate(Input):
    year: int = Field(ge=1900, le=2999)
    month: int = Field(ge=1, le=12)


class PeriodRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    year: int
    month: int
    starts_on: dt.date
    ends_on: dt.date
    state: str
    closed_at: dt.datetime | None
    closed_by: str | None
    allowed_actions: list[str] = []


class ExchangeRateCreate(Input):
    currency: str = Field(min_length=3, max_length=3)
    date: dt.date
    rate: DecimalIn = Field(description="1 unit of `currency` in the functional currency")


class ExchangeRateRead(BaseModel):
    id: uuid.UUID
    currency: str
    date: dt.date
    rate: str


class ExchangeRateImport(Input):
    csv: str = Field(description="rows of currency,date,rate (header optional)")


class ExchangeRateImported(BaseModel):
    imported: int
    items: list[ExchangeRateRead]


class JournalLineCreate(Input):
    account_code: str | None = None
    account_id: uuid.UUID | None = None
    debit: DecimalIn = Decimal(0)
    credit: DecimalIn = Decimal(0)
    description: str = Field(default="", max_length=500)
    party_id: uuid.UUID | None = None
    product_id: uuid.UUID | None = None


class JournalEntryCreate(Input):
    date: dt.date
    description: str = Field(default="", max_length=500)
    currency: str | None = Field(default=None, description="default: the functional currency")
    journal: str = "general"
    lines: list[JournalLineCreate] = Field(min_length=2, max_length=1000)


class JournalEntryReverse(Input):
    date: dt.date | None = Field(default=None, description="default: the original entry's date")
    description: str | None = Field(default=None, max_length=500)


class JournalLineRead(BaseModel):
    line_no: int
    account_id: uuid.UUID
    account_code: str
    account_name: str
    debit: str
    credit: str
    currency: str
    amount: str
    party_id: uuid.UUID | None
    product_id: uuid.UUID | None
    due_on: dt.date | None
    description: str


class JournalEntryRead(BaseModel):
    id: uuid.UUID
    journal: str
    number: str
    date: dt.date
    period: str
    description: str
    source_type: str
    source_id: uuid.UUID | None
    reversal_of: uuid.UUID | None
    reversed_by: uuid.UUID | None
    state: str
    currency: str
    rate: str
    functional_currency: str
    total: str
    posted_at: dt.datetime
    posted_by: str
    lines: list[JournalLineRead] = []


class TrialBalanceLineRead(BaseModel):
    account_code: str
    account_name: str
    account_type: str
    debit: str
    credit: str


class TrialBalanceRead(BaseModel):
    as_of: dt.date | None
    from_date: dt.date | None = None
    currency: str
    lines: list[TrialBalanceLineRead]
    total_debit: str
    total_credit: str


class ReportLineRead(BaseModel):
    account_code: str
    account_name: str
    amount: str


class ProfitAndLossRead(BaseModel):
    from_date: dt.date | None
    to_date: dt.date | None
    currency: str
    income: list[ReportLineRead]
    expenses: list[ReportLineRead]
    total_income: str
    cost_of_sales: str
    gross_profit: str
    total_expenses: str
    net_income: str


class BalanceSheetRead(BaseModel):
    as_of: dt.date
    currency: str
    assets: list[ReportLineRead]
    liabilities: list[ReportLineRead]
    equity: list[ReportLineRead]
    total_assets: str
    total_liabilities: str
    total_equity: str
    total_liabilities_and_equity: str


class LedgerLineRead(BaseModel):
    entry_id: uuid.UUID
    number: str
    journal: str
    date: dt.date
    description: str
    source_type: str
    source_id: uuid.UUID | None
    party_id: uuid.UUID | None
    debit: str
    credit: str
    balance: str
    currency: str
    amount: str


class GeneralLedgerRead(BaseModel):
    account_code: str
    account_name: str
    from_date: dt.date | None
    to_date: dt.date | None
    currency: str
    opening_balance: str
    lines: list[LedgerLineRead]
    closing_balance: str
    next_offset: int | None


class StatementRead(BaseModel):
    customer_id: uuid.UUID
    from_date: dt.date | None
    to_date: dt.date | None
    currency: str
    opening_balance: str
    lines: list[LedgerLineRead]
    closing_balance: str
    next_offset: int | None


class AgingRowRead(BaseModel):
    party_id: uuid.UUID | None
    party_code: str | None = None
    party_name: str | None = None
    current: str
    days_1_30: str
    days_31_60: str
    days_61_90: str
    days_over_90: str
    total: str


class AgingRead(BaseModel):
    as_of: dt.date
    currency: str
    rows: list[AgingRowRead]
    totals: AgingRowRead
    control_balance: str


class RevaluationCreate(Input):
    date: dt.date


class RevaluationRead(BaseModel):
    date: dt.date
    entries: list[JournalEntryRead]


class MonthlyLineRead(BaseModel):
    account_code: str
    account_name: str
    account_type: str
    amounts: list[str]
    total: str


class MonthlyProfitAndLossRead(BaseModel):
    months: list[str]
    currency: str
    lines: list[MonthlyLineRead]
    income: list[str]
    expenses: list[str]
    net_income: list[str]
