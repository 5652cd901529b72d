"""HTTP: chart of accounts, periods, exchange rates, journal entries and reports (JSON or CSV)."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Collection, Iterable, Sequence
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from entrepot.api.deps import RawBody, Requires
from entrepot.api.etag import check_if_match, set_etag
from entrepot.api.pagination import FromDate, Page, ToDate, paginate, within
from entrepot.catalog.csvio import quote_formula
from entrepot.db.uow import UnitOfWork
from entrepot.kernel import clock
from entrepot.kernel.errors import invalid, reference
from entrepot.ledger import permissions as perms
from entrepot.ledger.chart import CONTROL_ROLES, AccountType, JournalCode, Role
from entrepot.ledger.models import Account, ExchangeRate, Journal, JournalEntry, Period
from entrepot.ledger.schemas import (
    AccountCreate,
    AccountRead,
    AccountUpdate,
    AgingRead,
    AgingRowRead,
    BalanceSheetRead,
    ExchangeRateCreate,
    ExchangeRateImport,
    ExchangeRateImported,
    ExchangeRateRead,
    GeneralLedgerRead,
    JournalEntryCreate,
    JournalEntryRead,
    JournalEntryReverse,
    JournalLineRead,
    JournalRead,
    LedgerLineRead,
    MonthlyLineRead,
    MonthlyProfitAndLossRead,
    PeriodCreate,
    PeriodRead,
    ProfitAndLossRead,
    ReportLineRead,
    RevaluationCreate,
    RevaluationRead,
    StatementRead,
    TrialBalanceLineRead,
    TrialBalanceRead,
)
from entrepot.ledger.services import accounts as chart
from entrepot.ledger.services import entries, periods, rates, reports, revaluation
from entrepot.ledger.states import PERIOD
from entrepot.parties.service import get_customer

router = APIRouter(tags=["ledger"])
Format = Annotated[str, Query(pattern="^(json|csv)$", description="json (default) or csv")]
PeriodParam = Annotated[str | None, Query(description="YYYY-MM: sets the range to that month",
                                          pattern=r"^\d{4}-\d{2}$")]


def _csv(filename: str, header: Sequence[str], rows: Iterable[Sequence[Any]], *,
         amounts: Collection[str]) -> Response:
    """A report as CSV. Text cells (account names, descriptions …) are guarded against spreadsheet
    formulas; the `amounts` columns are formatted numbers, and a negative one must stay -5.00."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else quote_formula(v) if isinstance(v, str) and c not in amounts else v
                         for c, v in zip(header, row, strict=True)])
    return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}.csv"'})


def _range(uow: UnitOfWork, period: str | None, start: date | None, end: date | None) -> tuple[date | None, date]:
    if period:
        return reports.period_range(uow, period)
    if start and end and start > end:
        raise invalid("from", "must not be after 'to'", "range")
    return start, end or clock.today()


def _fmt(uow: UnitOfWork, value: Any) -> str:
    return entries.amount_text(value, chart.functional_currency(uow))


# --- accounts and journals -------------------------------------------------------------------


def _account(account: Account) -> AccountRead:
    read = AccountRead.model_validate(account)
    read.control = account.role in CONTROL_ROLES
    return read


@router.get("/ledger/accounts", response_model=Page[AccountRead], summary="The chart of accounts")
def list_accounts(
    uow: Annotated[UnitOfWork, Requires(perms.ACCOUNT_READ)],
    type: AccountType | None = None,
    role: Role | None = None,
    include_archived: bool = True,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 200,
) -> Page[AccountRead]:
    query = select(Account)
    if type:
        query = query.where(Account.type == type)
    if role:
        query = query.where(Account.role == role)
    if not include_archived:
        query = query.where(Account.archived.is_(False))
    rows, next_cursor = paginate(uow, query, Account.code, cursor=cursor, limit=limit)
    return Page(items=[_account(a) for a in rows], next_cursor=next_cursor)


@router.post("/ledger/accounts", response_model=AccountRead, status_code=201)
def create_account(body: AccountCreate, response: Response,
                   uow: Annotated[UnitOfWork, Requires(perms.ACCOUNT_MANAGE)]) -> AccountRead:
    account = chart.create_account(uow, chart.AccountData(body.code, body.name, body.type, body.role))
    uow.commit()
    set_etag(response, account)
    return _account(account)


