"""Events billing emits (payloads are the published contract)."""

from __future__ import annotations

from entrepot.kernel.events import EventData, event_type


@event_type("invoice.posted.v1")
class InvoicePosted(EventData):
    """An invoice was posted: receivable, revenue and tax are on the ledger."""

    invoice_id: str
    number: str
    customer_id: str
    sales_order_id: str | None = None
    currency: str
    subtotal: str
    tax_total: str
    total: str
    due_on: str


@event_type("invoice.paid.v1")
class InvoicePaid(EventData):
    """An invoice's amount due reached zero through payments."""

    invoice_id: str
    number: str
    customer_id: str


@event_type("credit_note.issued.v1")
class CreditNoteIssued(EventData):
    """A credit note was issued against an invoice. `total` is what it credits of the goods (revenue and
    tax); `discount_reversed` the early-payment discount those goods had earned, taken back (the
    customer is credited `total` less it), and `discount_tax_reversed` its tax part, put back on the
    tax payable when the discount had reduced the tax; `applied_to_invoice` what it took off the invoice's amount
    due, and `unapplied` the rest, kept as customer credit."""

    credit_note_id: str
    number: str
    invoice_id: str
    customer_id: str
    currency: str
    total: str
    discount_reversed: str | None = None
    discount_tax_reversed: str | None = None
    applied_to_invoice: str | None = None
    unapplied: str | None = None


@event_type("credit_note.applied.v1")
class CreditNoteApplied(EventData):
    """A credit note's remaining credit was applied to other open invoices of the customer."""

    credit_note_id: str
    number: str
    customer_id: str
    currency: str
    allocations: list[dict[str, str]]
    unapplied: str


@event_type("credit_note.refunded.v1")
class CreditNoteRefunded(EventData):
    """A credit note's remaining credit was paid back to the customer."""

    credit_note_id: str
    number: str
    customer_id: str
    currency: str
    amount: str
    unapplied: str


@event_type("payment.received.v1")
class PaymentReceived(EventData):
    """A customer payment was recorded and allocated (any rest is customer credit). `discount` is the
    early-payment discount taken, and `discount_tax` its tax part, taken off the output tax when the
    tenant's discounts reduce the tax (each allocation says both for its invoice)."""

    payment_id: str
    number: str
    customer_id: str
    currency: str
    amount: str
    applied: str
    unapplied: str
    discount: str
    discount_tax: str | None = None
    allocations: list[dict[str, str]]


@event_type("payment.applied.v1")
class PaymentApplied(EventData):
    """Unapplied customer credit was applied to invoices."""

    payment_id: str
    customer_id: str
    allocations: list[dict[str, str]]


@event_type("payment.refunded.v1")
class PaymentRefunded(EventData):
    """Unapplied customer credit was paid back to the customer."""

    payment_id: str
    customer_id: str
    currency: str
    amount: str
