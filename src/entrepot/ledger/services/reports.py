"""Reports as of a date: every figure is a SQL aggregate (GROUP BY account or party).

Lines carry their entry's date and functional debit/credit, so a trial balance
is one grouped scan of the covering index `(tenant, account, date, debit, credit)`.
Closed periods cannot receive postings, so a report of a closed period never changes.
"""

from __future__ import annotations

import calendar
import uuid
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, case, func, literal, select, type_coerce

from entrepot.db import in_lists
from entrepot.db.types import Exact
from entrepot.db.uow import UnitOfWork
from entrepot.kernel.errors import invalid
from entrepot.kernel.money import ZERO
from entrepot.ledger.chart import DEBIT_NORMAL, PROFIT_AND_LOSS, AccountType, Role
from entrepot.ledger.models import Account, Journal, JournalEntry, JournalLine, Period
from entrepot.ledger.services.accounts import account_by_code, functional_currency
from entrepot.parties.models import Customer, Supplier


def _sum(column: Any) -> Any:
    # SUM over an Exact column keeps its type (scaled integers on SQLite stay exact);
    # COALESCE and CASE would lose it, hence the explicit coercion.
    return type_coerce(func.coalesce(func.sum(column), 0), Exact())


def _dec(value: Any) -> Decimal:
    return Decimal(value or 0)


def period_range(uow: UnitOfWork, period: str) -> tuple[date, date]:
    """'2026-03' → the first and last day of that month."""
    try:
        year, month = (int(p) for p in period.split("-"))
        start = date(year, month, 1)
        end = date(year, month, calendar.monthrange(year, month)[1])
    except (ValueError, TypeError) as exc:
        raise invalid("period", "a period is YYYY-MM", "period") from exc
    return start, end


def _days_before(day: date, days: int) -> date:
    try:
        return day - timedelta(days=days)
    except OverflowError:
        return date.min


@dataclass
class AccountBalance:
    account_id: uuid.UUID
    code: str
    name: str
    type: str
    role: str | None
    debit: Decimal  # sum of debits in the range
    credit: Decimal

    @property
    def balance(self) -> Decimal:
        """Debit-positive net balance."""
        return self.debit - self.credit

    @property
    def natural(self) -> Decimal:
        """The balance in the account's normal direction (income and liabilities credit-positive)."""
        return self.balance if AccountType(self.type) in DEBIT_NORMAL else -self.balance


def account_balances(uow: UnitOfWork, *, as_of: date | None = None, from_date: date | None = None,
                     types: frozenset[AccountType] | None = None) -> list[AccountBalance]:
    """Per-account sums of functional debits and credits in [from_date, as_of], by account code.

    Two queries joined here rather than one SQL join: the chart is small, and a planner
    without statistics on a fresh table was seen re-running the aggregate per account."""
    accounts = uow.session.execute(select(Account.id, Account.code, Account.name, Account.type, Account.role)).all()
    if types is not None:
        wanted = {t.value for t in types}
        accounts = [a for a in accounts if a.type in wanted]
    by_id = {a.id: a for a in accounts}
    conditions = []
    if types is not None:
        conditions.append(JournalLine.account_id.in_(list(by_id)))
    if as_of is not None:
        conditions.append(JournalLine.entry_date <= as_of)
    if from_date is not None:
        conditions.append(JournalLine.entry_date >= from_date)
    sums = uow.session.execute(
        select(JournalLine.account_id, _sum(JournalLine.debit), _sum(JournalLine.credit))
        .where(*conditions)
        .group_by(JournalLine.account_id)
    ).all()
    out = [AccountBalance(a.id, a.code, a.name, a.type, a.role, _dec(d), _dec(c))
           for account_id, d, c in sums if (a := by_id.get(account_id)) is not None]
    return sorted(out, key=lambda b: b.code)


# --- trial balance ---------------------------------------------------------------------------


@dataclass
class TrialBalanceLine:
    account_id: uuid.UUID
    account_code: str
    account_name: str
    account_type: str
    debit: Decimal
    credit: Decimal


