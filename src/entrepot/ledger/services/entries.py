"""Posting: the one place journal entries and lines are written.

Every entry — from a business document's posting rule, typed by hand, or a
reversal — goes through `post_entry`, which refuses an unbalanced entry, a
closed period, an archived account and a currency without a rate before it
writes anything and records the audit entry. At commit (a unit-of-work hook)
the transaction's entries get their gapless journal numbers and their
`journal_entry.posted.v1` events, in the same transaction. Code that posts must
therefore commit through `uow.commit()` (as every entry point does).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from entrepot.db.infrastructure import DocumentSequence
from entrepot.db.numbering import next_number
from entrepot.db.uow import UnitOfWork, on_before_commit
from entrepot.identity.services.audit import audit, snapshot
from entrepot.integration.outbox import record_event
from entrepot.kernel import clock
from entrepot.kernel.errors import FieldError, NotFound, ValidationFailed, invalid
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

SEQUENCE = "ledger.{code}"
# Exact storage keeps 20 digits, 4 after the point; sums of many lines need headroom.
LIMIT = Decimal(10) ** 14


@dataclass
class LineDraft:
    """One line to post. `amount` is signed in the entry's currency (+ debit, − credit);
    `functional`, when given, fixes the functional amount instead of amount × rate
    (reversals, settlements at the carrying rate, FX differences)."""

    account: Account
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
    if not is_currency(currency):
        raise invalid("currency", f"{currency!r} is not an ISO 4217 currency", "currency")
    errors: list[FieldError] = []
    for i, line in enumerate(lines):
        where = line.field or f"lines[{i}]"
        if line.account.archived and not allow_archived:
            raise ArchivedAccount(FieldError(f"{where}.account", f"account {line.account.code} is archived",
                                             "archived"))
        if not fits_storage(line.amount) or (line.functional is not None and not fits_storage(line.functional)):
            errors.append(FieldError(f"{where}.amount", "at most 4 decimal places", "precision"))
        elif abs(line.amount) >= LIMIT or (line.functional is not None and abs(line.functional) >= LIMIT):
            errors.append(FieldError(f"{where}.amount", "must be below 10^14", "range"))
    if errors:
        raise ValidationFailed(errors)
    if len([ln for ln in lines if ln.amount or ln.functional]) < 2:
        raise invalid("lines", "an entry needs at least two lines with amounts", "min_lines")
    doc_total = sum((ln.amount for ln in lines), ZERO)
    if doc_total != 0:
        raise UnbalancedEntry(FieldError("lines", f"debits and credits differ by {doc_total} {currency}",
                                         "balanced"))
    if rate is None:
        rate = rate_on(uow, currency, on)
    period = open_period_for_posting(uow, on)
    book: Journal = chart.journal(uow, journal)

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
        drafts.append(LineDraft(chart.account_for_role(uow, Role.rounding), ZERO,
                                description="currency conversion rounding"))
        functional_amounts.append(-difference)

    entry_id = new_id()
    values: dict[str, Any] = dict(
        id=entry_id,
        tenant_id=uow.tenant_id,
        journal_id=book.id,
        number=_provisional_number(entry_id),  # the journal's number is taken at commit
        entry_date=on,
        period_id=period.id,
        description=description[:500],
        source_type=source_type,
        source_id=source_id,
        reversal_of_id=reversal_of.id if reversal_of is not None else None,
        currency=currency,
        rate=rate,
        total=sum((f for f in functional_amounts if f > 0), ZERO),
        state="posted",
        posted_at=clock.now(),
        posted_by=uow.actor.ref,
    )
    # Core inserts on the transaction's connection: an entry is written once and never
    # updated, so the ORM unit of work has nothing to track; the returned object is
    # attached to the session as persistent without a second write.
    connection = uow.session.connection()
    connection.execute(insert(JournalEntry), [values])
    entry = JournalEntry(**values)
    make_transient_to_detached(entry)
    uow.session.add(entry)
    rows: list[dict[str, Any]] = []
    for n, (line, amount) in enumerate(zip(drafts, functional_amounts, strict=True), start=1):
        rows.append({
            "id": new_id(), "tenant_id": uow.tenant_id, "entry_id": entry.id, "line_no": n,
            "account_id": line.account.id, "entry_date": on,
            "debit": amount if amount > 0 else ZERO, "credit": -amount if amount < 0 else ZERO,
            "currency": currency, "amount": line.amount, "party_id": line.party_id,
            "product_id": line.product_id, "due_on": line.due_on, "description": line.description[:500],
        })
    connection.execute(insert(JournalLine), rows)
    # The entry and its lines are immutable rows themselves; the audit records the
    # header, the line count and the accounts touched, not a second copy of every line.
    after = snapshot(entry)
    del after["number"]  # provisional until commit; the entry id identifies it
    after["lines"] = len(rows)
    after["accounts"] = sorted({d.account.code for d in drafts})
    audit(uow, "ledger.entry.post", "journal_entry", entry.id, after=after)
    _pending(uow).append(_Pending(entry, book, functional))
    return entry


@dataclass
class _Pending:
    entry: JournalEntry
    journal: Journal
    functional: str


def _pending(uow: UnitOfWork) -> list[_Pending]:
    """Entries posted in this transaction, waiting for their numbers (kept across savepoints)."""
    txn = uow.session.get_transaction()
    held = uow.session.info.get("ledger.pending")
    if held is None or held[0] is not txn:
        held = (txn, [])
        uow.session.info["ledger.pending"] = held
    return held[1]  # type: ignore[no-any-return]


def _provisional_number(entry_id: uuid.UUID) -> str:
    return "~" + entry_id.hex


def _number_and_announce(uow: UnitOfWork) -> None:
    """Just before commit: number the transaction's entries and record their events.

    Numbers are taken at the end so a journal's sequence row is locked only for the
    commit, not for the whole business transaction (stock movements of a tenant would
    otherwise queue behind each other on the inventory journal), and journals are
    taken in code order, so two transactions never wait on each other's journals."""
    held = uow.session.info.pop("ledger.pending", None)
    if not held or held[0] is not uow.session.get_transaction() or not held[1]:
        return
    # A savepoint (inventory retries, refused operations) may have rolled some entries back.
    ids = [item.entry.id for item in held[1]]
    kept: set[uuid.UUID] = set()
    for start in range(0, len(ids), 500):
        kept.update(uow.session.scalars(select(JournalEntry.id).where(JournalEntry.id.in_(ids[start:start + 500]))))
    pending = [item for item in held[1] if item.entry.id in kept]
    if not pending:
        return
    by_journal: dict[str, list[_Pending]] = {}
    for item in pending:
        by_journal.setdefault(item.journal.code, []).append(item)
    updates: list[dict[str, Any]] = []
    for code in sorted(by_journal):
        items = by_journal[code]
        name = SEQUENCE.format(code=code)
        prefix, _, digits = next_number(uow, name, prefix=items[0].journal.prefix).rpartition("-")
        first = int(digits)
        if len(items) > 1:
            uow.session.execute(
                update(DocumentSequence)
                .where(DocumentSequence.tenant_id == uow.tenant_id, DocumentSequence.name == name)
                .values(last_value=first + len(items) - 1).execution_options(synchronize_session=False))
        for i, item in enumerate(items):
            number = f"{prefix}-{first + i:06d}"
            updates.append({"entry_id": item.entry.id, "number": number})
            set_committed_value(item.entry, "number", number)
    table = JournalEntry.__table__
    uow.session.connection().execute(
        update(table).where(table.c.id == bindparam("entry_id")).values(number=bindparam("number")), updates)
    for item in pending:
        entry = item.entry
        record_event(
            uow,
            JournalEntryPosted(
                entry_id=str(entry.id), journal=item.journal.code, number=entry.number,
                date=entry.entry_date.isoformat(), source_type=entry.source_type,
                source_id=str(entry.source_id) if entry.source_id else None,
                reversal_of=str(entry.reversal_of_id) if entry.reversal_of_id else None, currency=entry.currency,
                functional_currency=item.functional, total=amount_text(entry.total, item.functional),
            ),
            subject=f"journal_entry/{entry.id}",
        )


on_before_commit(_number_and_announce)


@event.listens_for(Session, "before_flush")
def _refuse_changes_to_posted_entries(session: Session, _ctx: Any, _instances: Any) -> None:
    """Posted is immutable: an ORM update or delete of an entry or a line is refused
    (a correction is a reversal). Numbering at commit is a Core UPDATE, not a change here."""
    for obj in [*session.dirty, *session.deleted]:
        if isinstance(obj, JournalEntry | JournalLine) and (obj in session.deleted or session.is_modified(obj)):
            raise PostedEntryImmutable(f"journal {type(obj).__name__} {obj.id} is posted and cannot change; "
                                       "post a reversal instead")


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
    drafts: list[LineDraft] = []
    for i, line in enumerate(data.lines):
        where = f"lines[{i}]"
        if line.account_id is not None:
            account = uow.session.get(Account, line.account_id)
            if account is None:
                raise invalid(f"{where}.account_id", f"no account {line.account_id}", "exists")
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
        drafts.append(LineDraft(account, debit - credit, party_id=line.party_id, product_id=line.product_id,
                                description=line.description, field=where))
    return post_entry(uow, journal=data.journal, on=data.date, currency=currency, lines=drafts,
                      source_type="manual", description=data.description)


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
