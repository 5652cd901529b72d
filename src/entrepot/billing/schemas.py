"""Billing API shapes. Money and quantities are decimal strings; inputs take strings or numbers."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from entrepot.billing.models import CreditNote, Invoice, Payment, TaxRate
from entrepot.billing.states import INVOICE, InvoiceStatus
from entrepot.kernel.money import InvalidAmount, format_price, round_money, to_decimal

LIMIT = Decimal(10) ** 12  # storage holds 16 integer digits; no order-desk figure comes near this


def _decimal(value: Any) -> Decimal:
    try:
        result = to_decimal(value)
    except InvalidAmount as exc:
        raise ValueError(str(exc)) from exc
    if abs(result) >= LIMIT:
        raise ValueError(f"must be smaller than {LIMIT:,}")
    return result


DecimalIn = Annotated[Decimal, BeforeValidator(_decimal)]


def amount(value: Decimal | None, currency: str) -> str | None:
    return None if value is None else str(round_money(value, currency))


def number(value: Decimal | None) -> str | None:
    """A quantity or rate without trailing zeros ("5", "2.5")."""
    if value is None:
        return None
    text = format(value.normalize(), "f")
    return text


def price(value: Decimal, currency: str) -> str:
    """A unit price: the currency's places, more only when the price has them."""
    return format_price(value, currency)


def loaded(obj: Any, keys: frozenset[str]) -> Mapping[str, Any]:
    """The object's values of these columns, by key: its own `__dict__` when they are all loaded
    (what the ORM's attribute access would return, without an instrumented call per column: a
    document's answer reads some twenty per line), else read through the ORM (which loads them)."""
    values: dict[str, Any] = obj.__dict__
    return values if keys <= values.keys() else {k: getattr(obj, k) for k in keys}


class InvoiceLineRead(BaseModel):
    id: uuid.UUID
    line_no: int
    product_id: uuid.UUID | None
    sales_order_line_id: uuid.UUID | None
    description: str
    quantity: str
    unit_price: str
    line_total: str
    tax_rate_percent: str
    tax_amount: str
    quantity_credited: str


class InvoiceRead(BaseModel):
    id: uuid.UUID
    number: str
    status: str
    customer_id: uuid.UUID
    sales_order_id: uuid.UUID | None
    currency: str
    issued_on: date
    due_on: date
    discount_percent: str
    discount_until: date | None
    subtotal: str
    tax_total: str
    total: str
    amount_paid: str
    amount_discounted: str
    discount_tax: str = Field(description="Of amount_discounted, the tax part: the output tax the discount took "
                              "off (tenant setting early_discount_reduces_tax); 0 when it was all a sales discount")
    amount_credited: str
    amount_due: str
    allowed_actions: list[str]
    lines: list[InvoiceLineRead] = []
    created_at: datetime

    @classmethod
    def of(cls, inv: Invoice, *, with_lines: bool = True) -> InvoiceRead:
        c = inv.currency
        lines = []
        for line in inv.lines if with_lines else ():
            ln = loaded(line, _INVOICE_LINE_READ)
            lines.append(InvoiceLineRead(
                id=ln["id"], line_no=ln["line_no"], product_id=ln["product_id"],
                sales_order_line_id=ln["source_line_id"], description=ln["description"],
                quantity=number(ln["quantity"]) or "0", unit_price=price(ln["unit_price"], c),
                line_total=amount(ln["line_total"], c) or "0", tax_rate_percent=number(ln["tax_rate_percent"]) or "0",
                tax_amount=amount(ln["tax_amount"], c) or "0", quantity_credited=number(ln["quantity_credited"]) or "0",
            ))
        v = loaded(inv, _INVOICE_READ)
        return cls(
            id=v["id"], number=v["number"], status=v["status"], customer_id=v["customer_id"],
            sales_order_id=v["sales_order_id"], currency=c, issued_on=v["issued_on"], due_on=v["due_on"],
            discount_percent=number(v["discount_percent"]) or "0", discount_until=v["discount_until"],
            subtotal=amount(v["subtotal"], c), tax_total=amount(v["tax_total"], c), total=amount(v["total"], c),
            amount_paid=amount(v["amount_paid"], c), amount_discounted=amount(v["amount_discounted"], c),
            discount_tax=amount(v["discount_tax"], c),
            amount_credited=amount(v["amount_credited"], c), amount_due=amount(v["amount_due"], c),
            allowed_actions=INVOICE.allowed_actions(InvoiceStatus(v["status"])), lines=lines,
            created_at=v["created_at"],
        )


# the columns InvoiceRead.of reads (see `loaded`)
_INVOICE_LINE_READ = frozenset({
    "id", "line_no", "product_id", "source_line_id", "description", "quantity", "unit_price", "line_total",
    "tax_rate_percent", "tax_amount", "quantity_credited"})