@dataclass
class TrialBalance:
    as_of: date | None
    currency: str
    lines: list[TrialBalanceLine]
    total_debit: Decimal
    total_credit: Decimal


def trial_balance(uow: UnitOfWork, *, as_of: date | None = None, from_date: date | None = None,
                  include_zero: bool = False) -> TrialBalance:
    """Each account's net balance on its debit or credit side; the two totals are equal."""
    lines = []
    for b in account_balances(uow, as_of=as_of, from_date=from_date):
        if not b.balance and not include_zero:
            continue
        lines.append(TrialBalanceLine(b.account_id, b.code, b.name, b.type,
                                      b.balance if b.balance > 0 else ZERO, -b.balance if b.balance < 0 else ZERO))
    return TrialBalance(as_of, functional_currency(uow), lines, sum((ln.debit for ln in lines), ZERO),
                        sum((ln.credit for ln in lines), ZERO))


# --- profit and loss, balance sheet -------------------------------------------------------------


@dataclass
class ReportLine:
    account_code: str
    account_name: str
    amount: Decimal
    role: str | None = None


@dataclass
class ProfitAndLoss:
    from_date: date | None
    to_date: date | None
    currency: str
    income: list[ReportLine]
    expenses: list[ReportLine]
    total_income: Decimal
    cost_of_sales: Decimal
    gross_profit: Decimal
    total_expenses: Decimal
    net_income: Decimal


COST_OF_SALES = frozenset({Role.cogs.value, Role.inventory_adjustment.value, Role.price_variance.value})


def profit_and_loss(uow: UnitOfWork, *, from_date: date | None, to_date: date | None) -> ProfitAndLoss:
    balances = account_balances(uow, as_of=to_date, from_date=from_date, types=PROFIT_AND_LOSS)
    income = [ReportLine(b.code, b.name, b.natural, b.role) for b in balances if b.type == AccountType.income]
    expenses = [ReportLine(b.code, b.name, b.natural, b.role) for b in balances if b.type == AccountType.expense]
    total_income = sum((r.amount for r in income), ZERO)
    total_expenses = sum((r.amount for r in expenses), ZERO)
    cost_of_sales = sum((r.amount for r in expenses if r.role in COST_OF_SALES), ZERO)
    return ProfitAndLoss(from_date, to_date, functional_currency(uow), income, expenses, total_income,
                         cost_of_sales, total_income - cost_of_sales, total_expenses, total_income - total_expenses)


@dataclass
class BalanceSheet:
    as_of: date
    currency: str
    assets: list[ReportLine]
    liabilities: list[ReportLine]
    equity: list[ReportLine]
    total_assets: Decimal
    total_liabilities: Decimal
    total_equity: Decimal
    retained_earnings: Decimal  # profit of earlier fiscal years not yet closed to equity
    current_earnings: Decimal  # profit of the fiscal year to date


def balance_sheet(uow: UnitOfWork, *, as_of: date) -> BalanceSheet:
    balances = account_balances(uow, as_of=as_of)
    year_start = date(as_of.year, 1, 1)
    earlier = (account_balances(uow, as_of=_days_before(year_start, 1), types=PROFIT_AND_LOSS)
               if year_start > date.min else [])
    earlier_profit = -sum((b.balance for b in earlier), ZERO)
    all_profit = -sum((b.balance for b in balances if AccountType(b.type) in PROFIT_AND_LOSS), ZERO)
    assets = [ReportLine(b.code, b.name, b.natural, b.role) for b in balances if b.type == AccountType.asset]
    liabilities = [ReportLine(b.code, b.name, b.natural, b.role) for b in balances
                   if b.type == AccountType.liability]
    equity = [ReportLine(b.code, b.name, b.natural, b.role) for b in balances if b.type == AccountType.equity]
    equity.append(ReportLine("", "Retained earnings (earlier years)", earlier_profit))
    equity.append(ReportLine("", "Profit of the current year", all_profit - earlier_profit))
    total_assets = sum((r.amount for r in assets), ZERO)
    total_liabilities = sum((r.amount for r in liabilities), ZERO)
    total_equity = sum((r.amount for r in equity), ZERO)
    return BalanceSheet(as_of, functional_currency(uow), assets, liabilities, equity, total_assets,
                        total_liabilities, total_equity, earlier_profit, all_profit - earlier_profit)


