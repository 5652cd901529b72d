"""Sales API shapes. Money and quantities are decimal strings; inputs take strings or numbers."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from entrepot.billing.schemas import DecimalIn, amount, loaded, number, price
from entrepot.kernel import clock
from entrepot.kernel.money import round_money
from entrepot.sales.models import Quote, ReturnAuthorization, SalesOrder, Shipment
from entrepot.sales.states import (
    RETURN,
    SALES_ORDER,
    SHIPMENT,
    OrderStatus,
    ReturnStatus,
    ShipmentStatus,
    quote_actions,
)


class ShipToIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=200)
    line1: str = Field(default="", max_length=200)
    line2: str = Field(default="", max_length=200)
    city: str = Field(default="", max_length=100)
    region: str = Field(default="", max_length=100)
    postal_code: str = Field(default="", max_length=20)
    country: str = Field(min_length=2, max_length=2)


class SalesOrderLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_id: uuid.UUID
    quantity: DecimalIn
    unit_price: DecimalIn | None = Field(default=None, description="Leave out to price by the pricing engine")


class SalesOrderCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: uuid.UUID
    lines: list[SalesOrderLineIn] = Field(min_length=1, max_length=5000)
    ship_to: ShipToIn | None = None
    requested_date: date | None = None
    customer_po: str | None = Field(default=None, max_length=60)
    channel: str | None = Field(default=None, max_length=40)
    notes: str = Field(default="", max_length=1000)
    shipping_carrier: str | None = Field(default=None, max_length=60,
                                         description="With shipping_service: charge shipping from its rate table")
    shipping_service: str | None = Field(default=None, max_length=60)


class SalesOrderUpdate(BaseModel):
    """A draft order's changes: only the fields sent change; `lines` replaces all the lines."""
    model_config = ConfigDict(extra="forbid")
    lines: list[SalesOrderLineIn] | None = Field(default=None, min_length=1, max_length=5000)
    ship_to: ShipToIn | None = Field(default=None, description="null: the customer's default ship-to")
    requested_date: date | None = None
    customer_po: str | None = Field(default=None, max_length=60)
    notes: str | None = Field(default=None, max_length=1000)


class SalesOrderLineRead(BaseModel):
    id: uuid.UUID
    line_no: int
    product_id: uuid.UUID
    sku: str
    description: str
    quantity: str
    unit_price: str
    price_source: str
    line_total: str
    tax_rate_percent: str
    tax_amount: str
    quantity_reserved: str | None = None
    quantity_backordered: str
    quantity_shipped: str
    quantity_invoiced: str
    quantity_returned: str


class CreditPositionRead(BaseModel):
    """What the credit check of the customer's next order counts, in the customer's currency."""
    customer_id: uuid.UUID
    currency: str
    credit_limit: str | None = Field(description="None: no limit, orders are never held for credit")
    open_receivables: str = Field(description="Open invoices less unapplied payments and credit notes")
    uninvoiced_orders: str = Field(description="Confirmed orders' value not invoiced yet (of an order closed short, "
                                                   "what it shipped and is not yet billed for)")
    exposure: str = Field(description="open_receivables + uninvoiced_orders")
    available: str | None = Field(description="credit_limit - exposure (negative when over); None without a limit")
    orders_on_credit_hold: int

    @classmethod
    def of(cls, p: Any) -> CreditPositionRead:
        c = p.currency
        return cls(customer_id=p.customer_id, currency=c, credit_limit=amount(p.credit_limit, c),
                   open_receivables=str(round_money(p.open_receivables, c)),
                   uninvoiced_orders=str(round_money(p.uninvoiced_orders, c)),
                   exposure=str(round_money(p.exposure, c)), available=amount(p.available, c),
                   orders_on_credit_hold=p.orders_on_credit_hold)


