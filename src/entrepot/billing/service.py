"""Billing use cases: post invoices, issue credit notes, record and apply payments, refund.

Each function changes its documents, posts to the ledger, records audit and
outbox events in the caller's unit of work; it never commits.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, bindparam, func, or_, select
from sqlalchemy.orm import selectinload

from entrepot.billing import events
from entrepot.billing.models import (
    CreditNote,
    CreditNoteLine,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentAllocation,
    TaxRate,
)
from entrepot.billing.states import INVOICE, InvoiceStatus
from entrepot.billing.tax import HUNDRED, TaxableLine, calculate_tax
from entrepot.catalog.rules import known_country
from entrepot.db.documents import insert_document, new_row, save, working_copy
from entrepot.db.numbering import next_number
from entrepot.db.prepared import PreparedIn
from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.audit import audit, snapshot
from entrepot.identity.services.tenants import tenant_facts
from entrepot.integration.outbox import record_event, record_events
from entrepot.kernel import clock
from entrepot.kernel.dates import check_past_date
from entrepot.kernel.errors import Conflict, FieldError, NotFound, UnknownRecord, ValidationFailed, invalid, reference
from entrepot.kernel.ids import new_id
from entrepot.kernel.money import ZERO, InvalidAmount, fits_storage, format_amount, is_currency, round_money, to_decimal

OPEN_INVOICE = (InvoiceStatus.posted, InvoiceStatus.partially_paid)
DEFAULT_TERMS_DAYS = 30


class NothingToInvoice(Conflict):
    code = "nothing_to_invoice"
    title = "Nothing to invoice"


class OverAllocation(Conflict):
    code = "over_allocation"
    title = "Allocation exceeds the amount due"


class NothingToCredit(Conflict):
    code = "nothing_to_credit"
    title = "Nothing left to credit"


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True)
class InvoiceLineInput:
    product_id: uuid.UUID | None
    quantity: Decimal
    unit_price: Decimal
    description: str = ""
    tax_class: str = "standard"
    source_line_id: uuid.UUID | None = None


@dataclass(frozen=True)
class CreditLineInput:
    invoice_line_id: uuid.UUID
    quantity: Decimal


@dataclass(frozen=True)
class AllocationInput:
    invoice_id: uuid.UUID
    amount: Decimal


@dataclass
class CustomerTerms:
    currency: str
    tax_exempt: bool = False
    payment_terms_days: int = DEFAULT_TERMS_DAYS
    early_discount_percent: Decimal = ZERO
    early_discount_days: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def customer_terms(uow: UnitOfWork, customer_id: uuid.UUID) -> CustomerTerms:
    """Billing's view of a customer, through the parties service's facts, which are read once
    per unit of work (a billing run invoices many orders of the same customer)."""
    from entrepot.parties.service import customer_facts

    with reference("customer_id"):
        c = customer_facts(uow, customer_id)
    return CustomerTerms(
        currency=c.currency,
        tax_exempt=c.tax_exempt,
        # net 0 is due on receipt: only a customer without terms gets the default
        payment_terms_days=DEFAULT_TERMS_DAYS if c.payment_terms_days is None else int(c.payment_terms_days),
        early_discount_percent=to_decimal(c.early_discount_percent or 0),
        early_discount_days=int(c.early_discount_days or 0),
    )


def _posting() -> Any:
    from entrepot.ledger import posting

    return posting


# ---------------------------------------------------------------- invoices


def post_invoice(
    uow: UnitOfWork,
    *,
    customer_id: uuid.UUID,
    currency: str,
    lines: Sequence[InvoiceLineInput],
    sales_order_id: uuid.UUID | None = None,
    ship_to_country: str | None = None,
    ship_to_region: str | None = None,
    on: date | None = None,
    terms: CustomerTerms | None = None,
) -> Invoice:
    """Post an invoice: number, tax, due date and early-payment discount from terms; receivable,
    revenue and tax on the ledger; `invoice.posted.v1`. Immutable once posted."""
    if not lines:
        raise NothingToInvoice("an invoice needs at least one line with a quantity")
    on = on or clock.today()
    terms = terms or customer_terms(uow, customer_id)
    taxable = []
    for i, line in enumerate(lines):
        if line.quantity <= 0:
            raise invalid(f"lines[{i}].quantity", "must be greater than zero", "positive")
        taxable.append(TaxableLine(i, line.tax_class, line.quantity * line.unit_price))
    tax = calculate_tax(uow, currency=currency, country=ship_to_country, region=ship_to_region,
                        lines=taxable, on=on, exempt=terms.tax_exempt)
    invoice = new_row(
        Invoice,
        id=new_id(),  # known before the insert: the lines and the ledger posting reference it
        number=next_number(uow, "INV"),
        customer_id=customer_id,
        sales_order_id=sales_order_id,
        status=InvoiceStatus.posted,
        currency=currency,
        issued_on=on,
        due_on=on + timedelta(days=terms.payment_terms_days),
        discount_percent=terms.early_discount_percent,
        discount_until=(on + timedelta(days=terms.early_discount_days)
                        if terms.early_discount_percent > 0 and terms.early_discount_days > 0 else None),
        ship_to_country=ship_to_country,
        ship_to_region=ship_to_region,
        subtotal=ZERO, tax_total=ZERO, total=ZERO, amount_due=ZERO, amount_paid=ZERO, amount_discounted=ZERO,
        discount_tax=ZERO, amount_credited=ZERO,
    )
    invoice.subtotal = tax.net_total
    invoice.tax_total = tax.tax_total
    invoice.total = invoice.subtotal + invoice.tax_total
    invoice.amount_due = invoice.total
    insert_document(uow, invoice, "lines", [new_row(
        InvoiceLine, id=new_id(), invoice_id=invoice.id, line_no=i + 1, product_id=line.product_id,
        source_line_id=line.source_line_id, description=line.description, tax_class=line.tax_class,
        quantity=line.quantity, unit_price=line.unit_price, line_total=lt.net, tax_rate_percent=lt.rate_percent,
        tax_amount=lt.tax, quantity_credited=ZERO,
    ) for i, (line, lt) in enumerate(zip(lines, tax.lines, strict=True))])
    _posting().post_invoice(uow, source_id=invoice.id, number=invoice.number, on=on, currency=currency,
                            customer_id=customer_id, net=invoice.subtotal, tax=invoice.tax_total,
                            due_on=invoice.due_on)
    audit(uow, "invoice.post", "invoice", invoice.id, after=_invoice_summary(invoice))
    record_event(uow, events.InvoicePosted(
        invoice_id=str(invoice.id), number=invoice.number, customer_id=str(customer_id),
        sales_order_id=str(sales_order_id) if sales_order_id else None, currency=currency,
        subtotal=format_amount(invoice.subtotal, currency), tax_total=format_amount(invoice.tax_total, currency),
        total=format_amount(invoice.total, currency),
        due_on=invoice.due_on.isoformat(),
    ), subject=f"invoice/{invoice.id}")
    return invoice


def _invoice_summary(invoice: Invoice) -> dict[str, Any]:
    return {k: getattr(invoice, k) for k in ("number", "status", "customer_id", "currency", "subtotal",
                                              "tax_total", "total", "amount_due", "due_on")}


def get_invoice(uow: UnitOfWork, invoice_id: uuid.UUID, *, for_update: bool = False) -> Invoice:
    query = select(Invoice).where(Invoice.id == invoice_id).options(selectinload(Invoice.lines))
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    invoice = uow.session.scalar(query)
    if invoice is None:
        raise NotFound("invoice", invoice_id)
    return invoice


# The lines of a sales order, as a subquery of their ids (sales registers it: billing cannot read sales'
# tables): an invoice of a grouped invoicing run bills several orders, and names them by line only.
_order_line_ids: Callable[[uuid.UUID], Select[Any]] | None = None


def use_order_line_ids(lines_of: Callable[[uuid.UUID], Select[Any]]) -> None:
    global _order_line_ids
    _order_line_ids = lines_of


def list_invoices(uow: UnitOfWork, *, customer_id: uuid.UUID | None = None, status: str | None = None,
                  sales_order_id: uuid.UUID | None = None, number: str | None = None,
                  overdue: bool = False) -> Any:
    """Invoices, filtered; `overdue`: with an amount due after their due date (today's)."""
    query = select(Invoice)
    if number:
        query = query.where(Invoice.number == number)
    if overdue:
        query = query.where(Invoice.amount_due > 0, Invoice.due_on < clock.today())
    if customer_id:
        query = query.where(Invoice.customer_id == customer_id)
    if status:
        query = query.where(Invoice.status == status)
    if sales_order_id:
        billed = Invoice.sales_order_id == sales_order_id
        if _order_line_ids is not None:  # with the grouped invoices that bill some of its lines
            billed = or_(billed, Invoice.id.in_(select(InvoiceLine.invoice_id).where(
                InvoiceLine.source_line_id.in_(_order_line_ids(sales_order_id)))))
        query = query.where(billed)
    return query


def open_receivables(uow: UnitOfWork, customer_id: uuid.UUID) -> Decimal:
    """What the customer owes on open invoices, less unapplied credit (one statement: the credit
    check asks on every confirmation of a customer with a credit limit)."""
    due, credit, noted = uow.session.execute(select(
        select(func.sum(Invoice.amount_due)).where(
            Invoice.customer_id == customer_id, Invoice.status.in_(OPEN_INVOICE)).scalar_subquery(),
        select(func.sum(Payment.unapplied)).where(Payment.customer_id == customer_id).scalar_subquery(),
        select(func.sum(CreditNote.unapplied)).where(CreditNote.customer_id == customer_id).scalar_subquery(),
    )).one()
    return to_decimal(due or ZERO) - to_decimal(credit or ZERO) - to_decimal(noted or ZERO)


AGING_BUCKETS = ("current", "1_30", "31_60", "61_90", "over_90", "unapplied")


def aging(uow: UnitOfWork, *, on: date | None = None) -> dict[str, Any]:
    """Receivables aging by customer, in the documents' own currency: current, 1-30, 31-60, 61-90, 90+
    days past due; unapplied credit apart (negative). Amounts of different currencies are never added:
    `totals` has one per currency, and `total` is their sum only when there is one currency (None
    when there are several; the ledger's aging gives them all in the tenant's currency)."""
    on = on or clock.today()
    # (customer, currency) -> bucket -> amount: a customer buys in one currency, unless it was changed.
    rows: dict[tuple[str, str], dict[str, Decimal]] = {}
    invoices = uow.session.execute(select(Invoice.customer_id, Invoice.currency, Invoice.due_on, Invoice.amount_due)
                                   .where(Invoice.status.in_(OPEN_INVOICE)))
    for customer_id, currency, due_on, amount_due in invoices:
        days = (on - due_on).days
        bucket = ("current" if days <= 0 else "1_30" if days <= 30 else "31_60" if days <= 60
                  else "61_90" if days <= 90 else "over_90")
        rows.setdefault((str(customer_id), currency), dict.fromkeys(AGING_BUCKETS, ZERO))[bucket] += amount_due
    for model in (Payment, CreditNote):
        for customer_id, currency, unapplied in uow.session.execute(
                select(model.customer_id, model.currency, func.sum(model.unapplied))
                .group_by(model.customer_id, model.currency)):
            if unapplied:
                row = rows.setdefault((str(customer_id), currency), dict.fromkeys(AGING_BUCKETS, ZERO))
                row["unapplied"] -= to_decimal(unapplied)
    totals: dict[str, Decimal] = {}
    for (_, currency), row in rows.items():
        totals[currency] = totals.get(currency, ZERO) + sum(row.values(), ZERO)
    currencies_of = Counter(customer_id for customer_id, _ in rows)
    # Keyed by customer id; a customer with open items in two currencies has a row for each, "id/CUR".
    customers = {(cid if currencies_of[cid] == 1 else f"{cid}/{currency}"): {"currency": currency, **row}
                 for (cid, currency), row in rows.items()}
    total = None if len(totals) > 1 else sum(totals.values(), ZERO)
    return {"on": on, "customers": customers, "totals": totals, "total": total}


# ---------------------------------------------------------------- credit notes


def issue_credit_note(
    uow: UnitOfWork,
    *,
    invoice_id: uuid.UUID,
    lines: Sequence[CreditLineInput] | None = None,
    reason: str = "",
    fee_percent: Decimal = ZERO,
    on: date | None = None,
) -> CreditNote:
    """Credit an invoice in full (no lines) or by line and quantity. A restocking fee
    (`fee_percent`) reduces each credited line. What the invoice no longer owes becomes
    customer credit on the note (`unapplied`)."""
    invoice = get_invoice(uow, invoice_id, for_update=True)
    if invoice.status == InvoiceStatus.credited:
        INVOICE.apply(invoice, "credit")  # raises: names what a credited invoice allows
    by_id = {line.id: line for line in invoice.lines}
    wanted: list[tuple[InvoiceLine, Decimal]] = []
    if lines is None:
        wanted = [(line, line.quantity - line.quantity_credited) for line in invoice.lines
                  if line.quantity > line.quantity_credited]
    else:
        errors = []
        seen = set()
        for i, item in enumerate(lines):
            line = by_id.get(item.invoice_line_id)
            if line is None:
                errors.append(FieldError(f"lines[{i}].invoice_line_id", "not a line of this invoice", "exists"))
            elif item.invoice_line_id in seen:
                errors.append(FieldError(f"lines[{i}].invoice_line_id", "line given twice", "unique"))
            elif item.quantity <= 0:
                errors.append(FieldError(f"lines[{i}].quantity", "must be greater than zero", "positive"))
            elif item.quantity > line.quantity - line.quantity_credited:
                errors.append(FieldError(f"lines[{i}].quantity",
                                         f"only {line.quantity - line.quantity_credited} left to credit", "max"))
            else:
                wanted.append((line, item.quantity))
            seen.add(item.invoice_line_id)
        if errors:
            raise ValidationFailed(errors)
    if not wanted:
        raise NothingToCredit(f"invoice {invoice.number} has nothing left to credit")
    on = on or clock.today()
    cur = invoice.currency
    keep = (HUNDRED - fee_percent) / HUNDRED
    note = CreditNote(number=next_number(uow, "CN"), invoice_id=invoice.id, customer_id=invoice.customer_id,
                      currency=cur, issued_on=on, reason=reason, subtotal=ZERO, tax_total=ZERO, total=ZERO)
    earlier = _earlier_credits(uow, invoice)  # one read for every line, not one per line
    # the tax (and discount tax) earlier notes took back: the ledger values this note's with theirs, at the
    # invoice's rate, so that together they take back to the cent what the invoice booked
    tax_before, discount_tax_before = uow.session.execute(
        select(func.sum(CreditNote.tax_total), func.sum(CreditNote.discount_tax_reversed))
        .where(CreditNote.invoice_id == invoice.id)).one()
    for n, (line, qty) in enumerate(wanted):
        if qty == line.quantity - line.quantity_credited and fee_percent == 0:
            # the last of a line credits exactly what is left, so rounding never leaves cents behind
            credited = earlier.get(line.id, [])
            net = line.line_total - _credited(line, "line_total", credited, cur)
            tax = line.tax_amount - _credited(line, "tax_amount", credited, cur)
        else:
            net = round_money(line.line_total * qty / line.quantity * keep, cur)
            tax = round_money(line.tax_amount * qty / line.quantity * keep, cur)
        line.quantity_credited += qty
        note.lines.append(CreditNoteLine(line_no=n + 1, invoice_line_id=line.id, description=line.description,
                                         quantity=qty, unit_price=line.unit_price, line_total=net, tax_amount=tax))
        note.subtotal += net
        note.tax_total += tax
    note.total = note.subtotal + note.tax_total
    note.discount_reversed, note.discount_tax_reversed = _discount_earned_by(uow, invoice, note)
    owed = note.total - note.discount_reversed  # what the customer paid, or owes, for the goods credited
    absorbed = min(owed, invoice.amount_due)
    note.applied_to_invoice = absorbed
    note.unapplied = owed - absorbed
    invoice.amount_credited += note.total
    invoice.amount_due -= absorbed
    if invoice.amount_due == 0 and invoice.status in OPEN_INVOICE:
        INVOICE.apply(invoice, "credit" if invoice.amount_paid == 0 else "pay")
        if invoice.status == InvoiceStatus.paid:  # paid in part, the rest credited: paid, and told so
            record_event(uow, _invoice_paid(invoice), subject=f"invoice/{invoice.id}")
    uow.session.add(note)
    uow.session.flush()
    _posting().post_credit_note(uow, source_id=note.id, number=note.number, on=on, currency=cur,
                                customer_id=invoice.customer_id, net=note.subtotal, tax=note.tax_total,
                                discount=note.discount_reversed, discount_tax=note.discount_tax_reversed,
                                invoice_id=invoice.id, tax_before=to_decimal(tax_before or ZERO),
                                discount_tax_before=to_decimal(discount_tax_before or ZERO))
    audit(uow, "credit_note.issue", "credit_note", note.id,
          after={"number": note.number, "invoice": invoice.number, "total": note.total,
                 "discount_reversed": note.discount_reversed, "discount_tax_reversed": note.discount_tax_reversed,
                 "unapplied": note.unapplied})
    record_event(uow, events.CreditNoteIssued(
        credit_note_id=str(note.id), number=note.number, invoice_id=str(invoice.id),
        customer_id=str(invoice.customer_id), currency=cur, total=format_amount(note.total, cur),
        discount_reversed=format_amount(note.discount_reversed, cur),
        discount_tax_reversed=format_amount(note.discount_tax_reversed, cur),
        applied_to_invoice=format_amount(note.applied_to_invoice, cur), unapplied=format_amount(note.unapplied, cur),
    ), subject=f"invoice/{invoice.id}")
    return note


def _discount_earned_by(uow: UnitOfWork, invoice: Invoice, note: CreditNote) -> tuple[Decimal, Decimal]:
    """The share of the early-payment discount an invoice was settled with that the goods the note
    credits back had earned (its total, at the invoice's discount percent), and of that share the tax
    part, when the discount reduced the tax (`invoice.discount_tax`): in the proportion of the note's
    tax to its total, the goods' own. The note that credits the last of the invoice takes back exactly
    what is left of both, so cents never strand."""
    if not invoice.amount_discounted:
        return ZERO, ZERO
    earlier, earlier_tax = uow.session.execute(
        select(func.sum(CreditNote.discount_reversed), func.sum(CreditNote.discount_tax_reversed))
        .where(CreditNote.invoice_id == invoice.id)).one()
    left = invoice.amount_discounted - to_decimal(earlier or ZERO)
    left_tax = invoice.discount_tax - to_decimal(earlier_tax or ZERO)
    if all(line.quantity_credited == line.quantity for line in invoice.lines):
        return left, left_tax
    cur = invoice.currency
    reversed_ = min(left, round_money(note.total * invoice.discount_percent / HUNDRED, cur))
    if not left_tax or not reversed_:
        return reversed_, ZERO
    share = round_money(reversed_ * note.tax_total / note.total, cur)
    # never more tax back than is left of it, nor so little that the net part exceeds what is left of that
    return reversed_, max(reversed_ - (left - left_tax), min(left_tax, share))


def _earlier_credits(uow: UnitOfWork, invoice: Invoice) -> dict[uuid.UUID, list[Decimal]]:
    """The quantities earlier credit notes took of each of the invoice's lines."""
    out: dict[uuid.UUID, list[Decimal]] = {}
    for line_id, quantity in uow.session.execute(
            select(CreditNoteLine.invoice_line_id, CreditNoteLine.quantity)
            .join(CreditNote, CreditNote.id == CreditNoteLine.credit_note_id)
            .where(CreditNote.invoice_id == invoice.id)):
        out.setdefault(line_id, []).append(quantity)
    return out


def _credited(line: InvoiceLine, attr: str, quantities: Sequence[Decimal], currency: str) -> Decimal:
    """What earlier credit notes took of the line's `attr`, each at the line's value for its quantity
    (as a note without a fee credits it): a restocking fee an earlier note kept back stays kept, and is
    not handed back by the note that credits the rest."""
    return sum((round_money(getattr(line, attr) * q / line.quantity, currency) for q in quantities), ZERO)


@dataclass(frozen=True)
class _Credit:
    """Customer credit to allocate, with a payment's shape so allocations are checked one way."""

    customer_id: uuid.UUID
    currency: str
    unapplied: Decimal
    received_on: date


def apply_credit_note(uow: UnitOfWork, *, credit_note_id: uuid.UUID,
                      allocations: Sequence[AllocationInput]) -> CreditNote:
    """Apply a credit note's remaining credit to other open invoices of the customer."""
    note = get_credit_note(uow, credit_note_id, for_update=True)
    if not allocations:
        raise invalid("allocations", "give at least one invoice", "required")
    credit = _Credit(note.customer_id, note.currency, note.unapplied, clock.today())
    plan = _plan_allocations(uow, credit, allocations, allow_discount=False)  # type: ignore[arg-type]
    for inv, amount, _, _ in plan:
        note.unapplied -= amount
        note.applied_to_invoice += amount
        inv.amount_credited += amount
        inv.amount_due -= amount
        if inv.amount_due == 0:
            INVOICE.apply(inv, "pay" if inv.amount_paid else "credit")
            if inv.status == InvoiceStatus.paid:  # a credited invoice (nothing paid on it) is not told paid
                record_event(uow, _invoice_paid(inv), subject=f"invoice/{inv.id}")
    save(uow, [inv for inv, _, _, _ in plan])
    audit(uow, "credit_note.apply", "credit_note", note.id,
          after={"applied": [{"invoice": inv.number, "amount": a} for inv, a, _, _ in plan],
                 "unapplied": note.unapplied})
    record_event(uow, events.CreditNoteApplied(
        credit_note_id=str(note.id), number=note.number, customer_id=str(note.customer_id), currency=note.currency,
        allocations=[{"invoice_id": str(inv.id), "amount": format_amount(a, note.currency)}
                     for inv, a, _, _ in plan],
        unapplied=format_amount(note.unapplied, note.currency)), subject=f"invoice/{note.invoice_id}")
    return note


def refund_credit_note(uow: UnitOfWork, *, credit_note_id: uuid.UUID, amount: Decimal,
                       on: date | None = None) -> CreditNote:
    """Pay a credit note's remaining credit back to the customer."""
    note = get_credit_note(uow, credit_note_id, for_update=True)
    _check_refund(amount, note.currency)
    if amount > note.unapplied:
        raise invalid("amount", f"only {format_amount(note.unapplied, note.currency)} of this credit note is "
                      "unapplied", "max")
    note.unapplied -= amount
    note.refunded += amount
    _posting().post_customer_refund(uow, source_id=note.id, on=on or clock.today(), currency=note.currency,
                                    customer_id=note.customer_id, amount=amount)
    audit(uow, "credit_note.refund", "credit_note", note.id, after={"refunded": amount, "unapplied": note.unapplied})
    record_event(uow, events.CreditNoteRefunded(
        credit_note_id=str(note.id), number=note.number, customer_id=str(note.customer_id), currency=note.currency,
        amount=format_amount(amount, note.currency), unapplied=format_amount(note.unapplied, note.currency)),
        subject=f"invoice/{note.invoice_id}")
    return note


def documents_of_invoices(invoice_ids: Sequence[uuid.UUID]) -> list[Select[tuple[uuid.UUID]]]:
    """The billing documents that post to the ledger for these invoices, as queries of their ids for a
    caller to compose (the ledger finds the entries they posted): the invoices themselves, their credit
    notes (and the notes' refunds), and the payments allocated to them (and those payments' refunds) — a
    payment that paid other invoices too is among them. Nothing when there are no invoices."""
    if not invoice_ids:
        return []
    ids = list(invoice_ids)
    return [select(Invoice.id).where(Invoice.id.in_(ids)),
            select(CreditNote.id).where(CreditNote.invoice_id.in_(ids)),
            select(PaymentAllocation.payment_id).where(PaymentAllocation.invoice_id.in_(ids))]


def list_credit_notes(*, customer_id: uuid.UUID | None = None, invoice_id: uuid.UUID | None = None,
                      status: str | None = None) -> Select[tuple[CreditNote]]:
    """Credit notes, filtered; the caller pages them."""
    query = select(CreditNote).options(selectinload(CreditNote.lines))
    if customer_id:
        query = query.where(CreditNote.customer_id == customer_id)
    if invoice_id:
        query = query.where(CreditNote.invoice_id == invoice_id)
    if status:
        query = query.where(CreditNote.status == status)
    return query


def get_credit_note(uow: UnitOfWork, credit_note_id: uuid.UUID, *, for_update: bool = False) -> CreditNote:
    query = select(CreditNote).where(CreditNote.id == credit_note_id).options(selectinload(CreditNote.lines))
    note = uow.session.scalar(query.with_for_update() if for_update else query)
    if note is None:
        raise NotFound("credit note", credit_note_id)
    return note


# ---------------------------------------------------------------- payments


def _amount(value: object, field_name: str) -> Decimal:
    try:
        amount = to_decimal(value)
    except InvalidAmount as exc:
        raise invalid(field_name, str(exc), "decimal") from exc
    return amount


def record_payment(
    uow: UnitOfWork,
    *,
    customer_id: uuid.UUID,
    amount: Decimal,
    currency: str,
    allocations: Sequence[AllocationInput] = (),
    received_on: date | None = None,
    method: str = "bank_transfer",
    reference: str = "",
) -> Payment:
    """Record a receipt and allocate it across invoices; the rest stays as customer credit.

    An allocation that, with the early-payment discount still in terms, settles the
    invoice takes the discount. Checks everything before writing anything."""
    if not is_currency(currency):
        raise invalid("currency", f"{currency!r} is not an ISO 4217 currency", "currency")
    if amount <= 0:
        raise invalid("amount", "must be greater than zero", "positive")
    if round_money(amount, currency) != amount:
        raise invalid("amount", f"more decimal places than {currency} has", "precision")
    from entrepot.parties.service import hold_customer_for_document

    hold_customer_for_document(uow, customer_id)  # its currency stays what the payment is checked against
    terms = customer_terms(uow, customer_id)
    if currency != terms.currency:
        raise invalid("currency", f"the customer is billed in {terms.currency}, not {currency}", "currency")
    received_on = clock.today() if received_on is None else check_past_date(received_on, "received_on", "a payment")
    payment = new_row(Payment, id=new_id(), number=next_number(uow, "PAY"), customer_id=customer_id,
                      currency=currency, amount=amount, received_on=received_on, method=method,
                      reference=reference.strip(), unapplied=amount, applied=ZERO, discount=ZERO,
                      discount_tax=ZERO, refunded=ZERO)
    plan = _plan_allocations(uow, payment, allocations, allow_discount=True)
    paid = _apply(uow, payment, plan)
    save(uow, [inv for inv, _, _, _ in plan])
    insert_document(uow, payment, "allocations", [new_row(PaymentAllocation, id=new_id(), **values)
                                                   for values in _allocation_values(payment, plan)])
    _posting().post_customer_payment(uow, source_id=payment.id, on=received_on, currency=currency,
                                     customer_id=customer_id, amount=amount, discount=payment.discount,
                                     discount_tax=[(inv.id, t) for inv, _, _, t in plan if t])
    audit(uow, "payment.record", "payment", payment.id, after=snapshot(payment))
    # the invoices' paid events, then the payment's, written as one outbox statement
    record_events(uow, [*paid, (events.PaymentReceived(
        payment_id=str(payment.id), number=payment.number, customer_id=str(customer_id), currency=currency,
        amount=format_amount(amount, currency), applied=format_amount(payment.applied, currency),
        unapplied=format_amount(payment.unapplied, currency), discount=format_amount(payment.discount, currency),
        discount_tax=format_amount(payment.discount_tax, currency),
        allocations=[{"invoice_id": str(inv.id), "amount": format_amount(a, currency),
                      "discount": format_amount(d, currency), "discount_tax": format_amount(t, currency)}
                     for inv, a, d, t in plan],
    ), f"payment/{payment.id}")])
    return payment


def apply_customer_credit(uow: UnitOfWork, *, payment_id: uuid.UUID,
                          allocations: Sequence[AllocationInput]) -> Payment:
    """Apply a payment's unapplied balance to invoices (no discount: it was not paid in terms)."""
    payment = get_payment(uow, payment_id, for_update=True)
    if not allocations:
        raise invalid("allocations", "give at least one invoice", "required")
    plan = _plan_allocations(uow, payment, allocations, allow_discount=False)
    paid = _apply(uow, payment, plan)
    payment.allocations.extend(PaymentAllocation(**values) for values in _allocation_values(payment, plan))
    save(uow, [inv for inv, _, _, _ in plan])
    audit(uow, "payment.apply", "payment", payment.id, after={"applied": payment.applied,
                                                               "unapplied": payment.unapplied})
    record_events(uow, [*paid, (events.PaymentApplied(
        payment_id=str(payment.id), customer_id=str(payment.customer_id),
        allocations=[{"invoice_id": str(inv.id), "amount": format_amount(a, payment.currency)}
                     for inv, a, _, _ in plan],
    ), f"payment/{payment.id}")])
    return payment


def _check_refund(amount: Decimal, currency: str) -> None:
    """A refund pays money out: more than zero, in the currency's minor unit (a sub-cent refund
    would leave a fraction of a cent on the customer's credit and the cash account)."""
    if amount <= 0:
        raise invalid("amount", "must be greater than zero", "positive")
    if round_money(amount, currency) != amount:
        raise invalid("amount", f"more decimal places than {currency} has", "precision")


def refund_payment(uow: UnitOfWork, *, payment_id: uuid.UUID, amount: Decimal, on: date | None = None) -> Payment:
    """Pay unapplied customer credit back."""
    payment = get_payment(uow, payment_id, for_update=True)
    _check_refund(amount, payment.currency)
    if amount > payment.unapplied:
        raise invalid("amount", f"only {format_amount(payment.unapplied, payment.currency)} of this payment is "
                      "unapplied", "max")
    before = snapshot(payment)
    payment.refunded += amount
    payment.unapplied -= amount
    _posting().post_customer_refund(uow, source_id=payment.id, on=on or clock.today(), currency=payment.currency,
                                    customer_id=payment.customer_id, amount=amount)
    audit(uow, "payment.refund", "payment", payment.id, before=before, after=snapshot(payment))
    record_event(uow, events.PaymentRefunded(payment_id=str(payment.id), customer_id=str(payment.customer_id),
                                             currency=payment.currency,
                                             amount=format_amount(amount, payment.currency)),
                 subject=f"payment/{payment.id}")
    return payment


_INV = Invoice.__table__
_INV_KEYS = [c.key for c in _INV.c]
# the invoices a payment or credit is allocated to, locked in id order (two payments cannot deadlock)
_INVOICES_LOCKED = PreparedIn(lambda in_: select(*_INV.c).where(
    _INV.c.tenant_id == bindparam("tenant_id"), in_(_INV.c.id, "ids")).order_by(_INV.c.id).with_for_update())


def _locked_invoices(uow: UnitOfWork, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Invoice]:
    """Working copies of the invoices (db.documents): the caller changes them and saves them."""
    if not ids:
        return {}
    uow.session.flush()  # what the ORM still holds for this transaction is written before the read
    invoices = [working_copy(uow, Invoice, dict(zip(_INV_KEYS, row, strict=True)))
                for row in _INVOICES_LOCKED.execute(uow, {"tenant_id": uow.tenant_id}, ids=list(ids))]
    return {inv.id: inv for inv in invoices}


Plan = list[tuple[Invoice, Decimal, Decimal, Decimal]]  # (invoice, amount, discount, its tax part)


def early_discount_reduces_tax(uow: UnitOfWork) -> bool:
    """Tenant setting `early_discount_reduces_tax`: an early-payment discount taken reduces the tax due
    (its tax part comes off tax payable, EU VAT); false (default): it is all a sales discount."""
    return tenant_facts(uow).settings.get("early_discount_reduces_tax") is True


def _plan_allocations(uow: UnitOfWork, payment: Payment, allocations: Sequence[AllocationInput],
                      *, allow_discount: bool) -> Plan:
    """Check the allocations against the invoices, read locked as working copies: the caller
    changes them (_apply) and saves them."""
    errors: list[FieldError] = []
    invoices = _locked_invoices(uow, [a.invoice_id for a in allocations])
    plan: Plan = []
    seen: set[uuid.UUID] = set()
    total = ZERO
    over: list[str] = []
    for i, a in enumerate(allocations):
        f = f"allocations[{i}]"
        inv = invoices.get(a.invoice_id)
        if inv is None:
            errors.append(UnknownRecord(f"{f}.invoice_id", "no such invoice"))
            continue
        if inv.customer_id != payment.customer_id:
            errors.append(FieldError(f"{f}.invoice_id", "an invoice of another customer", "customer"))
            continue
        if a.invoice_id in seen:
            errors.append(FieldError(f"{f}.invoice_id", "invoice given twice", "unique"))
            continue
        seen.add(a.invoice_id)
        if inv.currency != payment.currency:
            errors.append(FieldError(f"{f}.invoice_id", f"invoice is in {inv.currency}", "currency"))
            continue
        if a.amount <= 0:
            errors.append(FieldError(f"{f}.amount", "must be greater than zero", "positive"))
            continue
        if round_money(a.amount, payment.currency) != a.amount:
            errors.append(FieldError(f"{f}.amount", "too many decimal places", "precision"))
            continue
        if inv.status not in OPEN_INVOICE:
            INVOICE.apply(inv, "pay")  # raises 409 naming what the invoice allows
        discount = discount_tax = ZERO
        if allow_discount and inv.discount_until and payment.received_on <= inv.discount_until \
                and inv.amount_discounted == 0:
            # on what the invoice still bills: goods credited back earned no discount
            credited, credited_tax = uow.session.execute(
                select(func.sum(CreditNote.total), func.sum(CreditNote.tax_total))
                .where(CreditNote.invoice_id == inv.id)).one()
            billed = inv.total - to_decimal(credited or ZERO)
            available = round_money(billed * inv.discount_percent / HUNDRED, inv.currency)
            if available and a.amount + available == inv.amount_due:
                discount = available
                if early_discount_reduces_tax(uow):
                    # the discount's tax part, in the proportion of tax in what the invoice still bills
                    billed_tax = inv.tax_total - to_decimal(credited_tax or ZERO)
                    discount_tax = round_money(discount * billed_tax / billed, inv.currency)
        if a.amount + discount > inv.amount_due:
            over.append(f"{inv.number}: {format_amount(a.amount, inv.currency)} > amount due "
                        f"{format_amount(inv.amount_due, inv.currency)}")
            continue
        total += a.amount
        plan.append((inv, a.amount, discount, discount_tax))
    if errors:
        raise ValidationFailed(errors)
    if total > payment.unapplied:
        raise ValidationFailed(FieldError(
            "allocations", f"allocations total {format_amount(total, payment.currency)} but only "
            f"{format_amount(payment.unapplied, payment.currency)} is available to allocate", "max"))
    if over:
        raise OverAllocation("allocation exceeds the amount due: " + "; ".join(over))
    return plan


def _allocation_values(payment: Payment, plan: Plan) -> list[dict[str, Any]]:
    """The plan's allocation rows (the caller adds them to the payment)."""
    now = clock.now()
    return [{"payment_id": payment.id, "invoice_id": inv.id, "amount": amount, "discount": discount,
             "discount_tax": discount_tax, "applied_at": now} for inv, amount, discount, discount_tax in plan]


def _apply(uow: UnitOfWork, payment: Payment, plan: Plan) -> list[tuple[events.InvoicePaid, str]]:
    """Apply the plan to the payment's and the invoices' amounts; returns the `invoice.paid.v1`
    events of the invoices it settles, for the caller to record with its own event in one
    outbox statement."""
    paid: list[tuple[events.InvoicePaid, str]] = []
    for inv, amount, discount, discount_tax in plan:
        payment.applied += amount
        payment.discount += discount
        payment.discount_tax += discount_tax
        payment.unapplied -= amount
        inv.amount_paid += amount
        inv.amount_discounted += discount
        inv.discount_tax += discount_tax
        inv.amount_due -= amount + discount
        INVOICE.apply(inv, "pay" if inv.amount_due == 0 else "pay_partially")
        if inv.amount_due == 0:
            paid.append((_invoice_paid(inv), f"invoice/{inv.id}"))
    return paid


def _invoice_paid(invoice: Invoice) -> events.InvoicePaid:
    return events.InvoicePaid(invoice_id=str(invoice.id), number=invoice.number, customer_id=str(invoice.customer_id))


def get_payment(uow: UnitOfWork, payment_id: uuid.UUID, *, for_update: bool = False) -> Payment:
    query = select(Payment).where(Payment.id == payment_id).options(selectinload(Payment.allocations))
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    payment = uow.session.scalar(query)
    if payment is None:
        raise NotFound("payment", payment_id)
    return payment


# ---------------------------------------------------------------- tax rates


def create_tax_rate(uow: UnitOfWork, *, name: str, country: str, rate_percent: Decimal, region: str | None = None,
                    tax_class: str = "*", valid_from: date | None = None, valid_to: date | None = None) -> TaxRate:
    if len(country) != 2 or not country.isalpha() or country.upper() != country or not known_country(country):
        raise invalid("country", "an ISO 3166 two-letter code in capitals", "country")
    if tax_class and not tax_class.strip():
        raise invalid("tax_class", "a product tax class, or * for every class", "required")
    tax_class = tax_class.strip() if tax_class else tax_class
    if rate_percent < 0 or rate_percent >= 100:
        raise invalid("rate_percent", "must be between 0 and 100", "range")
    if not fits_storage(rate_percent):  # kept to 4 places: more would be rounded behind the answer
        raise invalid("rate_percent", "at most 4 decimal places", "precision")
    if valid_from and valid_to and valid_to < valid_from:
        raise invalid("valid_to", "must not be before valid_from", "range")
    rate = TaxRate(name=name, country=country, region=(region or "").strip() or None, tax_class=tax_class or "*",
                   rate_percent=rate_percent, valid_from=valid_from, valid_to=valid_to)
    uow.session.add(rate)
    uow.session.flush()
    uow.session.info.pop("billing.tax_rates", None)
    audit(uow, "tax_rate.create", "tax_rate", rate.id, after=snapshot(rate))
    return rate