# --- general ledger detail -------------------------------------------------------------------


@dataclass
class LedgerLine:
    entry_id: uuid.UUID
    number: str
    journal: str
    date: date
    description: str
    source_type: str
    source_id: uuid.UUID | None
    party_id: uuid.UUID | None
    debit: Decimal
    credit: Decimal
    balance: Decimal
    currency: str
    amount: Decimal


@dataclass
class AccountLedger:
    account_code: str
    account_name: str
    from_date: date | None
    to_date: date | None
    currency: str
    opening_balance: Decimal
    lines: list[LedgerLine]
    closing_balance: Decimal
    next_offset: int | None = None


def _detail(uow: UnitOfWork, conditions: list[Any], *, from_date: date | None, to_date: date | None,
            offset: int, limit: int) -> tuple[Decimal, list[LedgerLine], Decimal, int | None]:
    opening = ZERO
    if from_date is not None:
        d, c = uow.session.execute(
            select(_sum(JournalLine.debit), _sum(JournalLine.credit))
            .where(*conditions, JournalLine.entry_date < from_date)).one()
        opening = _dec(d) - _dec(c)
    ranged = list(conditions)
    if from_date is not None:
        ranged.append(JournalLine.entry_date >= from_date)
    if to_date is not None:
        ranged.append(JournalLine.entry_date <= to_date)
    before = opening
    if offset:
        # running balance of the page = opening + everything on the earlier pages (summed in SQL)
        earlier = (select(JournalLine.debit, JournalLine.credit).join(JournalEntry, JournalEntry.id ==
                   JournalLine.entry_id).where(*ranged)
                   .order_by(JournalLine.entry_date, JournalEntry.posted_at, JournalEntry.number, JournalLine.line_no)
                   .limit(offset).subquery())
        d, c = uow.session.execute(select(_sum(earlier.c.debit), _sum(earlier.c.credit))).one()
        before += _dec(d) - _dec(c)
    rows = uow.session.execute(
        select(JournalLine, JournalEntry.number, Journal.code, JournalEntry.description, JournalEntry.source_type,
               JournalEntry.source_id)
        .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
        .join(Journal, Journal.id == JournalEntry.journal_id)
        .where(*ranged)
        .order_by(JournalLine.entry_date, JournalEntry.posted_at, JournalEntry.number, JournalLine.line_no)
        .offset(offset).limit(limit + 1)
    ).all()
    more = len(rows) > limit
    running = before
    out = []
    for line, number, journal, description, source_type, source_id in rows[:limit]:
        running += line.debit - line.credit
        out.append(LedgerLine(line.entry_id, number, journal, line.entry_date, line.description or description,
                              source_type, source_id, line.party_id, line.debit, line.credit, running,
                              line.currency, line.amount))
    d, c = uow.session.execute(select(_sum(JournalLine.debit), _sum(JournalLine.credit)).where(*ranged)).one()
    closing = opening + _dec(d) - _dec(c)
    return opening, out, closing, (offset + limit if more else None)


def general_ledger(uow: UnitOfWork, *, account_code: str, from_date: date | None, to_date: date | None,
                   offset: int = 0, limit: int = 500) -> AccountLedger:
    account = account_by_code(uow, account_code)
    opening, lines, closing, next_offset = _detail(
        uow, [JournalLine.account_id == account.id], from_date=from_date, to_date=to_date, offset=offset,
        limit=limit)
    return AccountLedger(account.code, account.name, from_date, to_date, functional_currency(uow), opening, lines,
                         closing, next_offset)