class SalesOrderRead(BaseModel):
    id: uuid.UUID
    number: str
    status: str
    invoice_status: str
    hold_reason: str | None
    customer_id: uuid.UUID
    currency: str
    order_date: date
    requested_date: date | None
    promised_date: date | None
    customer_po: str | None
    channel: str | None
    ship_to: dict[str, Any]
    quote_id: uuid.UUID | None
    subtotal: str
    tax_total: str
    total: str
    invoiced_total: str
    shipping_carrier: str | None
    shipping_service: str | None
    shipping_charge: str
    notes: str
    allowed_actions: list[str]
    lines: list[SalesOrderLineRead]
    created_at: datetime
    version: int

    @classmethod
    def of(cls, o: SalesOrder, *, reserved: dict[uuid.UUID, Decimal] | None = None,
           backordered: dict[uuid.UUID, Decimal] | None = None) -> SalesOrderRead:
        c = o.currency
        lines = []
        for line in o.lines:
            ln = loaded(line, _ORDER_LINE_READ)
            lines.append(SalesOrderLineRead(
                id=ln["id"], line_no=ln["line_no"], product_id=ln["product_id"], sku=ln["sku"],
                description=ln["description"], quantity=number(ln["quantity"]) or "0",
                unit_price=price(ln["unit_price"], c), price_source=ln["price_source"],
                line_total=amount(ln["line_total"], c) or "0", tax_rate_percent=number(ln["tax_rate_percent"]) or "0",
                tax_amount=amount(ln["tax_amount"], c) or "0",
                quantity_reserved=number(reserved.get(ln["id"])) if reserved is not None else None,
                quantity_backordered=number(backordered.get(ln["id"], ln["quantity_backordered"])
                                            if backordered is not None else ln["quantity_backordered"]) or "0",
                quantity_shipped=number(ln["quantity_shipped"]) or "0",
                quantity_invoiced=number(ln["quantity_invoiced"]) or "0",
                quantity_returned=number(ln["quantity_returned"]) or "0",
            ))
        v = loaded(o, _ORDER_READ)
        return cls(
            id=v["id"], number=v["number"], status=v["status"], invoice_status=v["invoice_status"],
            hold_reason=v["hold_reason"], customer_id=v["customer_id"], currency=c, order_date=v["order_date"],
            requested_date=v["requested_date"], promised_date=v["promised_date"], customer_po=v["customer_po"],
            channel=v["channel"], ship_to=v["ship_to"] or {}, quote_id=v["quote_id"],
            subtotal=amount(v["subtotal"], c), tax_total=amount(v["tax_total"], c), total=amount(v["total"], c),
            invoiced_total=amount(v["invoiced_total"], c), shipping_carrier=v["shipping_carrier"],
            shipping_service=v["shipping_service"], shipping_charge=amount(v["shipping_charge"], c),
            notes=v["notes"] or "", allowed_actions=SALES_ORDER.allowed_actions(OrderStatus(v["status"])), lines=lines,
            created_at=v["created_at"], version=v["version"],
        )


# the columns SalesOrderRead.of reads (see billing.schemas.loaded)
_ORDER_LINE_READ = frozenset({
    "id", "line_no", "product_id", "sku", "description", "quantity", "unit_price", "price_source", "line_total",
    "tax_rate_percent", "tax_amount", "quantity_backordered", "quantity_shipped", "quantity_invoiced",
    "quantity_returned"})
_ORDER_READ = frozenset({
    "id", "number", "status", "invoice_status", "hold_reason", "customer_id", "order_date", "requested_date",
    "promised_date", "customer_po", "channel", "ship_to", "quote_id", "subtotal", "tax_total", "total",
    "invoiced_total", "shipping_carrier", "shipping_service", "shipping_charge", "notes", "created_at", "version"})


class ShipmentLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sales_order_line_id: uuid.UUID
    quantity: DecimalIn


class ShipmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sales_order_id: uuid.UUID
    lines: list[ShipmentLineIn] | None = Field(default=None, max_length=5000,
                                               description="Leave out to ship everything reserved")
    warehouse_id: uuid.UUID | None = Field(default=None, description=(
        "Ship only what is reserved in this warehouse (lines reserved in several ship in one shipment "
        "per warehouse); leave out to ship from any"))


class PackageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    weight_kg: DecimalIn
    reference: str = Field(default="", max_length=60)


class ShipmentPack(BaseModel):
    model_config = ConfigDict(extra="forbid")
    packages: list[PackageIn] = Field(default_factory=list, max_length=500)


class ShipmentShip(BaseModel):
    model_config = ConfigDict(extra="forbid")
    carrier: str | None = Field(default=None, max_length=60)
    service: str | None = Field(default=None, max_length=60)
    tracking_number: str | None = Field(default=None, max_length=100)


class ShippedLotRead(BaseModel):
    lot_code: str | None = Field(description="None for a serial-tracked product without lots")
    quantity: str
    serials: list[str]


def _shipped_lot(lot: dict[str, Any]) -> ShippedLotRead:
    return ShippedLotRead(lot_code=lot.get("lot_code"), quantity=number(Decimal(lot.get("quantity") or 0)) or "0",
                          serials=list(lot.get("serials") or []))


class ShipmentLineRead(BaseModel):
    id: uuid.UUID
    sales_order_line_id: uuid.UUID
    product_id: uuid.UUID
    quantity: str
    warehouse_id: uuid.UUID | None
    lots: list[ShippedLotRead] = Field(description="Once shipped: the lots and serial numbers that left")


class ShipmentRead(BaseModel):
    id: uuid.UUID
    number: str
    sales_order_id: uuid.UUID
    customer_id: uuid.UUID
    status: str
    carrier: str | None
    service: str | None
    tracking_number: str | None
    packages: list[Any]
    shipped_at: datetime | None
    delivered_at: datetime | None
    allowed_actions: list[str]
    lines: list[ShipmentLineRead]

    @classmethod
    def of(cls, s: Shipment) -> ShipmentRead:
        lines = []
        for line in s.lines:
            ln = loaded(line, _SHIPMENT_LINE_READ)
            lines.append(ShipmentLineRead(id=ln["id"], sales_order_line_id=ln["sales_order_line_id"],
                                          product_id=ln["product_id"], quantity=number(ln["quantity"]) or "0",
                                          warehouse_id=ln["warehouse_id"],
                                          lots=[_shipped_lot(lot) for lot in ln["lots"] or []]))
        v = loaded(s, _SHIPMENT_READ)
        return cls(
            id=v["id"], number=v["number"], sales_order_id=v["sales_order_id"], customer_id=v["customer_id"],
            status=v["status"], carrier=v["carrier"], service=v["service"], tracking_number=v["tracking_number"],
            packages=v["packages"] or [], shipped_at=v["shipped_at"], delivered_at=v["delivered_at"],
            allowed_actions=SHIPMENT.allowed_actions(ShipmentStatus(v["status"])), lines=lines,
        )


# the columns ShipmentRead.of reads (see billing.schemas.loaded)
_SHIPMENT_LINE_READ = frozenset({"id", "sales_order_line_id", "product_id", "quantity", "warehouse_id", "lots"})
_SHIPMENT_READ = frozenset({
    "id", "number", "sales_order_id", "customer_id", "status", "carrier", "service", "tracking_number", "packages",
    "shipped_at", "delivered_at"})


class PickRead(BaseModel):
    warehouse_id: uuid.UUID
    warehouse_code: str
    location_id: uuid.UUID
    location_code: str
    lot_id: uuid.UUID | None
    lot_code: str | None
    expiry_date: date | None
    quantity: str
    serials: list[str] = Field(description="serial-tracked products: the serial numbers the issue would take now "
                                           "(serials are not reserved one by one)")
    being_counted: bool = Field(description="the location is being counted: the shipment cannot ship until the "
                                            "count is posted or cancelled (409 location_locked)")


class PickListLineRead(BaseModel):
    shipment_line_id: uuid.UUID
    line_no: int
    sales_order_line_id: uuid.UUID
    product_id: uuid.UUID
    sku: str
    description: str
    quantity: str
    short: str = Field(description="on the shipment but no longer reserved: nothing to pick for it")
    picks: list[PickRead]


