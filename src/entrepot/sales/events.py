"""Events sales emits (payloads are the published contract)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from entrepot.kernel.events import EventData, event_type


class _Order(EventData):
    sales_order_id: str
    number: str
    customer_id: str


@event_type("sales_order.created.v1")
class SalesOrderCreated(_Order):
    """A sales order was entered (draft)."""

    currency: str
    total: str
    lines: int


@event_type("sales_order.updated.v1")
class SalesOrderUpdated(_Order):
    """A draft sales order was changed: `changes` names what (lines, ship_to, requested_date,
    customer_po, notes); `total` and `lines` are as it now stands."""

    total: str
    lines: int
    changes: list[str]


@event_type("sales_order.confirmed.v1")
class SalesOrderConfirmed(_Order):
    """A sales order passed the credit check and was allocated; what could not be reserved is backordered."""

    total: str
    reserved: dict[str, str]
    backordered: dict[str, str]
    promised_date: str | None = None


@event_type("sales_order.held.v1")
class SalesOrderHeld(_Order):
    """A sales order was put on hold (reason `credit`: over the customer's credit limit)."""

    reason: str
    exposure: str | None = None
    credit_limit: str | None = None


@event_type("sales_order.hold_released.v1")
class SalesOrderHoldReleased(_Order):
    """A held sales order was released and allocated."""


@event_type("sales_order.allocated.v1")
class SalesOrderAllocated(_Order):
    """Backordered quantities of a sales order were reserved after stock arrived."""

    reserved: dict[str, str]
    backordered: dict[str, str]


@event_type("sales_order.cancelled.v1")
class SalesOrderCancelled(_Order):
    """A sales order was cancelled and its reservations released."""


@event_type("sales_order.closed.v1")
class SalesOrderClosed(_Order):
    """Every line of a sales order is shipped and invoiced."""


@event_type("shipment.created.v1")
class ShipmentCreated(EventData):
    """A shipment was created from reserved quantities."""

    shipment_id: str
    number: str
    sales_order_id: str
    lines: list[dict[str, str]]


@event_type("shipment.status_changed.v1")
class ShipmentStatusChanged(EventData):
    """A shipment was picked, packed or cancelled."""

    shipment_id: str
    number: str
    sales_order_id: str
    status: str


@event_type("shipment.shipped.v1")
class ShipmentShipped(EventData):
    """A shipment left the warehouse: stock issued, cost of goods sold posted."""

    shipment_id: str
    number: str
    sales_order_id: str
    carrier: str | None = None
    service: str | None = None
    tracking_number: str | None = None
    lines: list[dict[str, str]]


@event_type("shipment.delivered.v1")
class ShipmentDelivered(EventData):
    """A shipment was delivered (reported by a carrier or set by hand)."""

    shipment_id: str
    number: str
    sales_order_id: str
    # optional: events recorded before these were added lack them
    delivered_at: str | None = Field(
        default=None, description="When it was delivered (ISO 8601); a carrier's report gives the carrier's time")
    reported_by: Literal["hand", "carrier"] | None = Field(
        default=None, description="`hand`: set through the API or a service; `carrier`: a carrier's tracking update")
    connector: str | None = Field(
        default=None, description="The inbound connector that brought the carrier's report")


@event_type("quote.created.v1")
class QuoteCreated(EventData):
    """A quote was drafted."""

    quote_id: str
    number: str
    customer_id: str
    total: str


@event_type("quote.updated.v1")
class QuoteUpdated(EventData):
    """A draft quote was changed: `changes` names what (lines, valid_until, customer_po); `total` is as it
    now stands."""

    quote_id: str
    number: str
    customer_id: str
    total: str
    changes: list[str]


@event_type("quote.sent.v1")
class QuoteSent(EventData):
    """A quote was sent to the customer."""

    quote_id: str
    number: str
    customer_id: str
    valid_until: str


@event_type("quote.accepted.v1")
class QuoteAccepted(EventData):
    """A quote was accepted and converted into a sales order."""

    quote_id: str
    number: str
    sales_order_id: str


@event_type("quote.declined.v1")
class QuoteDeclined(EventData):
    """The customer declined a sent quote (a quote lost: nothing more comes of it)."""

    quote_id: str
    number: str
    customer_id: str
    reason: str | None = None  # why, when the customer said


@event_type("quote.expired.v1")
class QuoteExpired(EventData):
    """A quote passed its validity date unaccepted."""

    quote_id: str
    number: str


@event_type("return.authorised.v1")
class ReturnAuthorised(EventData):
    """A return (RMA) was authorised against shipped lines."""

    return_id: str
    number: str
    sales_order_id: str


@event_type("return.received.v1")
class ReturnReceived(EventData):
    """Returned goods were received back (restocked or scrapped)."""

    return_id: str
    number: str
    sales_order_id: str


@event_type("return.credited.v1")
class ReturnCredited(EventData):
    """A credit note was issued for a received return (one event per note: a return billed on two invoices
    is credited by a note on each)."""

    return_id: str
    number: str
    sales_order_id: str
    credit_note_id: str


@event_type("return.unbilled.v1")
class ReturnUnbilled(EventData):
    """A return was credited, and these units of it had come back before they were invoiced: they need no
    credit note and will never be billed (the order's lines keep them as returned-unbilled). A return
    whose units were all invoiced says `return.credited.v1` only; one of both kinds says both."""

    return_id: str
    number: str
    sales_order_id: str
    lines: list[dict[str, str]]  # sales_order_line_id and quantity


@event_type("return.cancelled.v1")
class ReturnCancelled(EventData):
    """An authorised return was cancelled before anything came back: its quantities may be returned again."""

    return_id: str
    number: str
    sales_order_id: str