@router.get("/ledger/accounts/{account_id}", response_model=AccountRead)
def read_account(account_id: uuid.UUID, response: Response,
                 uow: Annotated[UnitOfWork, Requires(perms.ACCOUNT_READ)]) -> AccountRead:
    account = chart.get_account(uow, account_id)
    set_etag(response, account)
    return _account(account)


@router.patch("/ledger/accounts/{account_id}", response_model=AccountRead,
              summary="Rename, change the role, archive or restore an account (If-Match)")
def update_account(account_id: uuid.UUID, body: AccountUpdate, request: Request, response: Response,
                   uow: Annotated[UnitOfWork, Requires(perms.ACCOUNT_MANAGE)]) -> AccountRead:
    account = chart.get_account(uow, account_id)
    check_if_match(request, account)
    account = chart.update_account(uow, account, body.model_dump(exclude_unset=True))
    uow.commit()
    set_etag(response, account)
    return _account(account)


@router.get("/ledger/journals", response_model=Page[JournalRead])
def list_journals(uow: Annotated[UnitOfWork, Requires(perms.ACCOUNT_READ)]) -> Page[JournalRead]:
    return Page(items=[JournalRead.model_validate(j) for j in chart.list_journals(uow)])


# --- periods ---------------------------------------------------------------------------------


def _period(period: Period) -> PeriodRead:
    read = PeriodRead.model_validate(period)
    read.allowed_actions = PERIOD.allowed_actions(period.state)  # type: ignore[arg-type]
    return read


@router.get("/ledger/periods", response_model=Page[PeriodRead])
def list_periods(uow: Annotated[UnitOfWork, Requires(perms.PERIOD_READ)], year: int | None = None) -> Page[PeriodRead]:
    return Page(items=[_period(p) for p in periods.list_periods(uow, year)])


@router.post("/ledger/periods", response_model=PeriodRead, status_code=201,
             summary="Open a month ahead of its first posting (periods are otherwise created on demand)")
def create_period(body: PeriodCreate, uow: Annotated[UnitOfWork, Requires(perms.PERIOD_MANAGE)]) -> PeriodRead:
    period = periods.ensure_period(uow, date(body.year, body.month, 1))
    uow.commit()
    return _period(period)


@router.get("/ledger/periods/{period_id}", response_model=PeriodRead)
def read_period(period_id: uuid.UUID, uow: Annotated[UnitOfWork, Requires(perms.PERIOD_READ)]) -> PeriodRead:
    return _period(periods.get_period(uow, period_id))


@router.post("/ledger/periods/{period_id}/close", response_model=PeriodRead,
             summary="Close a period: postings into it are refused from now on")
def close_period(period_id: uuid.UUID, uow: Annotated[UnitOfWork, Requires(perms.PERIOD_CLOSE)]) -> PeriodRead:
    period = periods.close_period(uow, periods.get_period(uow, period_id, lock=True))
    uow.commit()
    return _period(period)


@router.post("/ledger/periods/{period_id}/reopen", response_model=PeriodRead,
             summary="Reopen a closed period (finance.period.reopen; audited)")
def reopen_period(period_id: uuid.UUID, uow: Annotated[UnitOfWork, Requires(perms.PERIOD_REOPEN)]) -> PeriodRead:
    period = periods.reopen_period(uow, periods.get_period(uow, period_id, lock=True))
    uow.commit()
    return _period(period)


# --- exchange rates --------------------------------------------------------------------------


def _rate(row: ExchangeRate) -> ExchangeRateRead:
    return ExchangeRateRead(id=row.id, currency=row.currency, date=row.valid_on, rate=format(row.rate, "f"))


