"""Posting: the one place journal entries and lines are written.

Every entry — from a business document's posting rule, typed by hand, or a
reversal — goes through `post_entry`, which refuses an unbalanced entry, a
closed period, an archived account and a currency without a rate before it
builds the rows and lists the entry in the transaction's one `ledger.entry.post`
audit entry (`_Batch`). The rows wait in the transaction's
buffer; at commit (a unit-of-work hook) the transaction's entries get their gapless
journal numbers (one sequence UPDATE per journal) and are written, lines and
`journal_entry.posted.v1` events included, with one executemany per table. Code that
posts must therefore commit through `uow.commit()` (as every entry point does).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Integer, bindparam, event, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, SessionTransaction, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.instrumentation import manager_of_class
from sqlalchemy.sql import visitors
from sqlalchemy.sql.expression import TableClause, TextClause
from sqlalchemy.sql.schema import Table

from entrepot.catalog.service import get_product
from entrepot.db.infrastructure import DocumentSequence
from entrepot.db.insert_if_missing import insert_if_missing
from entrepot.db.prepared import Prepared
from entrepot.db.uow import UnitOfWork, on_before_commit
from entrepot.integration import outbox
from entrepot.kernel import clock
from entrepot.kernel.dates import check_ledger_date
from entrepot.kernel.errors import FieldError, NotFound, ValidationFailed, invalid, reference, unknown
from entrepot.kernel.ids import new_id
from entrepot.kernel.money import ZERO, InvalidAmount, fits_storage, is_currency, minor_unit, round_money, to_decimal
from entrepot.ledger.chart import CONTROL_ROLES, JournalCode, Role
from entrepot.ledger.errors import (
    ArchivedAccount,
    ControlAccountRefused,
    EntryAlreadyReversed,
    PostedEntryImmutable,
    UnbalancedEntry,
)
from entrepot.ledger.events import JournalEntryPosted
from entrepot.ledger.models import Account, Journal, JournalEntry, JournalLine
from entrepot.ledger.services import accounts as chart
from entrepot.ledger.services.periods import open_period_for_posting
from entrepot.ledger.services.rates import rate_on
from entrepot.parties.service import get_customer, get_supplier

SEQUENCE = "ledger.{code}"
# Exact storage keeps 20 digits, 4 after the point; sums of many lines need headroom.
LIMIT = Decimal(10) ** 14


@dataclass
class LineDraft:
    """One line to post. `amount` is signed in the entry's currency (+ debit, − credit);
    `functional`, when given, fixes the functional amount instead of amount × rate
    (reversals, settlements at the carrying rate, FX differences)."""

    account: Account | chart.AccountRef
    amount: Decimal
    functional: Decimal | None = None
    party_id: uuid.UUID | None = None
    product_id: uuid.UUID | None = None
    due_on: date | None = None
    description: str = ""
    field: str = field(default="", compare=False)  # where the line came from, for error messages


def amount_text(value: Decimal, currency: str) -> str:
    """Decimal string at the currency's minor unit, or the storage places when it has more
    (inventory costs may carry 4 places and must reconcile to the cent-less subledger)."""
    rounded = round_money(value, currency)
    return str(rounded if rounded == value else value.quantize(Decimal("0.0001")))


def _where(line: LineDraft, i: int) -> str:
    return line.field or f"lines[{i}]"


def to_functional(amount: Decimal, rate: Decimal, functional: str) -> Decimal:
    return amount if rate == 1 else round_money(amount * rate, functional)


def post_entry(
    uow: UnitOfWork,
    *,
    journal: JournalCode | str,
    on: date,
    currency: str,
    lines: Sequence[LineDraft],
    source_type: str,
    source_id: uuid.UUID | None = None,
    description: str = "",
    reversal_of: JournalEntry | None = None,
    rate: Decimal | None = None,
    allow_archived: bool = False,
) -> JournalEntry:
    functional = chart.functional_currency(uow)
    if currency != functional and not is_currency(currency):
        raise invalid("currency", f"{currency!r} is not an ISO 4217 currency", "currency")
    errors: list[FieldError] = []
    with_amounts = 0
    doc_total = ZERO
    for i, line in enumerate(lines):  # one pass: a billing run checks thousands of lines
        amount, fixed = line.amount, line.functional
        if line.account.archived and not allow_archived:
            raise ArchivedAccount(FieldError(f"{_where(line, i)}.account", f"account {line.account.code} is archived",
                                             "archived"))
        if not fits_storage(amount) or (fixed is not None and not fits_storage(fixed)):
            errors.append(FieldError(f"{_where(line, i)}.amount", "at most 4 decimal places", "precision"))
        elif abs(amount) >= LIMIT or (fixed is not None and abs(fixed) >= LIMIT):
            errors.append(FieldError(f"{_where(line, i)}.amount", "must be below 10^14", "range"))
        if amount or fixed:
            with_amounts += 1
        doc_total += amount
    if errors:
        raise ValidationFailed(errors)
    if with_amounts < 2:
        raise invalid("lines", "an entry needs at least two lines with amounts", "min_lines")
    if doc_total != 0:
        raise UnbalancedEntry(FieldError("lines", f"debits and credits differ by {doc_total} {currency}",
                                         "balanced"))
    if rate is None:
        rate = rate_on(uow, currency, on)
    period_id = open_period_for_posting(uow, on)
    book = chart.journal(uow, journal)

    if rate == 1:  # the functional currency (stock, most billing): a line's functional amount is its amount
        functional_amounts = [ln.amount if ln.functional is None else ln.functional for ln in lines]
    else:
        functional_amounts = [ln.functional if ln.functional is not None else to_functional(ln.amount, rate, functional)
                              for ln in lines]
    drafts = list(lines)
    difference = sum(functional_amounts, ZERO)
    if difference:
        # Converting each line at the rate may leave a cent or two; it goes to the
        # rounding account. Anything larger means the lines themselves are wrong.
        tolerance = Decimal(1).scaleb(-minor_unit(functional)) * len(lines)
        if rate == 1 or abs(difference) > tolerance:
            raise UnbalancedEntry(FieldError("lines", f"functional debits and credits differ by {difference} "
                                             f"{functional}", "balanced"))
        drafts.append(LineDraft(chart.posting_account(uow, Role.rounding), ZERO,
                                description="currency conversion rounding"))
        functional_amounts.append(-difference)

    session = uow.session
    batch = _batch(session)
    entry_id = new_id()
    values: dict[str, Any] = dict(
        id=entry_id,
        tenant_id=uow.tenant_id,
        journal_id=book.id,
        number=_provisional_number(entry_id),  # the journal's number is taken at commit
        entry_date=on,
        period_id=period_id,
        description=description[:500],
        source_type=source_type,
        source_id=source_id,
        reversal_of_id=reversal_of.id if reversal_of is not None else None,
        currency=currency,
        rate=rate,
        total=sum([f for f in functional_amounts if f > 0], ZERO),
        state="posted",
        posted_at=batch.posted_at,
        posted_by=uow.actor.ref,
    )
    # The rows are not written here: they wait in the transaction's buffer and go in with
    # one executemany per table at commit (already numbered), or as soon as anything reads
    # through the session (`_write_before_reads`), so reads in the transaction still see
    # them. The returned object holds the row's values (its number is set at commit); it
    # joins the session only if the transaction reads the ledger first (`_write`), so that
    # a query in the transaction returns this same object rather than a provisional copy.
    entry = _ENTRY_MANAGER.new_instance()  # built like a loaded row: no per-attribute change events
    entry.__dict__.update(values)
    tenant_id = uow.tenant_id
    rows: list[dict[str, Any]] = []
    for n, (line, amount) in enumerate(zip(drafts, functional_amounts, strict=True), start=1):
        rows.append({
            "tenant_id": tenant_id, "entry_id": entry_id, "line_no": n,
            "account_id": line.account.id, "entry_date": on,
            "debit": amount if amount > 0 else ZERO, "credit": -amount if amount < 0 else ZERO,
            "currency": currency, "amount": line.amount, "party_id": line.party_id,
            "product_id": line.product_id, "due_on": line.due_on, "description": line.description[:500],
        })
    batch.append(uow, _Pending(entry, book, functional, values, rows, _summary(values, book, drafts),
                               session.get_nested_transaction() or session.get_transaction()))
    session.info[_UNWRITTEN] = True
    return entry


def _summary(values: dict[str, Any], book: chart.JournalRef, drafts: list[LineDraft]) -> dict[str, Any]:
    """What the audit trail keeps of an entry: its header, line count and the accounts it
    touched, JSON-ready (the entry and its lines are immutable rows themselves, so not a
    second copy of every line). Its number is taken at commit; the id identifies it."""
    source_id, reversal = values["source_id"], values["reversal_of_id"]
    return {
        "id": str(values["id"]), "journal": book.code, "entry_date": values["entry_date"].isoformat(),
        "description": values["description"], "source_type": values["source_type"],
        "source_id": str(source_id) if source_id else None, "reversal_of_id": str(reversal) if reversal else None,
        "currency": values["currency"], "rate": str(values["rate"]), "total": str(values["total"]),
        "lines": len(drafts), "accounts": sorted({d.account.code for d in drafts}),
    }


_UNWRITTEN = "ledger.unwritten"
_PENDING = "ledger.pending"
_ENTRIES = JournalEntry.__table__
_ENTRY_MANAGER = manager_of_class(JournalEntry)
_LINES = JournalLine.__table__


@dataclass
class _Pending:
    entry: JournalEntry
    journal: chart.JournalRef
    functional: str
    values: dict[str, Any]  # the entry row
    lines: list[dict[str, Any]]  # its line rows
    summary: dict[str, Any]  # its part of the transaction's audit entry
    posted_in: SessionTransaction | None  # the innermost transaction (savepoint) it was posted in
    written_in: SessionTransaction | None = None  # None while only in the buffer
    attached: bool = False  # `entry` is in the session (written before commit)


class _Batch:
    """The entries posted in one transaction, waiting for their numbers (kept across
    savepoints), and the transaction's one `ledger.entry.post` audit entry listing them:
    a billing run or an import posting thousands of entries records one audit entry, not
    thousands, and a single document's transaction reads as before (one entry listed)."""

    def __init__(self, txn: SessionTransaction | None) -> None:
        self.txn = txn
        # The entries of one transaction are posted together: they share its time (and a
        # billing run reads the clock once, not once per entry).
        self.posted_at = clock.now()
        self.items: list[_Pending] = []
        self.audit: dict[str, Any] | None = None  # in uow.pending_audit, written at commit by the audit hook

    def append(self, uow: UnitOfWork, item: _Pending) -> None:
        self.items.append(item)
        if self.audit is None:
            # The audit writer's own format (see `audit(...)`), kept by reference so later
            # entries of the transaction join it; it is hashed into the chain at commit.
            self.audit = {"action": "ledger.entry.post", "entity_type": "journal_entry",
                          "entity_id": item.summary["id"], "before": None, "after": {"entries": []}}
            uow.pending_audit.append(self.audit)
        self.audit["after"]["entries"].append(item.summary)

    def keep(self, session: Session, kept: list[_Pending]) -> None:
        """After a savepoint rollback: only `kept` remain, in the buffer and in the audit entry."""
        self.items[:] = kept
        if self.audit is None:
            return
        self.audit["after"]["entries"][:] = [item.summary for item in kept]
        if kept:
            self.audit["entity_id"] = kept[0].summary["id"]
            return
        uow = session.info.get("uow")
        if uow is not None and any(a is self.audit for a in uow.pending_audit):
            uow.pending_audit[:] = [a for a in uow.pending_audit if a is not self.audit]
        self.audit = None


