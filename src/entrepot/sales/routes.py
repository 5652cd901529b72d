"""Sales HTTP: orders, shipments, quotes, returns, the order timeline. Thin: parse, call, commit, render."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from entrepot.api.deps import Requires
from entrepot.api.etag import check_if_match, etag_of, set_etag
from entrepot.api.pagination import FromDate, Page, ToDate, paginate, within
from entrepot.api.responses import model_json
from entrepot.billing import permissions as billing_perms
from entrepot.billing.schemas import CreditNoteRead, InvoiceRead
from entrepot.db.uow import UnitOfWork
from entrepot.kernel.text import stripped_or_none
from entrepot.sales import permissions as perms
from entrepot.sales import quotes, returns, service, shipping
from entrepot.sales.models import Quote, ReturnAuthorization, SalesOrder, Shipment, ShippingRate
from entrepot.sales.schemas import (
    CreditPositionRead,
    InvoicingRun,
    PickListRead,
    QuoteAccept,
    QuoteCreate,
    QuoteDecline,
    QuoteRead,
    QuoteUpdate,
    ReturnCreate,
    ReturnRead,
    ReturnReceive,
    SalesOrderCreate,
    SalesOrderLineIn,
    SalesOrderRead,
    SalesOrderUpdate,
    ShipmentCreate,
    ShipmentPack,
    ShipmentRead,
    ShipmentShip,
    ShippingRateCreate,
    ShippingRateRead,
    TimelineEntry,
)
from entrepot.sales.states import OrderInvoiceStatus, OrderStatus, QuoteStatus, ReturnStatus, ShipmentStatus

router = APIRouter(tags=["sales"])
Uow = UnitOfWork


def _order_read(uow: UnitOfWork, order: SalesOrder) -> SalesOrderRead:
    """With live reserved/backordered quantities for open orders (service.live_quantities). Actions
    call it before they commit, so the quantities are those of their own transaction; the flush
    first makes `version` the one this transaction writes."""
    uow.session.flush()
    reserved, backordered = service.live_quantities(uow, order)
    return SalesOrderRead.of(order, reserved=reserved, backordered=backordered)


# ---------------------------------------------------------------- orders


def _line_inputs(lines: list[SalesOrderLineIn]) -> list[service.OrderLineInput]:
    return [service.OrderLineInput(ln.product_id, ln.quantity, ln.unit_price) for ln in lines]


def _draft_changes(body: Any) -> dict[str, Any]:
    """A draft's PATCH body as the service takes it: the fields sent, lines as line inputs."""
    changes = body.model_dump(exclude_unset=True)
    if body.lines is not None:
        changes["lines"] = _line_inputs(body.lines)
    return changes


@router.post("/sales-orders", response_model=SalesOrderRead, status_code=201, summary="Enter a draft sales order")
def create_sales_order(body: SalesOrderCreate, uow: Annotated[Uow, Requires(perms.ORDER_CREATE)]) -> Response:
    order = service.create_sales_order(
        uow, customer_id=body.customer_id,
        lines=_line_inputs(body.lines),
        ship_to=body.ship_to.model_dump() if body.ship_to else None, requested_date=body.requested_date,
        customer_po=body.customer_po, channel=body.channel, notes=body.notes,
        shipping=(body.shipping_carrier, body.shipping_service),
    )
    uow.commit()
    return model_json(SalesOrderRead.of(order), 201)


@router.patch("/sales-orders/{sales_order_id}", response_model=SalesOrderRead,
              summary="Change a draft order: lines (all, priced again), ship-to, requested date, customer PO, notes")
def update_sales_order(sales_order_id: uuid.UUID, body: SalesOrderUpdate, request: Request,
                       uow: Annotated[Uow, Requires(perms.ORDER_CREATE)]) -> Response:
    check_if_match(request, service.get_sales_order(uow, sales_order_id))
    changes = _draft_changes(body)
    if "lines" in changes and changes["lines"] is None:
        del changes["lines"]  # null: the lines stay as they are
    if body.ship_to is not None:
        changes["ship_to"] = body.ship_to.model_dump()  # as on entry: a field left out is blank
    order = service.update_sales_order(uow, sales_order_id, changes)
    read = _order_read(uow, order)
    uow.commit()
    answer = model_json(read)
    answer.headers["ETag"] = etag_of(read)
    return answer