@router.get("/ledger/exchange-rates", response_model=Page[ExchangeRateRead])
def list_exchange_rates(
    uow: Annotated[UnitOfWork, Requires(perms.RATE_READ)],
    currency: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[ExchangeRateRead]:
    rows, next_cursor = paginate(uow, rates.list_rates(uow, currency), ExchangeRate.id, cursor=cursor, limit=limit)
    return Page(items=[_rate(r) for r in rows], next_cursor=next_cursor)


@router.post("/ledger/exchange-rates", response_model=ExchangeRateRead, status_code=201,
             summary="Enter (or correct) the rate of a currency from a date")
def set_exchange_rate(body: ExchangeRateCreate,
                      uow: Annotated[UnitOfWork, Requires(perms.RATE_MANAGE)]) -> ExchangeRateRead:
    row = rates.set_rate(uow, body.currency, body.date, body.rate)
    uow.commit()
    return _rate(row)


@router.post(
    "/ledger/exchange-rates/import", response_model=ExchangeRateImported, status_code=201,
    summary="Import rates from CSV (currency,date,rate): a text/csv body, or JSON {\"csv\": \"...\"}",
    openapi_extra={"requestBody": {"content": {
        "text/csv": {"schema": {"type": "string"}},
        "application/json": {"schema": ExchangeRateImport.model_json_schema()},
    }}},
)
def import_exchange_rates(request: Request, raw: RawBody,
                          uow: Annotated[UnitOfWork, Requires(perms.RATE_MANAGE)]) -> ExchangeRateImported:
    if "json" in request.headers.get("content-type", ""):
        try:
            text = ExchangeRateImport.model_validate_json(raw).csv
        except ValueError as exc:
            raise invalid("csv", "send {\"csv\": \"currency,date,rate\\n…\"} or a text/csv body", "required") from exc
    else:
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise invalid("body", "the CSV must be UTF-8", "encoding") from exc
    rows = rates.import_rates_csv(uow, text)
    uow.commit()
    return ExchangeRateImported(imported=len(rows), items=[_rate(r) for r in rows])


# --- journal entries -------------------------------------------------------------------------


def _entry(uow: UnitOfWork, entry: JournalEntry, *, with_lines: bool = True) -> JournalEntryRead:
    journal = uow.session.get(Journal, entry.journal_id)
    period = uow.session.get(Period, entry.period_id)
    reversal = entries.reversal_of(uow, entry)
    functional = chart.functional_currency(uow)
    lines: list[JournalLineRead] = []
    if with_lines:
        found = entries.lines_of(uow, entry)
        accounts = {a.id: a for a in uow.session.scalars(
            select(Account).where(Account.id.in_({ln.account_id for ln in found})))}
        lines = [
            JournalLineRead(
                line_no=ln.line_no, account_id=ln.account_id, account_code=accounts[ln.account_id].code,
                account_name=accounts[ln.account_id].name, debit=entries.amount_text(ln.debit, functional),
                credit=entries.amount_text(ln.credit, functional), currency=ln.currency,
                amount=entries.amount_text(ln.amount, ln.currency), party_id=ln.party_id, product_id=ln.product_id,
                due_on=ln.due_on, description=ln.description)
            for ln in found
        ]
    return JournalEntryRead(
        id=entry.id, journal=journal.code if journal else "", number=entry.number, date=entry.entry_date,
        period=f"{period.year}-{period.month:02d}" if period else "", description=entry.description,
        source_type=entry.source_type, source_id=entry.source_id, reversal_of=entry.reversal_of_id,
        reversed_by=reversal.id if reversal else None, state=entry.state, currency=entry.currency,
        rate=format(entry.rate, "f"), functional_currency=functional,
        total=entries.amount_text(entry.total, functional), posted_at=entry.posted_at, posted_by=entry.posted_by,
        lines=lines)


def _numbered(view: JournalEntryRead, entry: JournalEntry) -> JournalEntryRead:
    """Entries get their journal number at commit. The view is built before the commit and
    completed after it without a query: a query would open a new (write) transaction."""
    view.number = entry.number
    return view


@router.get("/ledger/journal-entries", response_model=Page[JournalEntryRead],
            summary="Posted entries, oldest first (lines on the single-entry read)")
def list_journal_entries(
    uow: Annotated[UnitOfWork, Requires(perms.ENTRY_READ)],
    journal: JournalCode | None = None,
    source_type: str | None = None,
    source_id: uuid.UUID | None = None,
    from_: FromDate = None,
    to: ToDate = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[JournalEntryRead]:
    query = select(JournalEntry)
    if journal:
        query = query.join(Journal, Journal.id == JournalEntry.journal_id).where(Journal.code == journal)
    if source_type:
        query = query.where(JournalEntry.source_type == source_type)
    if source_id:
        query = query.where(JournalEntry.source_id == source_id)
    query = within(query, JournalEntry.entry_date, from_, to)
    rows, next_cursor = paginate(uow, query, JournalEntry.id, cursor=cursor, limit=limit)
    return Page(items=[_entry(uow, e, with_lines=False) for e in rows], next_cursor=next_cursor)


@router.post("/ledger/journal-entries", response_model=JournalEntryRead, status_code=201,
             summary="Post a manual entry (not on receivable, payable or inventory control accounts)")
def create_journal_entry(body: JournalEntryCreate,
                         uow: Annotated[UnitOfWork, Requires(perms.ENTRY_CREATE)]) -> JournalEntryRead:
    entry = entries.create_manual_entry(uow, entries.ManualEntry(
        date=body.date, description=body.description, currency=body.currency, journal=body.journal,
        lines=[entries.ManualLine(account_code=ln.account_code, account_id=ln.account_id, debit=ln.debit,
                                  credit=ln.credit, description=ln.description, party_id=ln.party_id,
                                  product_id=ln.product_id) for ln in body.lines]))
    view = _entry(uow, entry)
    uow.commit()
    return _numbered(view, entry)


@router.get("/ledger/journal-entries/{entry_id}", response_model=JournalEntryRead)
def read_journal_entry(entry_id: uuid.UUID,
                       uow: Annotated[UnitOfWork, Requires(perms.ENTRY_READ)]) -> JournalEntryRead:
    return _entry(uow, entries.get_entry(uow, entry_id))


@router.post("/ledger/journal-entries/{entry_id}/reverse", response_model=JournalEntryRead, status_code=201,
             summary="Post the reversal of an entry (the original stays as it is)")
def reverse_journal_entry(entry_id: uuid.UUID, uow: Annotated[UnitOfWork, Requires(perms.ENTRY_REVERSE)],
                          body: JournalEntryReverse | None = None) -> JournalEntryRead:
    body = body or JournalEntryReverse()
    entry = entries.get_entry(uow, entry_id)
    reversal = entries.reverse_entry(uow, entry, on=body.date, description=body.description, allow_control=False)
    view = _entry(uow, reversal)
    uow.commit()
    return _numbered(view, reversal)


@router.post("/ledger/revaluations", response_model=RevaluationRead, status_code=201,
             summary="Restate open foreign-currency receivables and payables at the rate of a date")
def revalue(body: RevaluationCreate, uow: Annotated[UnitOfWork, Requires(perms.REVALUE)]) -> RevaluationRead:
    posted = revaluation.revalue_open_balances(uow, body.date)
    views = [_entry(uow, e) for e in posted]
    uow.commit()
    return RevaluationRead(date=body.date, entries=[_numbered(v, e) for v, e in zip(views, posted, strict=True)])


# --- reports ---------------------------------------------------------------------------------


@router.get("/ledger/trial-balance", response_model=TrialBalanceRead,
            summary="Balance of every account as of a date; total debits equal total credits")
def trial_balance(
    uow: Annotated[UnitOfWork, Requires(perms.REPORT_READ)],
    as_of: date | None = None,
    period: PeriodParam = None,
    from_: FromDate = None,
    to: Annotated[date | None, Query(description="last day (inclusive): the same as `as_of`")] = None,
    format: Format = "json",
) -> Any:
    # A period sets the as-of date (its last day); balances stay cumulative unless `from` is given.
    if as_of and to and as_of != to:
        raise invalid("to", "give `as_of` or `to`, not two different days", "conflict")
    as_of = as_of or to
    if period:
        as_of = reports.period_range(uow, period)[1]
    start = from_
    if start and start > (as_of or clock.today()):
        raise invalid("from", "must not be after 'to'", "range")
    report = reports.trial_balance(uow, as_of=as_of or clock.today(), from_date=start)
    fmt = lambda v: _fmt(uow, v)  # noqa: E731
    if format == "csv":
        return _csv("trial-balance", ["account_code", "account_name", "account_type", "debit", "credit"],
                    [*[(ln.account_code, ln.account_name, ln.account_type, fmt(ln.debit), fmt(ln.credit))
                       for ln in report.lines],
                     ("", "Total", "", fmt(report.total_debit), fmt(report.total_credit))],
                    amounts=("debit", "credit"))
    return TrialBalanceRead(
        as_of=report.as_of, from_date=start, currency=report.currency,
        lines=[TrialBalanceLineRead(account_code=ln.account_code, account_name=ln.account_name,
                                    account_type=ln.account_type, debit=fmt(ln.debit), credit=fmt(ln.credit))
               for ln in report.lines],
        total_debit=fmt(report.total_debit), total_credit=fmt(report.total_credit))


def _lines(uow: UnitOfWork, rows: list[reports.ReportLine]) -> list[ReportLineRead]:
    return [ReportLineRead(account_code=r.account_code, account_name=r.account_name, amount=_fmt(uow, r.amount))
            for r in rows]


@router.get("/ledger/profit-and-loss", response_model=ProfitAndLossRead,
            summary="Income and expenses over a range of dates (or a period)")
def profit_and_loss(
    uow: Annotated[UnitOfWork, Requires(perms.REPORT_READ)],
    from_: FromDate = None,
    to: ToDate = None,
    period: PeriodParam = None,
    format: Format = "json",
) -> Any:
    start, end = _range(uow, period, from_, to)
    report = reports.profit_and_loss(uow, from_date=start, to_date=end)
    fmt = lambda v: _fmt(uow, v)  # noqa: E731
    if format == "csv":
        rows = [("income", r.account_code, r.account_name, fmt(r.amount)) for r in report.income]
        rows += [("expense", r.account_code, r.account_name, fmt(r.amount)) for r in report.expenses]
        rows += [("total", "", "Total income", fmt(report.total_income)),
                 ("total", "", "Gross profit", fmt(report.gross_profit)),
                 ("total", "", "Total expenses", fmt(report.total_expenses)),
                 ("total", "", "Net income", fmt(report.net_income))]
        return _csv("profit-and-loss", ["section", "account_code", "account_name", "amount"], rows,
                    amounts=("amount",))
    return ProfitAndLossRead(
        from_date=report.from_date, to_date=report.to_date, currency=report.currency,
        income=_lines(uow, report.income), expenses=_lines(uow, report.expenses),
        total_income=fmt(report.total_income), cost_of_sales=fmt(report.cost_of_sales),
        gross_profit=fmt(report.gross_profit), total_expenses=fmt(report.total_expenses),
        net_income=fmt(report.net_income))


@router.get("/ledger/profit-and-loss/monthly", response_model=MonthlyProfitAndLossRead,
            summary="Profit and loss with a column per month (default: the 12 months to date)")
def monthly_profit_and_loss(
    uow: Annotated[UnitOfWork, Requires(perms.REPORT_READ)],
    from_: FromDate = None,
    to: ToDate = None,
    format: Format = "json",
) -> Any:
    end = to or clock.today()
    start = from_
    if start is None:  # the twelve months ending with `to`'s month
        year, month = (end.year, 1) if end.month == 12 else (end.year - 1, end.month + 1)
        start = date(max(year, 1), month, 1)
    report = reports.monthly_profit_and_loss(uow, from_date=start, to_date=end)
    fmt = lambda v: _fmt(uow, v)  # noqa: E731
    if format == "csv":
        rows = [(ln.account_code, ln.account_name, ln.account_type, *map(fmt, ln.amounts), fmt(ln.total))
                for ln in report.lines]
        rows.append(("", "Net income", "", *map(fmt, report.net_income), fmt(sum(report.net_income))))
        return _csv("profit-and-loss-monthly", ["account_code", "account_name", "account_type", *report.months,
                                                "total"], rows, amounts=(*report.months, "total"))
    return MonthlyProfitAndLossRead(
        months=report.months, currency=report.currency,
        lines=[MonthlyLineRead(account_code=ln.account_code, account_name=ln.account_name,
                               account_type=ln.account_type, amounts=[fmt(a) for a in ln.amounts],
                               total=fmt(ln.total)) for ln in report.lines],
        income=[fmt(v) for v in report.income], expenses=[fmt(v) for v in report.expenses],
        net_income=[fmt(v) for v in report.net_income])


@router.get("/ledger/balance-sheet", response_model=BalanceSheetRead,
            summary="Assets, liabilities and equity as of a date")
def balance_sheet(
    uow: Annotated[UnitOfWork, Requires(perms.REPORT_READ)],
    as_of: date | None = None,
    period: PeriodParam = None,
    format: Format = "json",
) -> Any:
    if period:
        as_of = reports.period_range(uow, period)[1]
    report = reports.balance_sheet(uow, as_of=as_of or clock.today())
    fmt = lambda v: _fmt(uow, v)  # noqa: E731
    if format == "csv":
        rows = [(section, r.account_code, r.account_name, fmt(r.amount))
                for section, part in (("asset", report.assets), ("liability", report.liabilities),
                                      ("equity", report.equity)) for r in part]
        rows += [("total", "", "Total assets", fmt(report.total_assets)),
                 ("total", "", "Total liabilities and equity",
                  fmt(report.total_liabilities + report.total_equity))]
        return _csv("balance-sheet", ["section", "account_code", "account_name", "amount"], rows,
                    amounts=("amount",))
    return BalanceSheetRead(
        as_of=report.as_of, currency=report.currency, assets=_lines(uow, report.assets),
        liabilities=_lines(uow, report.liabilities), equity=_lines(uow, report.equity),
        total_assets=fmt(report.total_assets), total_liabilities=fmt(report.total_liabilities),
        total_equity=fmt(report.total_equity),
        total_liabilities_and_equity=fmt(report.total_liabilities + report.total_equity))


def _ledger_lines(uow: UnitOfWork, lines: list[reports.LedgerLine]) -> list[LedgerLineRead]:
    fmt = lambda v: _fmt(uow, v)  # noqa: E731
    return [LedgerLineRead(entry_id=ln.entry_id, number=ln.number, journal=ln.journal, date=ln.date,
                           description=ln.description, source_type=ln.source_type, source_id=ln.source_id,
                           party_id=ln.party_id, debit=fmt(ln.debit), credit=fmt(ln.credit),
                           balance=fmt(ln.balance), currency=ln.currency,
                           amount=entries.amount_text(ln.amount, ln.currency)) for ln in lines]


LEDGER_CSV = ["date", "number", "journal", "description", "source_type", "source_id", "party_id", "debit",
              "credit", "balance", "currency", "amount"]


def _ledger_csv(uow: UnitOfWork, name: str, opening: Any, lines: list[reports.LedgerLine], closing: Any) -> Response:
    fmt = lambda v: _fmt(uow, v)  # noqa: E731
    rows: list[Sequence[Any]] = [("", "", "", "Opening balance", "", "", "", "", "", fmt(opening), "", "")]
    rows += [(ln.date, ln.number, ln.journal, ln.description, ln.source_type, ln.source_id, ln.party_id,
              fmt(ln.debit), fmt(ln.credit), fmt(ln.balance), ln.currency,
              entries.amount_text(ln.amount, ln.currency)) for ln in lines]  # as the JSON gives it
    rows.append(("", "", "", "Closing balance", "", "", "", "", "", fmt(closing), "", ""))
    return _csv(name, LEDGER_CSV, rows, amounts=("debit", "credit", "balance", "amount"))


@router.get("/ledger/general-ledger", response_model=GeneralLedgerRead,
            summary="One account's lines with opening, running and closing balance")
def general_ledger(
    uow: Annotated[UnitOfWork, Requires(perms.REPORT_READ)],
    account_code: str,
    from_: FromDate = None,
    to: ToDate = None,
    period: PeriodParam = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    format: Format = "json",
) -> Any:
    start, end = _range(uow, period, from_, to)
    report = reports.general_ledger(uow, account_code=account_code, from_date=start, to_date=end, offset=offset,
                                    limit=limit)
    if format == "csv":
        return _ledger_csv(uow, f"general-ledger-{report.account_code}", report.opening_balance, report.lines,
                           report.closing_balance)
    return GeneralLedgerRead(
        account_code=report.account_code, account_name=report.account_name, from_date=start, to_date=end,
        currency=report.currency, opening_balance=_fmt(uow, report.opening_balance),
        lines=_ledger_lines(uow, report.lines), closing_balance=_fmt(uow, report.closing_balance),
        next_offset=report.next_offset)


@router.get("/ledger/customer-statement", response_model=StatementRead,
            summary="A customer's account statement: invoices, credit notes, payments, running balance")
def customer_statement(
    uow: Annotated[UnitOfWork, Requires(perms.REPORT_READ)],
    customer_id: uuid.UUID,
    from_: FromDate = None,
    to: ToDate = None,
    period: PeriodParam = None,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
    format: Format = "json",
) -> Any:
    with reference("customer_id"):  # an unknown customer (or another tenant's) is a 404, not an empty statement
        get_customer(uow, customer_id)
    start, end = _range(uow, period, from_, to)
    report = reports.customer_statement(uow, customer_id=customer_id, from_date=start, to_date=end, offset=offset,
                                        limit=limit)
    if format == "csv":
        return _ledger_csv(uow, f"statement-{customer_id}", report.opening_balance, report.lines,
                           report.closing_balance)
    return StatementRead(
        customer_id=customer_id, from_date=start, to_date=end, currency=report.currency,
        opening_balance=_fmt(uow, report.opening_balance), lines=_ledger_lines(uow, report.lines),
        closing_balance=_fmt(uow, report.closing_balance), next_offset=report.next_offset)


AGING_CSV = ["party_id", "party_code", "party_name", "current", "days_1_30", "days_31_60", "days_61_90",
             "days_over_90", "total"]
_AGING_AMOUNTS = AGING_CSV[3:]


def _aging(uow: UnitOfWork, role: Role, as_of: date | None, period: str | None, format: str) -> Any:
    if period:
        as_of = reports.period_range(uow, period)[1]
    report = reports.aging(uow, as_of=as_of or clock.today(), role=role)
    fmt = lambda v: _fmt(uow, v)  # noqa: E731

    def row(party: uuid.UUID | None, b: dict[str, Any], total: Any, code: str | None = None,
            name: str | None = None) -> AgingRowRead:
        return AgingRowRead(party_id=party, party_code=code, party_name=name, current=fmt(b["current"]),
                            days_1_30=fmt(b["1_30"]), days_31_60=fmt(b["31_60"]), days_61_90=fmt(b["61_90"]),
                            days_over_90=fmt(b["over_90"]), total=fmt(total))

    rows = [row(r.party_id, r.buckets, r.total, r.party_code, r.party_name) for r in report.rows]
    totals = row(None, report.totals, report.total)
    if format == "csv":
        return _csv(f"{role.value}-aging", AGING_CSV,
                    [[getattr(r, c) for c in AGING_CSV] for r in rows]
                    + [["total", "", "", *[getattr(totals, c) for c in _AGING_AMOUNTS]]], amounts=_AGING_AMOUNTS)
    return AgingRead(as_of=report.as_of, currency=report.currency, rows=rows, totals=totals,
                     control_balance=fmt(report.control_balance))


@router.get("/ledger/receivables-aging", response_model=AgingRead,
            summary="Open receivables per customer by days overdue (current, 1-30, 31-60, 61-90, 90+)")
def receivables_aging(uow: Annotated[UnitOfWork, Requires(perms.REPORT_READ)], as_of: date | None = None,
                      period: PeriodParam = None, format: Format = "json") -> Any:
    return _aging(uow, Role.receivable, as_of, period, format)


@router.get("/ledger/payables-aging", response_model=AgingRead,
            summary="Open payables per supplier by days overdue (current, 1-30, 31-60, 61-90, 90+)")
def payables_aging(uow: Annotated[UnitOfWork, Requires(perms.REPORT_READ)], as_of: date | None = None,
                   period: PeriodParam = None, format: Format = "json") -> Any:
    return _aging(uow, Role.payable, as_of, period, format)