@dataclass
class Statement:
    party_id: uuid.UUID
    from_date: date | None
    to_date: date | None
    currency: str
    opening_balance: Decimal
    lines: list[LedgerLine]
    closing_balance: Decimal
    next_offset: int | None = None


def _role_account_ids(uow: UnitOfWork, role: Role) -> list[uuid.UUID]:
    # every account that has (or had, while archived) the role: history stays on the statement
    return list(uow.session.scalars(select(Account.id).where(Account.role == role.value)))


def customer_statement(uow: UnitOfWork, *, customer_id: uuid.UUID, from_date: date | None, to_date: date | None,
                       offset: int = 0, limit: int = 500, role: Role = Role.receivable) -> Statement:
    """The customer's receivable lines (invoices, credit notes, payments) with a running balance."""
    conditions = [JournalLine.party_id == customer_id, JournalLine.account_id.in_(_role_account_ids(uow, role))]
    opening, lines, closing, next_offset = _detail(uow, conditions, from_date=from_date, to_date=to_date,
                                                   offset=offset, limit=limit)
    return Statement(customer_id, from_date, to_date, functional_currency(uow), opening, lines, closing, next_offset)


# --- aging -----------------------------------------------------------------------------------

BUCKETS = ("current", "1_30", "31_60", "61_90", "over_90")


@dataclass
class AgingRow:
    party_id: uuid.UUID | None
    buckets: dict[str, Decimal] = field(default_factory=lambda: dict.fromkeys(BUCKETS, ZERO))
    party_code: str | None = None  # the customer's or supplier's, so a collector can read the list
    party_name: str | None = None

    @property
    def total(self) -> Decimal:
        return sum(self.buckets.values(), ZERO)


@dataclass
class Aging:
    as_of: date
    currency: str
    rows: list[AgingRow]
    totals: dict[str, Decimal]
    total: Decimal
    control_balance: Decimal  # the control account's balance: equals `total`


def aging(uow: UnitOfWork, *, as_of: date, role: Role = Role.receivable) -> Aging:
    """Open balances per party by how overdue they are (days past `due_on` on `as_of`).

    Balance-forward: SQL sums each party's charges per due-date bucket and its
    settlements (payments, credit notes); the settlements then clear the oldest
    buckets first. A party left in credit shows a negative `current`. The total is
    the control account's balance by construction."""
    account_ids = _role_account_ids(uow, role)
    receivable = role == Role.receivable
    # charges: debits on receivables, credits on payables
    charge = JournalLine.debit if receivable else JournalLine.credit
    settle = JournalLine.credit if receivable else JournalLine.debit
    due = func.coalesce(JournalLine.due_on, JournalLine.entry_date)
    limits = [as_of, _days_before(as_of, 30), _days_before(as_of, 60), _days_before(as_of, 90)]
    bucket_of = [
        due >= limits[0],
        and_(due < limits[0], due >= limits[1]),
        and_(due < limits[1], due >= limits[2]),
        and_(due < limits[2], due >= limits[3]),
        due < limits[3],
    ]
    columns = [_sum(case((cond, charge), else_=literal(0, Exact()))).label(name)
               for cond, name in zip(bucket_of, BUCKETS, strict=True)]
    query = (
        select(JournalLine.party_id, *columns, _sum(settle).label("settled"))
        # party lines only (every receivable/payable posting names its party), so the
        # partial covering index on (party, account, date, due_on, debit, credit) serves it
        .where(JournalLine.party_id.is_not(None), JournalLine.account_id.in_(account_ids),
               JournalLine.entry_date <= as_of)
        .group_by(JournalLine.party_id)
    )
    rows: list[AgingRow] = []
    for r in uow.session.execute(query):
        buckets = {name: _dec(getattr(r, name)) for name in BUCKETS}
        credit = _dec(r.settled)
        for name in reversed(BUCKETS):  # oldest first
            used = min(credit, buckets[name])
            if used > 0:
                buckets[name] -= used
                credit -= used
        buckets["current"] -= credit
        row = AgingRow(r.party_id, buckets)
        if row.total or any(buckets.values()):
            rows.append(row)
    rows.sort(key=lambda a: (-a.total, str(a.party_id)))
    _name_parties(uow, rows, Customer if receivable else Supplier)
    totals = {name: sum((a.buckets[name] for a in rows), ZERO) for name in BUCKETS}
    d, c = uow.session.execute(
        select(_sum(JournalLine.debit), _sum(JournalLine.credit))
        .where(JournalLine.account_id.in_(account_ids), JournalLine.entry_date <= as_of)).one()
    control = _dec(d) - _dec(c) if receivable else _dec(c) - _dec(d)
    return Aging(as_of, functional_currency(uow), rows, totals, sum(totals.values(), ZERO), control)