@router.get("/sales-orders", response_model=Page[SalesOrderRead])
def list_sales_orders(
    uow: Annotated[Uow, Requires(perms.ORDER_READ)],
    customer_id: uuid.UUID | None = None,
    status: OrderStatus | None = None,
    invoice_status: OrderInvoiceStatus | None = None,
    number: str | None = None,
    customer_po: Annotated[str | None, Query(description="The customer's purchase order number")] = None,
    from_: FromDate = None,
    to: ToDate = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[SalesOrderRead]:
    query = service.sales_order_query(customer_id=customer_id, status=status, invoice_status=invoice_status,
                                      number=number, customer_po=stripped_or_none(customer_po))
    query = within(query, SalesOrder.order_date, from_, to)
    rows, next_cursor = paginate(uow, query, SalesOrder.id, cursor=cursor, limit=limit)
    live = service.live_quantities_of(uow, rows)  # as GET /sales-orders/{id} reads them
    return Page(items=[SalesOrderRead.of(r, reserved=live[r.id][0], backordered=live[r.id][1]) if r.id in live
                       else SalesOrderRead.of(r) for r in rows], next_cursor=next_cursor)


@router.get("/customers/{customer_id}/credit", response_model=CreditPositionRead,
            summary="The customer's credit limit, exposure and what is left, as the next order's credit check counts")
def read_credit_position(customer_id: uuid.UUID,
                         uow: Annotated[Uow, Requires(billing_perms.INVOICE_READ)]) -> CreditPositionRead:
    # what the customer owes is read off its invoices: who may read those may read this
    return CreditPositionRead.of(service.credit_position(uow, customer_id))


@router.get("/sales-orders/{sales_order_id}", response_model=SalesOrderRead)
def read_sales_order(sales_order_id: uuid.UUID, response: Response,
                     uow: Annotated[Uow, Requires(perms.ORDER_READ)]) -> SalesOrderRead:
    order = service.get_sales_order(uow, sales_order_id)
    set_etag(response, order)  # what a draft's PATCH sends back as If-Match
    return _order_read(uow, order)


@router.post("/sales-orders/{sales_order_id}/confirm", response_model=SalesOrderRead,
             summary="Credit check and allocate; over the credit limit the order goes on hold")
def confirm_sales_order(sales_order_id: uuid.UUID,
                        uow: Annotated[Uow, Requires(perms.ORDER_CONFIRM)]) -> Response:
    order = service.confirm_sales_order(uow, sales_order_id)
    read = _order_read(uow, order)  # live quantities read in this transaction, not in a second one
    uow.commit()
    return model_json(read)


@router.post("/sales-orders/{sales_order_id}/release-hold", response_model=SalesOrderRead)
def release_hold(sales_order_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.ORDER_RELEASE_HOLD)]) -> Response:
    order = service.release_hold(uow, sales_order_id)
    read = _order_read(uow, order)  # live quantities read in this transaction, not in a second one
    uow.commit()
    return model_json(read)


@router.post("/sales-orders/{sales_order_id}/allocate", response_model=SalesOrderRead,
             summary="Reserve backordered quantities again")
def allocate_sales_order(sales_order_id: uuid.UUID,
                         uow: Annotated[Uow, Requires(perms.ORDER_CONFIRM)]) -> Response:
    order = service.allocate_backorders(uow, sales_order_id)
    read = _order_read(uow, order)  # live quantities read in this transaction, not in a second one
    uow.commit()
    return model_json(read)


@router.post("/sales-orders/{sales_order_id}/cancel", response_model=SalesOrderRead)
def cancel_sales_order(sales_order_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.ORDER_CANCEL)]) -> Response:
    order = service.cancel_sales_order(uow, sales_order_id)
    uow.commit()
    return model_json(SalesOrderRead.of(order))


@router.post("/sales-orders/{sales_order_id}/close", response_model=SalesOrderRead,
             summary="Close a partially shipped order short: the rest will not ship")
def close_sales_order(sales_order_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.ORDER_CANCEL)]) -> Response:
    order = service.close_short(uow, sales_order_id)
    uow.commit()
    return model_json(SalesOrderRead.of(order))


@router.post("/sales-orders/{sales_order_id}/invoice", response_model=InvoiceRead, status_code=201,
             summary="Invoice what is shipped and not yet invoiced")
