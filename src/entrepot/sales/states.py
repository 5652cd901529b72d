"""Sales document lifecycles, each one table (CONVENTIONS.md: state machines).

An order keeps two independent states: `status` (the order's progress and
shipping) and `invoice_status` (how much of it is billed), as Tryton does.

Each caller action is named after its route (`release_hold`:
`POST /sales-orders/{id}/release-hold`); rows marked `SYSTEM` are taken by the
service as the consequence of another step and are never in `allowed_actions`.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from entrepot.kernel.states import SYSTEM, machine


class OrderStatus(StrEnum):
    draft = "draft"
    on_hold = "on_hold"
    confirmed = "confirmed"
    partially_shipped = "partially_shipped"
    shipped = "shipped"
    closed = "closed"
    cancelled = "cancelled"


class OrderInvoiceStatus(StrEnum):
    not_invoiced = "not_invoiced"
    partially_invoiced = "partially_invoiced"
    invoiced = "invoiced"


class ShipmentStatus(StrEnum):
    draft = "draft"
    picked = "picked"
    packed = "packed"
    shipped = "shipped"
    delivered = "delivered"
    cancelled = "cancelled"


class QuoteStatus(StrEnum):
    draft = "draft"
    sent = "sent"
    accepted = "accepted"
    declined = "declined"
    expired = "expired"


class ReturnStatus(StrEnum):
    authorised = "authorised"
    received = "received"
    credited = "credited"
    cancelled = "cancelled"


S = OrderStatus
SALES_ORDER = machine("sales order", "status", [
    ("confirm", [S.draft], S.confirmed),
    ("hold", [S.draft], S.on_hold, SYSTEM),  # the credit check on confirm
    ("release_hold", [S.on_hold], S.confirmed),
    # reserve backorders again (POST .../allocate): the state stays
    ("allocate", [S.confirmed], S.confirmed),
    ("allocate", [S.partially_shipped], S.partially_shipped),
    # a shipment of the order ships (POST /shipments/{id}/ship)
    ("ship_partially", [S.confirmed, S.partially_shipped], S.partially_shipped, SYSTEM),
    ("ship", [S.confirmed, S.partially_shipped], S.shipped, SYSTEM),
    ("close", [S.partially_shipped], S.closed),  # closed short: the rest will not ship, backorders cancelled
    ("close_fulfilled", [S.shipped], S.closed, SYSTEM),  # by itself once shipped and invoiced
    ("cancel", [S.draft, S.on_hold, S.confirmed], S.cancelled),
])

# Moved by whatever invoices the order (POST .../invoice, an invoicing run, a return credited before billing)
I = OrderInvoiceStatus  # noqa: E741 - short alias for the table below
ORDER_INVOICING = machine("sales order invoicing", "invoice_status", [
    ("invoice_partially", [I.not_invoiced, I.partially_invoiced], I.partially_invoiced, SYSTEM),
    ("invoice", [I.not_invoiced, I.partially_invoiced], I.invoiced, SYSTEM),
])

H = ShipmentStatus
SHIPMENT = machine("shipment", "status", [
    ("pick", [H.draft], H.picked),
    ("pack", [H.picked], H.packed),
    ("ship", [H.draft, H.picked, H.packed], H.shipped),
    ("deliver", [H.shipped], H.delivered),
    ("cancel", [H.draft, H.picked, H.packed], H.cancelled),
])

Q = QuoteStatus
QUOTE = machine("quote", "status", [
    ("send", [Q.draft], Q.sent),
    ("accept", [Q.draft, Q.sent], Q.accepted),
    ("decline", [Q.sent], Q.declined),
    ("expire", [Q.draft, Q.sent], Q.expired, SYSTEM),  # the scheduler, past valid_until
])


def quote_actions(status: str, valid_until: date, today: date) -> list[str]:
    """A quote's allowed actions: past its validity it can no longer be accepted, though the scheduler
    has not expired it yet."""
    actions = QUOTE.allowed_actions(QuoteStatus(status))
    return [a for a in actions if a != "accept"] if valid_until < today else actions


R = ReturnStatus
RETURN = machine("return", "status", [
    ("receive", [R.authorised], R.received),
    ("credit", [R.received], R.credited),
    ("cancel", [R.authorised], R.cancelled),
])

MACHINES = {
    "sales_order": SALES_ORDER,
    "sales_order_invoicing": ORDER_INVOICING,
    "shipment": SHIPMENT,
    "quote": QUOTE,
    "return": RETURN,
}