class PickListRead(BaseModel):
    shipment_id: uuid.UUID
    number: str
    sales_order_id: uuid.UUID
    status: str
    lines: list[PickListLineRead]

    @classmethod
    def of(cls, p: Any) -> PickListRead:
        s = p.shipment
        return cls(shipment_id=s.id, number=s.number, sales_order_id=s.sales_order_id, status=s.status, lines=[
            PickListLineRead(
                shipment_line_id=ln.shipment_line.id, line_no=ln.shipment_line.line_no,
                sales_order_line_id=ln.order_line.id, product_id=ln.order_line.product_id, sku=ln.order_line.sku,
                description=ln.order_line.description, quantity=number(ln.shipment_line.quantity) or "0",
                short=number(ln.short) or "0",
                picks=[PickRead(warehouse_id=k.warehouse_id, warehouse_code=k.warehouse_code,
                                location_id=k.location_id, location_code=k.location_code, lot_id=k.lot_id,
                                lot_code=k.lot_code, expiry_date=k.expiry_date, quantity=number(k.quantity) or "0",
                                serials=list(k.serials), being_counted=k.being_counted) for k in ln.picks])
            for ln in p.lines])


class TimelineEntry(BaseModel):
    sequence: int
    id: uuid.UUID
    type: str
    subject: str
    time: datetime
    data: dict[str, Any]


class QuoteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: uuid.UUID
    lines: list[SalesOrderLineIn] = Field(min_length=1, max_length=5000)
    valid_until: date | None = None
    channel: str | None = Field(default=None, max_length=40)
    customer_po: str | None = Field(default=None, max_length=60)


class QuoteUpdate(BaseModel):
    """A draft quote's changes: only the fields sent change; `lines` replaces all the lines."""
    model_config = ConfigDict(extra="forbid")
    lines: list[SalesOrderLineIn] | None = Field(default=None, min_length=1, max_length=5000)
    valid_until: date | None = None
    customer_po: str | None = Field(default=None, max_length=60)


class QuoteAccept(BaseModel):
    """What the order from an accepted quote needs beyond the quote: where it ships, when, and by which
    carrier service its shipping is charged (the quote's lines and prices are taken as they are)."""
    model_config = ConfigDict(extra="forbid")
    ship_to: ShipToIn | None = None
    requested_date: date | None = None
    notes: str = Field(default="", max_length=1000)
    shipping_carrier: str | None = Field(default=None, max_length=60,
                                         description="With shipping_service: charge shipping from its rate table")
    shipping_service: str | None = Field(default=None, max_length=60)