def invoice_sales_order(sales_order_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.ORDER_INVOICE)]) -> Response:
    invoice = service.invoice_sales_order(uow, sales_order_id)
    uow.commit()
    return model_json(InvoiceRead.of(invoice), 201)


@router.post("/invoicing-runs", response_model=list[InvoiceRead], status_code=201,
             summary="Invoice everything shipped (up to a day) and not yet invoiced (per order, or per customer "
                     "when grouped)")
def run_invoicing(uow: Annotated[Uow, Requires(perms.ORDER_INVOICE)],
                  body: Annotated[InvoicingRun | None, Body()] = None) -> list[InvoiceRead]:
    body = body or InvoicingRun()
    invoices = service.run_invoicing(uow, customer_id=body.customer_id, through=body.through, on=body.on)
    uow.commit()
    return [InvoiceRead.of(i) for i in invoices]


@router.get("/sales-orders/{sales_order_id}/timeline", response_model=Page[TimelineEntry],
            summary="Every event on the order and its documents, in order")
def order_timeline(sales_order_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.ORDER_READ)]) -> Page[TimelineEntry]:
    return Page(items=[TimelineEntry(sequence=e.seq, id=e.id, type=e.type, subject=e.subject, time=e.time,
                                     data=e.data)
                       for e in service.order_timeline(uow, sales_order_id)])


# ---------------------------------------------------------------- shipments


@router.post("/shipments", response_model=ShipmentRead, status_code=201,
             summary="A shipment of reserved quantities (all of them unless lines are given)")
def create_shipment(body: ShipmentCreate, uow: Annotated[Uow, Requires(perms.SHIPMENT_CREATE)]) -> Response:
    lines = None if body.lines is None else [service.ShipmentLineInput(ln.sales_order_line_id, ln.quantity)
                                             for ln in body.lines]
    shipment = service.create_shipment(uow, sales_order_id=body.sales_order_id, lines=lines,
                                       warehouse_id=body.warehouse_id)
    uow.commit()
    return model_json(ShipmentRead.of(shipment), 201)


@router.get("/shipments", response_model=Page[ShipmentRead])
def list_shipments(
    uow: Annotated[Uow, Requires(perms.SHIPMENT_READ)],
    sales_order_id: uuid.UUID | None = None,
    status: ShipmentStatus | None = None,
    tracking_number: Annotated[str | None, Query(description="As the carrier gave it")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[ShipmentRead]:
    query = select(Shipment).options(selectinload(Shipment.lines))
    if sales_order_id:
        query = query.where(Shipment.sales_order_id == sales_order_id)
    if status:
        query = query.where(Shipment.status == status)
    if tracking := stripped_or_none(tracking_number):
        query = query.where(Shipment.tracking_number == tracking)
    rows, next_cursor = paginate(uow, query, Shipment.id, cursor=cursor, limit=limit)
    return Page(items=[ShipmentRead.of(r) for r in rows], next_cursor=next_cursor)


@router.get("/shipments/{shipment_id}", response_model=ShipmentRead)
def read_shipment(shipment_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.SHIPMENT_READ)]) -> ShipmentRead:
    return ShipmentRead.of(service.get_shipment(uow, shipment_id))


@router.get("/shipments/{shipment_id}/pick-list", response_model=PickListRead,
            summary="Where to pick each line of an open shipment: warehouse, location, lot/serials, quantity")
def read_pick_list(shipment_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.SHIPMENT_READ)]) -> PickListRead:
    return PickListRead.of(service.pick_list(uow, shipment_id))


@router.post("/shipments/{shipment_id}/pick", response_model=ShipmentRead)
def pick_shipment(shipment_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.SHIPMENT_SHIP)]) -> Response:
    shipment = service.pick_shipment(uow, shipment_id)
    uow.commit()
    return model_json(ShipmentRead.of(shipment))


@router.post("/shipments/{shipment_id}/pack", response_model=ShipmentRead)
def pack_shipment(shipment_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.SHIPMENT_SHIP)],
                  body: Annotated[ShipmentPack | None, Body()] = None) -> Response:
    packages = [p.model_dump() for p in body.packages] if body else []
    shipment = service.pack_shipment(uow, shipment_id, packages)
    uow.commit()
    return model_json(ShipmentRead.of(shipment))


@router.post("/shipments/{shipment_id}/ship", response_model=ShipmentRead,
             summary="Stock leaves the warehouse; cost of goods sold is posted")