def _batch(session: Session) -> _Batch:
    batch = _held(session)
    if batch is None:
        batch = _Batch(session.get_transaction())
        session.info[_PENDING] = batch
    return batch


def _held(session: Session) -> _Batch | None:
    """The current transaction's batch, if it posted anything."""
    batch: _Batch | None = session.info.get(_PENDING)
    if batch is None or batch.txn is not session.get_transaction():
        return None
    return batch


def _write(session: Session, items: list[_Pending], *, attach: bool = False) -> None:
    """Insert the buffered entries, then their lines: one executemany per table. With
    `attach` (a read in the transaction) the entry objects join the session as persistent,
    so what the read loads is them. At commit they need not: a later read loads the
    numbered rows."""
    todo = [item for item in items if item.written_in is None]
    session.info.pop(_UNWRITTEN, None)
    if not todo:
        return
    # the session's: it begins a savepoint the session opened but has not yet begun
    connection = session.connection()
    _insert_many(connection, _ENTRIES, [item.values for item in todo])
    _insert_many(connection, _LINES, [row for item in todo for row in item.lines])
    where = session.get_nested_transaction() or session.get_transaction()
    for item in todo:
        item.written_in = where
        if attach and not item.attached:
            make_transient_to_detached(item.entry)
            session.add(item.entry)
            item.attached = True