_INVOICE_READ = frozenset({
    "id", "number", "status", "customer_id", "sales_order_id", "issued_on", "due_on", "discount_percent",
    "discount_until", "subtotal", "tax_total", "total", "amount_paid", "amount_discounted", "amount_credited",
    "discount_tax", "amount_due", "created_at"})


class CreditLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    invoice_line_id: uuid.UUID
    quantity: DecimalIn


class CreditNoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lines: list[CreditLineIn] | None = Field(default=None, description="Leave out to credit the whole invoice")
    reason: str = Field(default="", max_length=300)


class CreditNoteLineRead(BaseModel):
    invoice_line_id: uuid.UUID | None
    quantity: str
    line_total: str
    tax_amount: str


class CreditNoteRead(BaseModel):
    id: uuid.UUID
    number: str
    invoice_id: uuid.UUID
    customer_id: uuid.UUID
    status: str
    currency: str
    issued_on: date
    reason: str
    subtotal: str
    tax_total: str
    total: str
    applied_to_invoice: str
    refunded: str
    unapplied: str
    discount_reversed: str
    discount_tax_reversed: str = Field(description="Of discount_reversed, the tax part: put back on tax payable")
    lines: list[CreditNoteLineRead]

    @classmethod
    def of(cls, note: CreditNote) -> CreditNoteRead:
        c = note.currency
        return cls(
            id=note.id, number=note.number, invoice_id=note.invoice_id, customer_id=note.customer_id,
            status=note.status, currency=c, issued_on=note.issued_on, reason=note.reason,
            subtotal=amount(note.subtotal, c), tax_total=amount(note.tax_total, c), total=amount(note.total, c),
            applied_to_invoice=amount(note.applied_to_invoice, c), refunded=amount(note.refunded, c),
            unapplied=amount(note.unapplied, c), discount_reversed=amount(note.discount_reversed, c),
            discount_tax_reversed=amount(note.discount_tax_reversed, c),
            lines=[CreditNoteLineRead(invoice_line_id=ln.invoice_line_id, quantity=number(ln.quantity) or "0",
                                      line_total=amount(ln.line_total, c) or "0",
                                      tax_amount=amount(ln.tax_amount, c) or "0") for ln in note.lines],
        )


class AllocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    invoice_id: uuid.UUID
    amount: DecimalIn


class PaymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: uuid.UUID
    amount: DecimalIn
    currency: str = Field(min_length=3, max_length=3)
    allocations: list[AllocationIn] = Field(default_factory=list, max_length=1000)
    received_on: date | None = None
    method: str = Field(default="bank_transfer", max_length=30)
    reference: str = Field(default="", max_length=100)


class PaymentApply(BaseModel):
    model_config = ConfigDict(extra="forbid")
    allocations: list[AllocationIn] = Field(min_length=1, max_length=1000)


class RefundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: DecimalIn


class AllocationRead(BaseModel):
    invoice_id: uuid.UUID
    amount: str
    discount: str
    discount_tax: str


class PaymentRead(BaseModel):
    id: uuid.UUID
    number: str
    customer_id: uuid.UUID
    currency: str
    amount: str
    received_on: date
    method: str
    reference: str
    applied: str
    discount: str
    discount_tax: str = Field(description="Of discount, the tax part: taken off the output tax (tenant setting "
                              "early_discount_reduces_tax)")
    refunded: str
    unapplied: str
    allocations: list[AllocationRead]

    @classmethod
    def of(cls, p: Payment) -> PaymentRead:
        c = p.currency
        return cls(
            id=p.id, number=p.number, customer_id=p.customer_id, currency=c, amount=amount(p.amount, c),
            received_on=p.received_on, method=p.method, reference=p.reference, applied=amount(p.applied, c),
            discount=amount(p.discount, c), discount_tax=amount(p.discount_tax, c), refunded=amount(p.refunded, c),
            unapplied=amount(p.unapplied, c),
            allocations=[AllocationRead(invoice_id=a.invoice_id, amount=amount(a.amount, c) or "0",
                                        discount=amount(a.discount, c) or "0",
                                        discount_tax=amount(a.discount_tax, c) or "0") for a in p.allocations],
        )


class TaxRateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)
    country: str = Field(min_length=2, max_length=2)
    region: str | None = Field(default=None, max_length=20)
    tax_class: str = Field(default="*", min_length=1, max_length=40)
    rate_percent: DecimalIn
    valid_from: date | None = None
    valid_to: date | None = None


class TaxRateRead(BaseModel):
    id: uuid.UUID
    name: str
    country: str
    region: str | None
    tax_class: str
    rate_percent: str
    valid_from: date | None
    valid_to: date | None

    @classmethod
    def of(cls, r: TaxRate) -> TaxRateRead:
        return cls(id=r.id, name=r.name, country=r.country, region=r.region, tax_class=r.tax_class,
                   rate_percent=number(r.rate_percent) or "0", valid_from=r.valid_from, valid_to=r.valid_to)