def ship_shipment(shipment_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.SHIPMENT_SHIP)],
                  body: Annotated[ShipmentShip | None, Body()] = None) -> Response:
    body = body or ShipmentShip()
    shipment = service.ship_shipment(uow, shipment_id, carrier=body.carrier, service=body.service,
                                     tracking_number=body.tracking_number)
    uow.commit()
    return model_json(ShipmentRead.of(shipment))


@router.post("/shipments/{shipment_id}/deliver", response_model=ShipmentRead)
def deliver_shipment(shipment_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.SHIPMENT_SHIP)]) -> Response:
    shipment = service.deliver_shipment(uow, shipment_id)
    uow.commit()
    return model_json(ShipmentRead.of(shipment))


@router.post("/shipments/{shipment_id}/cancel", response_model=ShipmentRead)
def cancel_shipment(shipment_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.SHIPMENT_SHIP)]) -> Response:
    shipment = service.cancel_shipment(uow, shipment_id)
    uow.commit()
    return model_json(ShipmentRead.of(shipment))


# ---------------------------------------------------------------- quotes


@router.post("/quotes", response_model=QuoteRead, status_code=201, summary="Draft a quote priced by the pricing engine")
def create_quote(body: QuoteCreate, uow: Annotated[Uow, Requires(perms.QUOTE_CREATE)]) -> Response:
    quote = quotes.create_quote(
        uow, customer_id=body.customer_id, valid_until=body.valid_until, channel=body.channel,
        customer_po=body.customer_po,
        lines=_line_inputs(body.lines))
    uow.commit()
    return model_json(QuoteRead.of(quote), 201)


@router.get("/quotes", response_model=Page[QuoteRead])
def list_quotes(
    uow: Annotated[Uow, Requires(perms.QUOTE_READ)],
    customer_id: uuid.UUID | None = None,
    status: QuoteStatus | None = None,
    number: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[QuoteRead]:
    query = select(Quote).options(selectinload(Quote.lines))
    if customer_id:
        query = query.where(Quote.customer_id == customer_id)
    if status:
        query = query.where(Quote.status == status)
    if number:
        query = query.where(Quote.number == number)
    rows, next_cursor = paginate(uow, query, Quote.id, cursor=cursor, limit=limit)
    return Page(items=[QuoteRead.of(r) for r in rows], next_cursor=next_cursor)


@router.get("/quotes/{quote_id}", response_model=QuoteRead)
def read_quote(quote_id: uuid.UUID, response: Response, uow: Annotated[Uow, Requires(perms.QUOTE_READ)]) -> QuoteRead:
    quote = quotes.get_quote(uow, quote_id)
    set_etag(response, quote)  # what a draft's PATCH sends back as If-Match
    return QuoteRead.of(quote)


@router.patch("/quotes/{quote_id}", response_model=QuoteRead,
              summary="Change a draft quote: lines (all, priced again today), validity date, customer PO")
def update_quote(quote_id: uuid.UUID, body: QuoteUpdate, request: Request,
                 uow: Annotated[Uow, Requires(perms.QUOTE_CREATE)]) -> Response:
    check_if_match(request, quotes.get_quote(uow, quote_id))
    changes = _draft_changes(body)
    quote = quotes.update_quote(uow, quote_id, changes)
    read, etag = QuoteRead.of(quote), etag_of(quote)  # the version this transaction wrote (flushed)
    uow.commit()
    answer = model_json(read)
    answer.headers["ETag"] = etag
    return answer


@router.post("/quotes/{quote_id}/send", response_model=QuoteRead)
def send_quote(quote_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.QUOTE_SEND)]) -> Response:
    quote = quotes.send_quote(uow, quote_id)
    uow.commit()
    return model_json(QuoteRead.of(quote))


@router.post("/quotes/{quote_id}/decline", response_model=QuoteRead)
def decline_quote(quote_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.QUOTE_SEND)],
                  body: Annotated[QuoteDecline | None, Body()] = None) -> Response:
    quote = quotes.decline_quote(uow, quote_id, reason=body.reason if body else None)
    uow.commit()
    return model_json(QuoteRead.of(quote))


@router.post("/quotes/{quote_id}/accept", response_model=SalesOrderRead, status_code=201,
             summary="Accept the quote: a draft sales order at the quoted prices")