def _insert_many(connection: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """One executemany of full rows (every column given). On SQLite a prepared INSERT
    (db.prepared: compiled once, run on the driver's cursor, each value through the same
    conversion SQLAlchemy applies): a Core insert's per-row parameter handling cost more than
    SQLite's own work, on a billing run and on a single posting alike. PostgreSQL keeps the
    Core insert, which batches the rows into multi-row VALUES statements."""
    if not rows:
        return
    if connection.dialect.name != "sqlite":
        connection.execute(insert(table), rows)
        return
    _full_insert(table).execute_many(connection, rows)


@functools.cache
def _full_insert(table: Table) -> Prepared:
    return Prepared(insert(table), columns=[c.key for c in table.columns])


@event.listens_for(Session, "do_orm_execute")
def _write_before_reads(state: Any) -> None:
    """Anything run through the session (a query, a lazy load, a refresh) sees the entries
    posted so far in the transaction: the buffer is written first."""
    session = state.session
    if session.info.get(_UNWRITTEN) and _reads_the_ledger(state.statement):
        batch = _held(session)
        if batch is not None and batch.items:
            _write(session, batch.items, attach=True)
        else:
            session.info.pop(_UNWRITTEN, None)


_LEDGER_TABLES = frozenset({_ENTRIES.name, _LINES.name})


def _reads_the_ledger(statement: Any) -> bool:
    """Whether a statement touches entries or lines (or cannot be told: raw SQL), so the
    per-transaction lookups (tenant, accounts by role, periods, rates) leave the buffer alone."""
    for element in visitors.iterate(statement):
        if isinstance(element, TextClause):
            return True
        table = element if isinstance(element, TableClause) else getattr(element, "table", None)
        if isinstance(table, TableClause) and table.name in _LEDGER_TABLES:
            return True
    return False


def _within(txn: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while txn is not None:
        if txn is ancestor:
            return True
        txn = txn.parent
    return False


@event.listens_for(Session, "after_soft_rollback")
def _forget_rolled_back(session: Session, previous: SessionTransaction) -> None:
    """A savepoint rolled back (inventory retries, refused operations): the entries posted in
    it are gone, and those written to the database inside it must be written again."""
    batch = session.info.get(_PENDING)
    if batch is None or not previous.nested:
        return
    kept = [item for item in batch.items if not _within(item.posted_in, previous)]
    for item in kept:
        if item.written_in is not None and _within(item.written_in, previous):
            item.written_in = None
            session.info[_UNWRITTEN] = True
    batch.keep(session, kept)


@event.listens_for(Session, "before_commit")
def _refuse_a_commit_past_the_hook(session: Session) -> None:
    """Entries are written by the unit of work's commit hook; a bare `session.commit()`
    would silently drop them (or keep them unnumbered), so it fails loudly instead."""
    batch = _held(session)
    if session.get_nested_transaction() is None and batch is not None and batch.items:
        raise RuntimeError("journal entries were posted in this transaction: commit it through uow.commit()")


def _provisional_number(entry_id: uuid.UUID) -> str:
    return "~" + entry_id.hex


_SEQUENCES = DocumentSequence.__table__
# Prepared once: a posting transaction runs it at every commit.
_CLAIM = Prepared(
    update(_SEQUENCES)
    .where(_SEQUENCES.c.tenant_id == bindparam("b_tenant_id"), _SEQUENCES.c.name == bindparam("b_name"))
    .values(last_value=_SEQUENCES.c.last_value + bindparam("b_count", type_=Integer()))
    .returning(_SEQUENCES.c.last_value, _SEQUENCES.c.prefix)
)


def _reserve(uow: UnitOfWork, name: str, prefix: str, count: int) -> tuple[str, int]:
    """Take `count` consecutive numbers of a journal's sequence with one UPDATE … RETURNING
    (the row stays locked until commit: gapless, no duplicates). Returns (prefix, first)."""
    connection = uow.session.connection()
    params = {"b_tenant_id": uow.tenant_id, "b_name": name, "b_count": count}
    rows = _CLAIM.execute(connection, params)
    if not rows:  # the journal's first entry: create its sequence (racing creators meet on the key)
        insert_if_missing(connection, _SEQUENCES, {"id": new_id(), "tenant_id": uow.tenant_id, "name": name,
                                                   "prefix": prefix, "last_value": 0}, key=["tenant_id", "name"])
        rows = _CLAIM.execute(connection, params)
    last_value, taken_prefix = rows[0]
    return taken_prefix, last_value - count + 1


def _number_and_announce(uow: UnitOfWork) -> None:
    """Just before commit: number the transaction's entries, write them, record their events.

    Numbers are taken at the end so a journal's sequence row is locked only for the
    commit, not for the whole business transaction (stock movements of a tenant would
    otherwise queue behind each other on the inventory journal), and journals are
    taken in code order, so two transactions never wait on each other's journals.
    One sequence UPDATE per journal reserves the numbers of all its entries."""
    session = uow.session
    batch = _held(session)
    session.info.pop(_PENDING, None)
    if batch is None or not batch.items:
        return
    pending = batch.items
    by_journal: dict[str, list[_Pending]] = {}
    for item in pending:
        by_journal.setdefault(item.journal.code, []).append(item)
    renumber: list[dict[str, Any]] = []
    for code in sorted(by_journal):
        items = by_journal[code]
        prefix, first = _reserve(uow, SEQUENCE.format(code=code), items[0].journal.prefix, len(items))
        for i, item in enumerate(items):
            number = f"{prefix}-{first + i:06d}"
            if item.written_in is None:
                item.values["number"] = number
            else:
                renumber.append({"entry_id": item.entry.id, "number": number})
            set_committed_value(item.entry, "number", number)
    _write(session, pending)
    connection = session.connection()
    if renumber:  # entries written early (something read in the transaction) still carry "~<id>"
        connection.execute(
            update(_ENTRIES).where(_ENTRIES.c.id == bindparam("entry_id")).values(number=bindparam("number")),
            renumber)
    _announce(uow, pending)


def _announce(uow: UnitOfWork, pending: list[_Pending]) -> None:
    """`journal_entry.posted.v1` per entry, recorded together (written with the transaction's other events)."""
    events = []
    for item in pending:
        summary = item.summary  # the entry's values, already as text
        data = JournalEntryPosted(
            entry_id=summary["id"], journal=summary["journal"],
            number=item.values["number"] if item.written_in is None else item.entry.number,
            date=summary["entry_date"], source_type=summary["source_type"], source_id=summary["source_id"],
            reversal_of=summary["reversal_of_id"], currency=summary["currency"], functional_currency=item.functional,
            total=amount_text(item.values["total"], item.functional),
        )
        events.append((data, "journal_entry/" + summary["id"]))
    outbox.record_events(uow, events)


on_before_commit(_number_and_announce)


@event.listens_for(Session, "before_flush")
def _refuse_changes_to_posted_entries(session: Session, _ctx: Any, _instances: Any) -> None:
    """Posted is immutable: an ORM update or delete of an entry or a line is refused
    (a correction is a reversal). Numbering at commit is a Core UPDATE, not a change here."""
    for obj in [*session.dirty, *session.deleted]:
        if isinstance(obj, JournalEntry | JournalLine) and (obj in session.deleted or session.is_modified(obj)):
            what = (f"entry {obj.id}" if isinstance(obj, JournalEntry)
                    else f"line {obj.line_no} of entry {obj.entry_id}")
            raise PostedEntryImmutable(f"journal {what} is posted and cannot change; post a reversal instead")


# --- manual entries ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ManualLine:
    account_code: str | None = None
    account_id: uuid.UUID | None = None
    debit: object = 0
    credit: object = 0
    description: str = ""
    party_id: uuid.UUID | None = None
    product_id: uuid.UUID | None = None


@dataclass(frozen=True)
class ManualEntry:
    date: date
    lines: Sequence[ManualLine]
    description: str = ""
    currency: str | None = None
    journal: str = JournalCode.general.value


def _amount(value: object, where: str, currency: str) -> Decimal:
    try:
        amount = to_decimal(value)
    except InvalidAmount as exc:
        raise invalid(where, str(exc), "decimal") from exc
    if amount < 0:
        raise invalid(where, "must not be negative", "non_negative")
    if amount >= LIMIT:
        raise invalid(where, f"must be smaller than {LIMIT:,}", "max")
    if round_money(amount, currency) != amount:
        raise invalid(where, f"at most {minor_unit(currency)} decimal places for {currency}", "precision")
    return amount


def create_manual_entry(uow: UnitOfWork, data: ManualEntry) -> JournalEntry:
    """A journal entry typed by hand (opening balances, accruals, depreciation).

    Control accounts (receivable, payable, inventory) are refused: only their
    subledgers post there, so they keep reconciling to their control account."""
    currency = data.currency or chart.functional_currency(uow)
    if not is_currency(currency):
        raise invalid("currency", f"{currency!r} is not an ISO 4217 currency", "currency")
    if data.journal not in {j.value for j in JournalCode}:
        raise invalid("journal", f"one of {', '.join(j.value for j in JournalCode)}", "choice")
    if len(data.lines) < 2:
        raise invalid("lines", "an entry needs at least two lines", "min_lines")
    check_ledger_date(data.date, "date")
    drafts: list[LineDraft] = []
    for i, line in enumerate(data.lines):
        where = f"lines[{i}]"
        if line.account_id is not None:
            account = uow.session.get(Account, line.account_id)
            if account is None:
                raise unknown(f"{where}.account_id", f"no account {line.account_id}")
        elif line.account_code:
            account = chart.account_by_code(uow, line.account_code, f"{where}.account_code")
        else:
            raise invalid(f"{where}.account_code", "give account_code or account_id", "required")
        if account.role in CONTROL_ROLES:
            raise ControlAccountRefused(FieldError(
                f"{where}.account_code",
                f"account {account.code} is the {account.role} control account; only its subledger posts there",
                "control_account"))
        debit = _amount(line.debit, f"{where}.debit", currency)
        credit = _amount(line.credit, f"{where}.credit", currency)
        if (debit > 0) == (credit > 0):
            raise invalid(where, "exactly one of debit and credit must be greater than zero", "one_side")
        _check_dimensions(uow, line.party_id, line.product_id, where)
        drafts.append(LineDraft(account, debit - credit, party_id=line.party_id, product_id=line.product_id,
                                description=line.description, field=where))
    return post_entry(uow, journal=data.journal, on=data.date, currency=currency, lines=drafts,
                      source_type="manual", description=data.description)


def _check_dimensions(uow: UnitOfWork, party_id: uuid.UUID | None, product_id: uuid.UUID | None,
                      where: str) -> None:
    """A hand-typed line's party (a customer or supplier) and product are the tenant's own: a
    stray id would tag the books with a record the tenant does not have."""
    if product_id is not None:
        with reference(f"{where}.product_id"):
            get_product(uow, product_id)
    if party_id is not None:
        try:
            get_customer(uow, party_id)
        except NotFound:
            try:
                get_supplier(uow, party_id)
            except NotFound as exc:
                raise unknown(f"{where}.party_id", f"no customer or supplier {party_id}") from exc


# --- reversal ---------------------------------------------------------------------------------


def get_entry(uow: UnitOfWork, entry_id: uuid.UUID) -> JournalEntry:
    entry = uow.session.get(JournalEntry, entry_id)
    if entry is None:
        raise NotFound("journal entry", entry_id)
    return entry


def lines_of(uow: UnitOfWork, entry: JournalEntry) -> list[JournalLine]:
    return list(uow.session.scalars(
        select(JournalLine).where(JournalLine.entry_id == entry.id).order_by(JournalLine.line_no)))


def reversal_of(uow: UnitOfWork, entry: JournalEntry) -> JournalEntry | None:
    return uow.session.scalar(select(JournalEntry).where(JournalEntry.reversal_of_id == entry.id))


def reverse_entry(
    uow: UnitOfWork,
    entry: JournalEntry,
    *,
    on: date | None = None,
    description: str | None = None,
    allow_control: bool = True,
) -> JournalEntry:
    """Post the mirror image of `entry` (same accounts, sides swapped, same functional
    amounts), linked to it. The original is untouched. Subledgers reverse their own
    entries; the API passes `allow_control=False` so a hand reversal cannot put a
    control account out of step with its subledger."""
    if on is not None:
        check_ledger_date(on, "date")
        if on < entry.entry_date:  # the books between the two days would hold the reversal alone
            raise invalid("date", f"must not be before {entry.entry_date.isoformat()}, the date of {entry.number}, "
                          "the entry it reverses", "range")
    # One reversal of an entry at a time: the entry is held (FOR NO KEY UPDATE; it never changes, so
    # only another reversal waits on it) before looking for an existing reversal, which a reversal
    # committed meanwhile then shows.
    uow.session.execute(select(JournalEntry.id).where(JournalEntry.id == entry.id)
                        .with_for_update(key_share=True))
    if reversal_of(uow, entry) is not None:
        raise EntryAlreadyReversed(f"entry {entry.number} has already been reversed")
    originals = lines_of(uow, entry)
    accounts = {a.id: a for a in uow.session.scalars(
        select(Account).where(Account.id.in_({ln.account_id for ln in originals})))}
    if not allow_control:
        for ln in originals:
            account = accounts[ln.account_id]
            if account.role in CONTROL_ROLES:
                raise ControlAccountRefused(FieldError(
                    "entry", f"entry {entry.number} touches the {account.role} control account {account.code}; "
                    "reverse it from its source document", "control_account"))
    drafts = [
        LineDraft(accounts[ln.account_id], -ln.amount, functional=ln.credit - ln.debit, party_id=ln.party_id,
                  product_id=ln.product_id, due_on=ln.due_on, description=ln.description)
        for ln in originals
    ]
    journal = uow.session.get(Journal, entry.journal_id)
    assert journal is not None
    return post_entry(
        uow, journal=journal.code, on=on or entry.entry_date, currency=entry.currency, lines=drafts,
        source_type=entry.source_type, source_id=entry.source_id,
        description=description or f"Reversal of {entry.number}", reversal_of=entry, rate=entry.rate,
        allow_archived=True,
    )