class QuoteDecline(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # at most 500 characters once trimmed: the service checks (a reason pasted with spaces around it fits)
    reason: str | None = Field(default=None, description="Why the customer declined (price, lead time, a "
                                                         "competitor...); at most 500 characters")


class QuoteLineRead(BaseModel):
    id: uuid.UUID
    product_id: uuid.UUID
    sku: str
    quantity: str
    unit_price: str
    price_source: str
    line_total: str
    tax_amount: str


class QuoteRead(BaseModel):
    id: uuid.UUID
    number: str
    status: str
    customer_id: uuid.UUID
    currency: str
    valid_until: date
    channel: str | None
    customer_po: str | None
    subtotal: str
    tax_total: str
    total: str
    sales_order_id: uuid.UUID | None
    decline_reason: str | None = None
    allowed_actions: list[str]
    lines: list[QuoteLineRead]
    version: int

    @classmethod
    def of(cls, q: Quote) -> QuoteRead:
        c = q.currency
        return cls(
            id=q.id, number=q.number, status=q.status, customer_id=q.customer_id, currency=c,
            valid_until=q.valid_until, channel=q.channel, customer_po=q.customer_po,
            subtotal=amount(q.subtotal, c), tax_total=amount(q.tax_total, c),
            total=amount(q.total, c), sales_order_id=q.sales_order_id, decline_reason=q.decline_reason,
            version=q.version, allowed_actions=quote_actions(q.status, q.valid_until, clock.today()),
            lines=[QuoteLineRead(id=ln.id, product_id=ln.product_id, sku=ln.sku, quantity=number(ln.quantity) or "0",
                                 unit_price=price(ln.unit_price, c), price_source=ln.price_source,
                                 line_total=amount(ln.line_total, c) or "0", tax_amount=amount(ln.tax_amount, c) or "0")
                   for ln in q.lines],
        )


class ReturnLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sales_order_line_id: uuid.UUID
    quantity: DecimalIn
    disposition: str = Field(default="restock", pattern="^(restock|scrap)$")


class ReturnCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sales_order_id: uuid.UUID
    lines: list[ReturnLineIn] = Field(min_length=1, max_length=1000)
    reason: str = Field(default="", max_length=300)
    restocking_fee_percent: DecimalIn = Decimal(0)


class ReturnLineRead(BaseModel):
    id: uuid.UUID
    sales_order_line_id: uuid.UUID
    product_id: uuid.UUID
    quantity: str
    quantity_received: str
    disposition: str


class ReturnRead(BaseModel):
    id: uuid.UUID
    number: str
    sales_order_id: uuid.UUID
    customer_id: uuid.UUID
    status: str
    reason: str
    restocking_fee_percent: str
    credit_note_id: uuid.UUID | None
    allowed_actions: list[str]
    lines: list[ReturnLineRead]

    @classmethod
    def of(cls, r: ReturnAuthorization) -> ReturnRead:
        return cls(
            id=r.id, number=r.number, sales_order_id=r.sales_order_id, customer_id=r.customer_id, status=r.status,
            reason=r.reason, restocking_fee_percent=number(r.restocking_fee_percent) or "0",
            credit_note_id=r.credit_note_id, allowed_actions=RETURN.allowed_actions(ReturnStatus(r.status)),
            lines=[ReturnLineRead(id=ln.id, sales_order_line_id=ln.sales_order_line_id, product_id=ln.product_id,
                                  quantity=number(ln.quantity) or "0",
                                  quantity_received=number(ln.quantity_received) or "0", disposition=ln.disposition)
                   for ln in r.lines],
        )


class ShippingRateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    carrier: str = Field(min_length=1, max_length=60)
    service: str = Field(min_length=1, max_length=60)
    zone: str = Field(default="*", min_length=1, max_length=2)
    max_weight_kg: DecimalIn
    charge: DecimalIn
    currency: str = Field(min_length=3, max_length=3)
    free_over: DecimalIn | None = None


class ShippingRateRead(BaseModel):
    id: uuid.UUID
    carrier: str
    service: str
    zone: str
    max_weight_kg: str
    charge: str
    currency: str
    free_over: str | None

    @classmethod
    def of(cls, r: Any) -> ShippingRateRead:
        return cls(id=r.id, carrier=r.carrier, service=r.service, zone=r.zone,
                   max_weight_kg=number(r.max_weight_kg) or "0", charge=amount(r.charge, r.currency) or "0",
                   currency=r.currency, free_over=amount(r.free_over, r.currency))


class InvoicingRun(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: uuid.UUID | None = Field(default=None, description="Only this customer; all when left out")
    through: date | None = Field(default=None, description="A period's last day: only what shipped on or before "
                                 "it (UTC) is invoiced; everything shipped when left out")
    on: date | None = Field(default=None, description="The invoices' date (default today)")


class ReturnReceiptLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    return_line_id: uuid.UUID
    quantity: DecimalIn
    lot_code: str | None = Field(default=None, max_length=64)
    serials: list[str] = Field(default_factory=list, max_length=10000)


class ReturnReceive(BaseModel):
    model_config = ConfigDict(extra="forbid")
    lines: list[ReturnReceiptLineIn] | None = Field(default=None, max_length=1000,
                                                    description="Leave out to receive everything authorised")
    warehouse_id: uuid.UUID | None = Field(default=None, description="Default: the warehouse the goods left")