def accept_quote(quote_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.QUOTE_ACCEPT)],
                 body: Annotated[QuoteAccept | None, Body()] = None) -> Response:
    body = body or QuoteAccept()
    order = quotes.accept_quote(uow, quote_id, ship_to=body.ship_to.model_dump() if body.ship_to else None,
                                requested_date=body.requested_date, notes=body.notes,
                                shipping=(body.shipping_carrier, body.shipping_service))
    uow.commit()
    return model_json(SalesOrderRead.of(order), 201)


# ---------------------------------------------------------------- returns


@router.post("/returns", response_model=ReturnRead, status_code=201, summary="Authorise a return of shipped goods")
def create_return(body: ReturnCreate, uow: Annotated[Uow, Requires(perms.RETURN_CREATE)]) -> Response:
    rma = returns.authorise_return(
        uow, sales_order_id=body.sales_order_id, reason=body.reason,
        restocking_fee_percent=body.restocking_fee_percent,
        lines=[returns.ReturnLineInput(ln.sales_order_line_id, ln.quantity, ln.disposition) for ln in body.lines])
    uow.commit()
    return model_json(ReturnRead.of(rma), 201)


@router.get("/returns", response_model=Page[ReturnRead])
def list_returns(
    uow: Annotated[Uow, Requires(perms.RETURN_READ)],
    customer_id: uuid.UUID | None = None,
    sales_order_id: uuid.UUID | None = None,
    status: ReturnStatus | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[ReturnRead]:
    query = returns.list_returns(customer_id=customer_id, sales_order_id=sales_order_id, status=status)
    rows, next_cursor = paginate(uow, query, ReturnAuthorization.id, cursor=cursor, limit=limit)
    return Page(items=[ReturnRead.of(r) for r in rows], next_cursor=next_cursor)


@router.get("/returns/{return_id}", response_model=ReturnRead)
def read_return(return_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.RETURN_READ)]) -> ReturnRead:
    return ReturnRead.of(returns.get_return(uow, return_id))


@router.post("/returns/{return_id}/receive", response_model=ReturnRead,
             summary="Receive the authorised goods back (restock or scrap)")
def receive_return(return_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.RETURN_RECEIVE)],
                   body: Annotated[ReturnReceive | None, Body()] = None) -> Response:
    lines = None if body is None or body.lines is None else [
        returns.ReceiptLineInput(ln.return_line_id, ln.quantity, ln.lot_code, ln.serials) for ln in body.lines]
    rma = returns.receive_return(uow, return_id, lines=lines, warehouse_id=body.warehouse_id if body else None)
    uow.commit()
    return model_json(ReturnRead.of(rma))


@router.post("/returns/{return_id}/credit", response_model=list[CreditNoteRead], status_code=201,
             summary="Credit what was received, less the restocking fee")
def credit_return(return_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.RETURN_CREDIT)]) -> list[CreditNoteRead]:
    notes = returns.credit_return(uow, return_id)
    uow.commit()
    return [CreditNoteRead.of(n) for n in notes]


@router.post("/returns/{return_id}/cancel", response_model=ReturnRead)
def cancel_return(return_id: uuid.UUID, uow: Annotated[Uow, Requires(perms.RETURN_CREATE)]) -> Response:
    rma = returns.cancel_return(uow, return_id)
    uow.commit()
    return model_json(ReturnRead.of(rma))


# ---------------------------------------------------------------- shipping rates


@router.get("/shipping-rates", response_model=Page[ShippingRateRead])
def list_shipping_rates(
    uow: Annotated[Uow, Requires(perms.SHIPPING_RATE_READ)],
    carrier: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[ShippingRateRead]:
    query = select(ShippingRate)
    if carrier:
        query = query.where(ShippingRate.carrier == carrier)
    rows, next_cursor = paginate(uow, query, ShippingRate.id, cursor=cursor, limit=limit)
    return Page(items=[ShippingRateRead.of(r) for r in rows], next_cursor=next_cursor)


@router.post("/shipping-rates", response_model=ShippingRateRead, status_code=201,
             summary="A band of a carrier service's rate table (weight, zone, free-shipping threshold)")
def create_shipping_rate(body: ShippingRateCreate,
                         uow: Annotated[Uow, Requires(perms.SHIPPING_RATE_MANAGE)]) -> Response:
    rate = shipping.create_shipping_rate(uow, **body.model_dump())
    uow.commit()
    return model_json(ShippingRateRead.of(rate), 201)