def _name_parties(uow: UnitOfWork, rows: list[AgingRow], model: type[Customer] | type[Supplier]) -> None:
    ids = [r.party_id for r in rows if r.party_id is not None]
    named: dict[uuid.UUID, tuple[str, str]] = {}
    for chunk in in_lists.slices(ids):
        named.update({pid: (code, name) for pid, code, name in uow.session.execute(
            select(model.id, model.code, model.name).where(model.id.in_(chunk)))})
    for r in rows:
        if r.party_id in named:
            r.party_code, r.party_name = named[r.party_id]


def periods_between(uow: UnitOfWork, start: date, end: date) -> list[Period]:
    return list(uow.session.scalars(
        select(Period).where(Period.starts_on >= start, Period.starts_on <= end).order_by(Period.starts_on)))


# --- reconciliation helpers for subledgers -----------------------------------------------------


def role_balance(uow: UnitOfWork, role: Role, *, as_of: date | None = None) -> Decimal:
    """Debit-positive balance of the account(s) holding `role` — what a subledger
    (inventory valuation, open invoices, open supplier bills) must add up to."""
    conditions = [JournalLine.account_id.in_(_role_account_ids(uow, role))]
    if as_of is not None:
        conditions.append(JournalLine.entry_date <= as_of)
    d, c = uow.session.execute(select(_sum(JournalLine.debit), _sum(JournalLine.credit)).where(*conditions)).one()
    return _dec(d) - _dec(c)


def party_balances(uow: UnitOfWork, role: Role = Role.receivable, *,
                   as_of: date | None = None) -> dict[uuid.UUID | None, Decimal]:
    """Debit-positive balance per party on the role's account(s), e.g. what each customer owes."""
    conditions = [JournalLine.account_id.in_(_role_account_ids(uow, role))]
    if as_of is not None:
        conditions.append(JournalLine.entry_date <= as_of)
    rows = uow.session.execute(
        select(JournalLine.party_id, _sum(JournalLine.debit), _sum(JournalLine.credit))
        .where(*conditions).group_by(JournalLine.party_id))
    return {party: _dec(d) - _dec(c) for party, d, c in rows if _dec(d) != _dec(c)}


# --- profit and loss by month --------------------------------------------------------------------


@dataclass
class MonthlyLine:
    account_code: str
    account_name: str
    account_type: str
    amounts: list[Decimal]  # one per month, in the account's natural direction
    total: Decimal


@dataclass
class MonthlyProfitAndLoss:
    months: list[str]
    currency: str
    lines: list[MonthlyLine]
    income: list[Decimal]
    expenses: list[Decimal]
    net_income: list[Decimal]


