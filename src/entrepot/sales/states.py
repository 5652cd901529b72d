"""Sales document lifecycles, each one table (CONVENTIONS.md: state machines).

An order keeps two independent states: `status` (the order's progress and
shipping) and `invoice_status` (how much of it is billed), as Tryton does.
"""

from __future__ import annotations

from enum import StrEnum

from entrepot.kernel.states import machine


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
    ("hold", [S.draft], S.on_hold),  # the credit check on confirm
    ("release_hold", [S.on_hold], S.confirmed),
    ("ship_partially", [S.confirmed, S.partially_shipped], S.partially_shipped),
    ("ship", [S.confirmed, S.partially_shipped], S.shipped),
    ("close", [S.shipped], S.closed),
    ("close_short", [S.partially_shipped], S.closed),  # the rest will not ship: backorders cancelled
    ("cancel", [S.draft, S.on_hold, S.confirmed], S.cancelled),
])

I = OrderInvoiceStatus  # noqa: E741 - short alias for the table below
ORDER_INVOICING = machine("sales order invoicing", "invoice_status", [
    ("invoice_partially", [I.not_invoiced, I.partially_invoiced], I.partially_invoiced),
    ("invoice", [I.not_invoiced, I.partially_invoiced], I.invoiced),
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
    ("expire", [Q.draft, Q.sent], Q.expired),
])

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