def monthly_profit_and_loss(uow: UnitOfWork, *, from_date: date, to_date: date) -> MonthlyProfitAndLoss:
    """Income and expense accounts with one column per calendar month in the range."""
    if from_date > to_date:
        raise invalid("from", "must not be after 'to'", "range")
    months: list[tuple[int, int]] = []
    y, m = from_date.year, from_date.month
    while (y, m) <= (to_date.year, to_date.month):
        months.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
        if len(months) > 120:
            raise invalid("to", "at most 120 months", "range")
    index = {ym: i for i, ym in enumerate(months)}
    accounts = {a.id: a for a in uow.session.scalars(
        select(Account).where(Account.type.in_([t.value for t in PROFIT_AND_LOSS])))}
    # Grouped by day, not by an extracted month: the covering index is already in
    # (account, date) order, so SQL streams the sums without a per-row date function;
    # at most a few hundred days per account come back to be folded into months.
    rows = uow.session.execute(
        select(JournalLine.account_id, JournalLine.entry_date, _sum(JournalLine.debit), _sum(JournalLine.credit))
        .where(JournalLine.account_id.in_(list(accounts)), JournalLine.entry_date >= from_date,
               JournalLine.entry_date <= to_date)
        .group_by(JournalLine.account_id, JournalLine.entry_date)
    ).all()
    amounts: dict[uuid.UUID, list[Decimal]] = {}
    for account_id, day, debit, credit in rows:
        y_, m_ = day.year, day.month
        account = accounts[account_id]
        natural = _dec(debit) - _dec(credit)
        if AccountType(account.type) not in DEBIT_NORMAL:
            natural = -natural
        amounts.setdefault(account_id, [ZERO] * len(months))[index[(int(y_), int(m_))]] += natural
    lines = sorted((MonthlyLine(accounts[a].code, accounts[a].name, accounts[a].type, v, sum(v, ZERO))
                    for a, v in amounts.items()), key=lambda ln: ln.account_code)
    income = [sum((ln.amounts[i] for ln in lines if ln.account_type == AccountType.income), ZERO)
              for i in range(len(months))]
    expenses = [sum((ln.amounts[i] for ln in lines if ln.account_type == AccountType.expense), ZERO)
                for i in range(len(months))]
    return MonthlyProfitAndLoss([f"{y_:04d}-{m_:02d}" for y_, m_ in months], functional_currency(uow), lines,
                                income, expenses, [a - b for a, b in zip(income, expenses, strict=True)])


# --- integrity check -----------------------------------------------------------------------------


def check_books(uow: UnitOfWork) -> list[str]:
    """What should never happen, found by SQL: an entry whose lines do not balance, an entry
    without lines, an entry left with its provisional number, a gap in a journal's numbering."""
    problems: list[str] = []
    unbalanced = uow.session.execute(
        select(JournalEntry.number, _sum(JournalLine.debit), _sum(JournalLine.credit))
        .join(JournalLine, JournalLine.entry_id == JournalEntry.id)
        .group_by(JournalEntry.id, JournalEntry.number)
        .having(func.sum(JournalLine.debit) != func.sum(JournalLine.credit))
        .limit(100)).all()
    problems += [f"entry {n} does not balance: debits {_dec(d)}, credits {_dec(c)}" for n, d, c in unbalanced]
    empty = uow.session.scalars(
        select(JournalEntry.number).where(~select(JournalLine.line_no).where(JournalLine.entry_id == JournalEntry.id)
                                          .exists()).limit(100)).all()
    problems += [f"entry {n} has no lines" for n in empty]
    provisional = uow.session.scalars(select(JournalEntry.id).where(JournalEntry.number.like("~%")).limit(100)).all()
    problems += [f"entry {i} was never numbered (posted outside uow.commit())" for i in provisional]
    for code, count in uow.session.execute(
            select(Journal.code, func.count(JournalEntry.id)).join(JournalEntry, JournalEntry.journal_id == Journal.id)
            .where(~JournalEntry.number.like("~%")).group_by(Journal.code)):
        # numbers are zero-padded to 6 digits and grow past that: longest, then highest, is the last
        last = uow.session.scalar(
            select(JournalEntry.number).join(Journal, Journal.id == JournalEntry.journal_id)
            .where(Journal.code == code, ~JournalEntry.number.like("~%"))
            .order_by(func.length(JournalEntry.number).desc(), JournalEntry.number.desc()).limit(1))
        if last and int(last.rsplit("-", 1)[1]) != count:
            problems.append(f"journal {code} numbering has gaps or duplicates: {count} entries, last {last}")
    return problems
