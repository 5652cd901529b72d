"""Order-to-cash use cases: enter, confirm (credit check + allocation), hold, cancel,
ship, invoice. Each changes documents, stock, ledger and outbox in the caller's
unit of work — one transaction per step — and never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import bindparam, func, literal, select
from sqlalchemy.orm import joinedload, selectinload
from sqlalchemy.orm.attributes import flag_modified

from entrepot.billing import service as billing
from entrepot.billing.models import Invoice, PaymentAllocation
from entrepot.billing.tax import TaxableLine, calculate_tax
from entrepot.db import in_lists
from entrepot.db.documents import held_or, insert_document, new_row, save, working_copy
from entrepot.db.numbering import next_number
from entrepot.db.prepared import Prepared, PreparedIn, announce, result_processor, row_converter
from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.audit import audit
from entrepot.identity.services.tenants import in_each_active_tenant, tenant_facts
from entrepot.integration.models import OutboxEvent
from entrepot.integration.outbox import record_event
from entrepot.kernel import clock
from entrepot.kernel.errors import (
    Conflict,
    DomainError,
    FieldError,
    InvalidTransition,
    NotFound,
    ValidationFailed,
    invalid,
    reference,
    unknown_in_lines,
)
from entrepot.kernel.ids import new_id
from entrepot.kernel.money import ZERO, fits_storage, format_amount, format_quantity, round_money
from entrepot.kernel.text import stripped_or_none
from entrepot.sales import events, ports
from entrepot.sales.models import SalesOrder, SalesOrderLine, Shipment, ShipmentLine
from entrepot.sales.states import (
    ORDER_INVOICING,
    SALES_ORDER,
    SHIPMENT,
    OrderInvoiceStatus,
    OrderStatus,
    ShipmentStatus,
)

DEMAND = ports.DEMAND_TYPE
OPEN_ORDER = (OrderStatus.confirmed, OrderStatus.partially_shipped, OrderStatus.shipped)
OPEN_SHIPMENT = (ShipmentStatus.draft, ShipmentStatus.picked, ShipmentStatus.packed)
DEFAULT_LEAD_DAYS = 14
MAX_LINES = 5000


class NotReserved(Conflict):
    code = "not_reserved"
    title = "Quantity is not reserved"


class NothingToShip(Conflict):
    code = "nothing_to_ship"
    title = "Nothing reserved to ship"


class ShipmentsFromEveryWarehouse(Conflict):
    """An order ships either in shipments each from one named warehouse, or in shipments from any: not
    both at once (a shipment from any takes the oldest reservations, which may be those another counts on)."""

    code = "open_shipment_conflict"
    title = "Open shipments of the order ship another way"


class NothingToPick(Conflict):
    code = "nothing_to_pick"
    title = "Nothing left to pick"


@dataclass(frozen=True)
class OrderLineInput:
    product_id: uuid.UUID
    quantity: Decimal
    unit_price: Decimal | None = None
    price_source: str | None = None  # where a given price came from (an accepted quote's line says which)


@dataclass(frozen=True)
class ShipmentLineInput:
    sales_order_line_id: uuid.UUID
    quantity: Decimal


@dataclass
class PricedLine:
    product: Any
    quantity: Decimal
    unit_price: Decimal
    source: str


@dataclass
class ShipTo:
    country: str | None = None
    region: str | None = None
    address: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- entering an order


def _customer_for_order(uow: UnitOfWork, customer_id: uuid.UUID) -> Any:
    with reference("customer_id"):
        ports.hold_customer_for_document(uow, customer_id)  # the document takes its currency
        customer = ports.get_customer(uow, customer_id)
    ports.ensure_can_order(customer)
    return customer


def price_lines(uow: UnitOfWork, customer: Any, lines: Sequence[OrderLineInput], *, channel: str | None,
                on: date, ship_to: ShipTo, fixed_prices: bool = False) -> list[PricedLine]:
    """Validate lines and price them: the pricing engine unless a price is given (then the margin
    guard applies, unless `fixed_prices` carries prices already agreed, e.g. from a quote). The
    ship-to's tax rates convert a price list kept on the other tax basis than the order's."""
    errors: list[FieldError] = []
    if not lines:
        raise invalid("lines", "an order needs at least one line", "required")
    if len(lines) > MAX_LINES:
        raise invalid("lines", f"at most {MAX_LINES} lines", "max")
    for i, line in enumerate(lines):
        if line.quantity <= 0:
            errors.append(FieldError(f"lines[{i}].quantity", "must be greater than zero", "positive"))
        elif not fits_storage(line.quantity):
            errors.append(FieldError(f"lines[{i}].quantity", "at most 4 decimal places", "precision"))
        if line.unit_price is not None and (line.unit_price < 0 or not fits_storage(line.unit_price)):
            errors.append(FieldError(f"lines[{i}].unit_price", "a non-negative price with at most 4 decimal places",
                                     "price"))
    if errors:
        raise ValidationFailed(errors)
    ids = list(dict.fromkeys(line.product_id for line in lines))
    try:
        products = ports.get_products(uow, ids)
    except NotFound as exc:
        raise unknown_in_lines(exc, [line.product_id for line in lines], "lines[{}].product_id") from exc
    for product in products.values():
        ports.ensure_sellable(product)
    if channel:
        allowed = ports.sellable_in_channel(uow, ids, channel, getattr(customer, "customer_group", None))
        refused = [i for i, line in enumerate(lines) if line.product_id not in allowed]
        if refused:
            raise ValidationFailed([FieldError(f"lines[{i}].product_id",
                                               f"{products[lines[i].product_id].sku} is not sold in channel {channel}",
                                               "channel") for i in refused])
    to_price = [(i, line) for i, line in enumerate(lines) if line.unit_price is None]
    resolved: dict[int, tuple[Decimal, str]] = {}
    if to_price:
        results = ports.resolve_prices(uow, customer_id=customer.id, lines=[(ln.product_id, ln.quantity)
                                                                            for _, ln in to_price],
                                       on=on, channel=channel, products=products,
                                       ship_to=(ship_to.country, ship_to.region))
        for (i, _), r in zip(to_price, results, strict=True):
            if r.currency != customer.currency:
                raise invalid(f"lines[{i}].product_id",
                              f"priced in {r.currency}, but the customer buys in {customer.currency}", "currency")
            resolved[i] = (r.unit_price, str(getattr(r, "rule", "") or "")[:300])
    priced = []
    for i, line in enumerate(lines):
        product = products[line.product_id]
        if line.unit_price is not None:
            if not fixed_prices:
                ports.check_margin(uow, product=product, unit_price=line.unit_price, field=f"lines[{i}].unit_price",
                                   ship_to=(ship_to.country, ship_to.region), on=on, currency=customer.currency,
                                   exempt=bool(getattr(customer, "tax_exempt", False)))
            priced.append(PricedLine(product, line.quantity, line.unit_price,
                                     line.price_source or ("fixed" if fixed_prices else "manual")))
        else:
            price, source = resolved[i]
            priced.append(PricedLine(product, line.quantity, price, source))
    return priced


def resolve_ship_to(uow: UnitOfWork, customer: Any, ship_to: dict[str, Any] | None) -> ShipTo:
    if ship_to:
        country = ship_to.get("country")
        if country is not None and (not isinstance(country, str) or len(country) != 2 or not country.isupper()):
            raise invalid("ship_to.country", "an ISO 3166 two-letter code in capitals", "country")
        return ShipTo(country, ship_to.get("region") or None, dict(ship_to))
    address = ports.default_ship_to(uow, customer.id)
    if address is None:
        return ShipTo(getattr(customer, "tax_country", None), None, {})
    fields = ("name", "line1", "line2", "city", "region", "postal_code", "country")
    return ShipTo(address.country, address.region or None, {f: getattr(address, f, None) for f in fields})


SHIPPING_TAX_CLASS = "shipping"


def _apply_tax(uow: UnitOfWork, order: SalesOrder, lines: Sequence[SalesOrderLine], customer: Any) -> None:
    taxable = [TaxableLine(i, ln.tax_class, ln.quantity * ln.unit_price) for i, ln in enumerate(lines)]
    if order.shipping_charge:
        taxable.append(TaxableLine("shipping", SHIPPING_TAX_CLASS, order.shipping_charge))
    tax = calculate_tax(
        uow, currency=order.currency, country=order.ship_to_country, region=order.ship_to_region,
        lines=taxable, on=order.order_date, exempt=bool(getattr(customer, "tax_exempt", False)),
    )
    for line, lt in zip(lines, tax.lines, strict=False):
        line.line_total, line.tax_rate_percent, line.tax_amount = lt.net, lt.rate_percent, lt.tax
    order.shipping_tax = tax.by_key()["shipping"].tax if order.shipping_charge else ZERO
    order.subtotal = tax.net_total  # goods and shipping, net of tax
    order.tax_total = tax.tax_total
    order.total = order.subtotal + order.tax_total


def _shipping_charge(uow: UnitOfWork, order: SalesOrder, lines: Sequence[SalesOrderLine], carrier: str,
                     service: str) -> None:
    from entrepot.sales.shipping import ShippingRequest, get_shipping_rater

    goods = sum((round_money(ln.quantity * ln.unit_price, order.currency) for ln in lines), ZERO)
    weight = sum((ln.quantity * (ln.weight_kg or ZERO) for ln in lines), ZERO)
    quote = get_shipping_rater().quote(uow, ShippingRequest(carrier, service, order.ship_to_country, weight, goods,
                                                            order.currency))
    order.shipping_carrier, order.shipping_service, order.shipping_charge = quote.carrier, quote.service, quote.charge


def create_sales_order(
    uow: UnitOfWork,
    *,
    customer_id: uuid.UUID,
    lines: Sequence[OrderLineInput],
    ship_to: dict[str, Any] | None = None,
    requested_date: date | None = None,
    customer_po: str | None = None,
    channel: str | None = None,
    notes: str = "",
    quote_id: uuid.UUID | None = None,
    fixed_prices: bool = False,
    shipping: tuple[str | None, str | None] | None = None,
) -> SalesOrder:
    """Enter a draft order: lines priced by the pricing engine (or given, under the margin guard), tax estimated.
    `shipping` (carrier, service) charges shipping from the rate table: both are needed."""
    shipping = _carrier_service(shipping)
    customer = _customer_for_order(uow, customer_id)
    today = clock.today()
    customer_po = stripped_or_none(customer_po)  # found by it later, as the customer quotes it
    where = resolve_ship_to(uow, customer, ship_to)
    priced = price_lines(uow, customer, lines, channel=channel, on=today, ship_to=where, fixed_prices=fixed_prices)
    order = new_row(
        SalesOrder, id=new_id(), number=next_number(uow, "SO"), customer_id=customer.id, status=OrderStatus.draft,
        invoice_status=OrderInvoiceStatus.not_invoiced, currency=customer.currency, order_date=today,
        requested_date=requested_date, customer_po=customer_po, channel=channel, ship_to=where.address,
        ship_to_country=where.country, ship_to_region=where.region, quote_id=quote_id, notes=notes,
        subtotal=ZERO, tax_total=ZERO, total=ZERO, invoiced_total=ZERO, shipping_charge=ZERO, shipping_tax=ZERO,
        shipping_invoiced=False,
    )
    # The order and its lines are built as plain objects, priced and taxed, then written in one
    # statement each (insert_document).
    order_lines = _order_lines(order.id, priced, new_row)
    if shipping:
        _shipping_charge(uow, order, order_lines, *shipping)
    _apply_tax(uow, order, order_lines, customer)
    insert_document(uow, order, "lines", order_lines)
    audit(uow, "sales_order.create", "sales_order", order.id,
          after={"number": order.number, "customer_id": customer.id, "total": order.total, "lines": len(order_lines)})
    record_event(uow, events.SalesOrderCreated(
        sales_order_id=str(order.id), number=order.number, customer_id=str(customer.id), currency=order.currency,
        total=format_amount(order.total, order.currency), lines=len(order_lines)), subject=f"sales_order/{order.id}")
    return order


def _carrier_service(shipping: tuple[str | None, str | None] | None) -> tuple[str, str] | None:
    """The carrier and service an order is charged shipping by: both or neither (a carrier alone is not
    silently left uncharged)."""
    if shipping is None:
        return None
    carrier, service = (stripped_or_none(x) for x in shipping)
    if carrier is None and service is None:
        return None
    if carrier is None or service is None:
        raise invalid("shipping_carrier" if carrier is None else "shipping_service",
                      "shipping_carrier and shipping_service go together: give both to charge shipping, or neither",
                      "required")
    return carrier, service


def _order_lines(order_id: uuid.UUID, priced: Sequence[PricedLine], make: Callable[..., Any]) -> list[SalesOrderLine]:
    """The order's lines as priced, numbered from 1; tax and totals are set after (`_apply_tax`)."""
    return [make(
        SalesOrderLine, id=new_id(), order_id=order_id, line_no=n + 1, product_id=p.product.id, sku=p.product.sku,
        description=p.product.name, tax_class=getattr(p.product, "tax_class", None) or "standard",
        quantity=p.quantity, unit_price=p.unit_price, price_source=p.source, line_total=ZERO,
        tax_rate_percent=ZERO, tax_amount=ZERO, weight_kg=getattr(p.product, "weight_kg", None),
        quantity_backordered=ZERO, quantity_shipped=ZERO, quantity_invoiced=ZERO, quantity_returned=ZERO,
        quantity_returned_unbilled=ZERO,
    ) for n, p in enumerate(priced)]


ORDER_FIELDS = ("lines", "ship_to", "requested_date", "customer_po", "notes")


def update_sales_order(uow: UnitOfWork, order_id: uuid.UUID, changes: Mapping[str, Any]) -> SalesOrder:
    """Change a draft order: its lines (all of them, priced again as on entry; `unit_price` given is
    checked by the margin guard), ship-to (tax and shipping charge worked out again), requested date,
    customer PO or notes. Only a draft: a confirmed order has stock reserved against its lines. The
    lines of an order from a quote keep the quote's prices and are not changed here."""
    order = get_sales_order(uow, order_id, for_update=True)
    if order.status != OrderStatus.draft:
        raise InvalidTransition("sales order", order.status, "update",
                                SALES_ORDER.allowed_actions(OrderStatus(order.status)))
    unknown_fields = sorted(set(changes) - set(ORDER_FIELDS))
    if unknown_fields:
        raise ValidationFailed([FieldError(f, "is not a field of an order that can change", "unknown_field")
                                for f in unknown_fields])
    if "lines" in changes and order.quote_id is not None:
        raise invalid("lines", "the lines of an order from a quote keep the quote's prices: change the quote's "
                      "order by cancelling it and entering another", "from_quote")
    before = {"total": order.total, "lines": len(order.lines), "ship_to": order.ship_to,
              "requested_date": order.requested_date, "customer_po": order.customer_po, "notes": order.notes}
    if "requested_date" in changes:
        order.requested_date = changes["requested_date"]
    if "customer_po" in changes:
        order.customer_po = stripped_or_none(changes["customer_po"])
    if "notes" in changes:
        order.notes = changes["notes"] or ""
    if "lines" in changes or "ship_to" in changes:
        customer = ports.get_customer(uow, order.customer_id)
        where = resolve_ship_to(uow, customer, changes.get("ship_to", order.ship_to))
        order.ship_to, order.ship_to_country, order.ship_to_region = where.address, where.country, where.region
        kept = order.quote_id is not None or "lines" not in changes
        # the lines as they stand keep a price given or agreed (a new ship-to changes their tax, not their
        # price); the engine's is worked out again where the order now ships, as on entry: a price list
        # on the other tax basis converts at the ship-to's rate
        wanted = changes.get("lines") or [
            OrderLineInput(ln.product_id, ln.quantity, ln.unit_price
                           if order.quote_id is not None or ln.price_source in ("manual", "fixed") else None)
            for ln in order.lines]
        priced = price_lines(uow, customer, wanted, channel=order.channel, on=order.order_date, ship_to=where,
                             fixed_prices=kept)
        if kept:
            priced = [PricedLine(p.product, p.quantity, p.unit_price, ln.price_source if w.unit_price is not None
                                 else p.source) for p, w, ln in zip(priced, wanted, order.lines, strict=True)]
        order.lines.clear()
        uow.session.flush()  # the old lines go before the new ones take their line numbers
        order.lines.extend(_order_lines(order.id, priced, lambda model, **values: model(**values)))
        if order.shipping_carrier:
            _shipping_charge(uow, order, order.lines, order.shipping_carrier, order.shipping_service or "")
        _apply_tax(uow, order, order.lines, customer)
        # new lines at the same totals leave the header's columns as they were: it is a new version all
        # the same (the ETag and If-Match follow `version`, which the ORM bumps on the header's UPDATE)
        order.updated_at = clock.now()
        flag_modified(order, "updated_at")  # even when the clock stands still
    uow.session.flush()
    after = {"total": order.total, "lines": len(order.lines), "ship_to": order.ship_to,
             "requested_date": order.requested_date, "customer_po": order.customer_po, "notes": order.notes}
    changed = sorted(k for k in after if after[k] != before[k])
    if "lines" in changes and "lines" not in changed:
        changed = sorted({*changed, "lines"})
    if changed:
        audit(uow, "sales_order.update", "sales_order", order.id, before={k: before[k] for k in changed},
              after={k: after[k] for k in changed})
        record_event(uow, events.SalesOrderUpdated(**_event_base(order),
                                                   total=format_amount(order.total, order.currency),
                                                   lines=len(order.lines), changes=changed),
                     subject=f"sales_order/{order.id}")
    return order


def get_sales_order(uow: UnitOfWork, order_id: uuid.UUID, *, for_update: bool = False) -> SalesOrder:
    """The order with its lines, in one statement (every step needs the lines; an order has few)."""
    return _one_order(uow, select(SalesOrder).where(SalesOrder.id == order_id), order_id, for_update=for_update)


def _one_order(uow: UnitOfWork, query: Any, ref: uuid.UUID, *, for_update: bool, what: str = "sales order"
               ) -> SalesOrder:
    if for_update:
        # Lock the order row first, on its own: a locking read that waited for another transaction
        # returns the locked row as that one left it, but the joined lines as they were before it
        # (PostgreSQL, READ COMMITTED); the read below, a new statement, sees them as committed.
        uow.session.execute(query.with_only_columns(SalesOrder.id).with_for_update())
    query = query.options(joinedload(SalesOrder.lines))
    if for_update:
        # lock the order row only (PostgreSQL refuses FOR UPDATE on the outer-joined lines)
        query = query.with_for_update(of=SalesOrder).execution_options(populate_existing=True)
    order = uow.session.scalars(query).unique().one_or_none()
    if order is None:
        raise NotFound(what, ref)
    return order


# ---------------------------------------------------------------- the steps' reads: one prebuilt statement each
#
# A step of the order desk locks its order and reads it with its lines in one Core statement,
# works on plain copies (db.documents.working_copy) and writes back only what changed
# (save): the ORM's loading and flush bookkeeping cost several times the SQL itself.

_SO, _SOL = SalesOrder.__table__, SalesOrderLine.__table__
_SH, _SHL = Shipment.__table__, ShipmentLine.__table__
_SO_KEYS = [c.key for c in _SO.c]
_SOL_KEYS = [c.key for c in _SOL.c]
_SH_KEYS = [c.key for c in _SH.c]
_SHL_KEYS = [c.key for c in _SHL.c]


def _with_lines(header: Any, lines: Any, line_fk: Any, where: Any) -> Any:
    """The header row locked (only it: PostgreSQL refuses FOR UPDATE on an outer join's
    nullable side), with its lines by line number; one row per line."""
    return (select(*header.c, *lines.c)
            .select_from(header.outerjoin(lines, (line_fk == header.c.id) & (lines.c.tenant_id == header.c.tenant_id)))
            .where(header.c.tenant_id == bindparam("tenant_id"), where)
            .order_by(lines.c.line_no)
            .with_for_update(of=header))


class _DocumentRead:
    """A header-with-lines read (compiled once, run on the driver's cursor, as db.prepared runs
    its statements) whose rows are converted in two parts: the header's columns once, from the
    first row, and each row's line columns. The header repeats on every row of the join, and
    converting its ids, amounts and ship-to JSON again per line cost more than the SQL.
    Each part is one generated function that builds the values by column key (db.prepared's
    `row_converter`): a loop over the columns, then `dict(zip(keys, values))`, cost as much
    again as the conversions themselves."""

    __slots__ = ("_converters", "header_keys", "line_keys", "prepared")

    def __init__(self, statement: Any, header_keys: list[str], line_keys: list[str]) -> None:
        self.prepared = Prepared(statement)
        self.header_keys = header_keys
        self.line_keys = line_keys
        self._converters: dict[str, tuple[Any, Any]] = {}

    def execute(self, uow: UnitOfWork, params: dict[str, Any]
                ) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        """(the header's values by key, or None when no row matched; each line's values by key)."""
        conn = uow.connection()
        compiled = self.prepared.compiled(conn.dialect)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            args = compiled.bind(params)
            if conn.dialect.name == "postgresql":
                # Take the header's lock first: a locking read that waited for another transaction returns
                # the locked header as that one left it but the joined lines as they were before it (READ
                # COMMITTED), so two steps at once would both work from the old lines. Read again, the lock
                # held, a new statement sees the lines as committed. (SQLite writers never wait here: they
                # are serialised from BEGIN IMMEDIATE.)
                announce(conn, cursor, compiled.sql, args, executemany=False)
                cursor.execute(compiled.sql, args)
                cursor.fetchall()
            announce(conn, cursor, compiled.sql, args, executemany=False)
            cursor.execute(compiled.sql, args)
            rows = cursor.fetchall()
            if not rows:
                return None, []
            header, line = self._converters.get(conn.dialect.name) or self._made(compiled, cursor.description)
        finally:
            cursor.close()
        n = len(self.header_keys)
        return header(rows[0]), [line(row) for row in rows if row[n] is not None]

    def _made(self, compiled: Any, description: Any) -> tuple[Any, Any]:
        processors = [result_processor(type_, compiled.dialect, described[1])
                      for type_, described in zip(compiled.result_types, description, strict=True)]
        n = len(self.header_keys)
        made = self._converters[compiled.dialect.name] = (
            row_converter(processors[:n], keys=self.header_keys),
            row_converter(processors[n:], keys=self.line_keys, offset=n))
        return made


# compiled once, run on the driver's cursor
_ORDER_LOCKED = _DocumentRead(_with_lines(_SO, _SOL, _SOL.c.order_id, _SO.c.id == bindparam("ref")),
                              _SO_KEYS, _SOL_KEYS)
_ORDER_OF_SHIPMENT_LOCKED = _DocumentRead(_with_lines(
    _SO, _SOL, _SOL.c.order_id, _SO.c.id == select(_SH.c.sales_order_id).where(
        _SH.c.id == bindparam("ref"), _SH.c.tenant_id == bindparam("tenant_id")).scalar_subquery()),
    _SO_KEYS, _SOL_KEYS)
_SHIPMENT_LOCKED = _DocumentRead(_with_lines(_SH, _SHL, _SHL.c.shipment_id, _SH.c.id == bindparam("ref")),
                                 _SH_KEYS, _SHL_KEYS)


def _read_locked(uow: UnitOfWork, statement: _DocumentRead, ref: uuid.UUID, what: str, header: type,
                 line: type) -> Any:
    uow.session.flush()  # what the ORM still holds for this transaction is written before the read
    head, lines = statement.execute(uow, {"ref": ref, "tenant_id": uow.tenant_id})
    if head is None:
        raise NotFound(what, ref)
    doc = working_copy(uow, header, head)
    doc.__dict__["lines"] = [working_copy(uow, line, values) for values in lines]
    return doc


def _locked_order(uow: UnitOfWork, order_id: uuid.UUID) -> SalesOrder:
    """A step's copy of the order with its lines, the order row locked."""
    return _read_locked(uow, _ORDER_LOCKED, order_id, "sales order", SalesOrder,  # type: ignore[no-any-return]
                        SalesOrderLine)


def _locked_order_of_shipment(uow: UnitOfWork, shipment_id: uuid.UUID) -> SalesOrder:
    """The shipment's order, locked before the shipment (the order first, then the shipment, as
    cancel_sales_order does, so the two cannot deadlock), found through the shipment."""
    return _read_locked(uow, _ORDER_OF_SHIPMENT_LOCKED, shipment_id, "shipment",  # type: ignore[no-any-return]
                        SalesOrder, SalesOrderLine)


def _locked_shipment(uow: UnitOfWork, shipment_id: uuid.UUID) -> Shipment:
    return _read_locked(uow, _SHIPMENT_LOCKED, shipment_id, "shipment", Shipment,  # type: ignore[no-any-return]
                        ShipmentLine)


def _lock_order_of_shipment(uow: UnitOfWork, shipment_id: uuid.UUID) -> SalesOrder:
    """Lock the shipment's order (callers then lock the shipment: order first, then shipment, as
    cancel_sales_order does, so the two cannot deadlock), found through the shipment in one statement."""
    query = select(SalesOrder).join(Shipment, Shipment.sales_order_id == SalesOrder.id).where(
        Shipment.id == shipment_id)
    return _one_order(uow, query, shipment_id, for_update=True, what="shipment")


def sales_order_query(*, customer_id: uuid.UUID | None = None, status: str | None = None,
                      invoice_status: str | None = None, number: str | None = None,
                      customer_po: str | None = None) -> Any:
    query = select(SalesOrder).options(selectinload(SalesOrder.lines))
    if customer_id:
        query = query.where(SalesOrder.customer_id == customer_id)
    if status:
        query = query.where(SalesOrder.status == status)
    if invoice_status:
        query = query.where(SalesOrder.invoice_status == invoice_status)
    if number:
        query = query.where(SalesOrder.number == number)
    if customer_po:
        query = query.where(SalesOrder.customer_po == customer_po)
    return query


# ---------------------------------------------------------------- confirming: credit, allocation


def credit_exposure(uow: UnitOfWork, customer_id: uuid.UUID, *, excluding: uuid.UUID | None = None) -> Decimal:
    """Open receivables plus the not yet invoiced value of open confirmed orders."""
    orders = _uninvoiced_orders(uow, customer_id, excluding)  # first: see `_uninvoiced_orders`
    return billing.open_receivables(uow, customer_id) + orders


def _uninvoiced_orders(uow: UnitOfWork, customer_id: uuid.UUID, excluding: uuid.UUID | None = None) -> Decimal:
    """The not yet invoiced value of the customer's open orders, then `_unbilled_adjustments` (what orders
    closed short shipped and have not billed). The exposure is read in several statements, each seeing what committed
    before it (PostgreSQL, READ COMMITTED), and the customer's invoicing does not wait for a credit check:
    read in the order value moves in (open order, then closed order, then open invoice), a step that
    commits between two reads is counted twice, never left out."""
    query = select(func.sum(SalesOrder.total), func.sum(SalesOrder.invoiced_total)).where(
        SalesOrder.customer_id == customer_id, SalesOrder.status.in_(OPEN_ORDER))
    if excluding:
        query = query.where(SalesOrder.id != excluding)
    total, invoiced = uow.session.execute(query).one()
    return (total or ZERO) - (invoiced or ZERO) + _unbilled_adjustments(uow, customer_id, excluding)


def _unbilled_adjustments(uow: UnitOfWork, customer_id: uuid.UUID, excluding: uuid.UUID | None = None) -> Decimal:
    """What an open order's total less what it invoiced does not tell, per line's share of its estimated
    total with tax: what the customer's orders closed short shipped and have not been billed for yet (and a
    shipping charge not yet billed) — a closed order is no longer open, but until it is invoiced what left
    the warehouse is still owed outside the receivables —, less what came back on an open order before it
    was billed (those units are never billed)."""
    open_returned = (SalesOrder.status.in_(OPEN_ORDER) & (SalesOrderLine.quantity_returned_unbilled > 0))
    if excluding:
        open_returned = open_returned & (SalesOrder.id != excluding)
    rows = uow.session.execute(
        select(SalesOrder.id, SalesOrder.status, SalesOrder.currency, SalesOrder.shipping_charge,
               SalesOrder.shipping_tax, SalesOrder.shipping_invoiced, SalesOrderLine.quantity,
               SalesOrderLine.quantity_shipped, SalesOrderLine.quantity_invoiced,
               SalesOrderLine.quantity_returned_unbilled, SalesOrderLine.line_total, SalesOrderLine.tax_amount)
        .join(SalesOrderLine, SalesOrderLine.order_id == SalesOrder.id)
        .where(SalesOrder.customer_id == customer_id,
               ((SalesOrder.status == OrderStatus.closed) & (SalesOrder.invoice_status != OrderInvoiceStatus.invoiced))
               | open_returned)).all()
    owed = ZERO
    shipping_counted: set[uuid.UUID] = set()
    for (order_id, status, currency, charge, charge_tax, charge_billed, quantity, shipped, invoiced, returned,
         line_total, tax) in rows:
        if status != OrderStatus.closed:
            if quantity > 0:  # an open order's returned-unbilled units: in its total, never to be billed
                owed -= round_money((line_total + tax) * returned / quantity, currency)
            continue
        left = shipped - invoiced - returned
        if left > 0 and quantity > 0:
            owed += round_money((line_total + tax) * left / quantity, currency)
        if charge and not charge_billed and order_id not in shipping_counted:
            shipping_counted.add(order_id)
            owed += charge + (charge_tax or ZERO)
    return owed


@dataclass(frozen=True)
class CreditPosition:
    """What the credit check of the customer's next order counts (all in the customer's currency)."""

    customer_id: uuid.UUID
    currency: str
    credit_limit: Decimal | None
    open_receivables: Decimal  # open invoices less unapplied payments and credit notes
    uninvoiced_orders: Decimal  # confirmed orders' value not invoiced yet (closed short: what shipped)
    exposure: Decimal
    available: Decimal | None  # the limit less the exposure; None without a limit
    orders_on_credit_hold: int


def credit_position(uow: UnitOfWork, customer_id: uuid.UUID) -> CreditPosition:
    customer = ports.get_customer(uow, customer_id)
    orders = _uninvoiced_orders(uow, customer.id)  # first: see `_uninvoiced_orders`
    receivables = billing.open_receivables(uow, customer.id)
    held = uow.session.scalar(select(func.count()).where(
        SalesOrder.customer_id == customer.id, SalesOrder.status == OrderStatus.on_hold,
        SalesOrder.hold_reason == "credit")) or 0
    limit = customer.credit_limit
    exposure = receivables + orders
    return CreditPosition(customer.id, customer.currency, limit, receivables, orders, exposure,
                          None if limit is None else limit - exposure, held)


def _event_base(order: SalesOrder) -> dict[str, str]:
    return {"sales_order_id": str(order.id), "number": order.number, "customer_id": str(order.customer_id)}


def _customer_for_credit_step(uow: UnitOfWork, customer_id: uuid.UUID) -> Any:
    """The customer of an order being confirmed or released, checked able to order. With a credit limit,
    one credit step of the customer at a time (its lock): two orders confirmed at once, or one confirmed
    while another is released, would each leave the other out of the exposure and both pass. The customer
    is read again under the lock, so a cut of its limit, a hold or a block the step waited for counts."""
    customer = ports.get_customer(uow, customer_id)
    if getattr(customer, "credit_limit", None) is not None:
        ports.lock_customer(uow, customer_id)
        customer = ports.get_customer(uow, customer_id)
    ports.ensure_can_order(customer)
    return customer


def confirm_sales_order(uow: UnitOfWork, order_id: uuid.UUID) -> SalesOrder:
    """Credit check, then allocation. Over the credit limit the order goes on hold (reason
    `credit`) and nothing is reserved; otherwise stock is reserved and the rest backordered."""
    order = _locked_order(uow, order_id)
    if SALES_ORDER.transition_for(OrderStatus(order.status), "confirm") is None:
        SALES_ORDER.apply(order, "confirm")  # raises, naming the allowed actions
    customer = _customer_for_credit_step(uow, order.customer_id)  # blocked or on hold since it was entered
    # An order the books cannot convert would ship and then stop every invoicing run of the tenant:
    # refused here, before anything is reserved, until the currency has an exchange rate.
    ports.ensure_bookable(uow, order.currency)
    limit = getattr(customer, "credit_limit", None)
    if limit is not None:
        exposure = credit_exposure(uow, order.customer_id, excluding=order.id) + order.total
        if exposure > limit:
            SALES_ORDER.apply(order, "hold")
            order.hold_reason = "credit"
            save(uow, [order])
            audit(uow, "sales_order.hold", "sales_order", order.id, before={"status": "draft"},
                  after={"status": order.status, "hold_reason": "credit", "exposure": exposure})
            record_event(uow, events.SalesOrderHeld(**_event_base(order), reason="credit",
                                                    exposure=format_amount(exposure, order.currency),
                                                    credit_limit=format_amount(limit, order.currency)),
                         subject=f"sales_order/{order.id}")
            return held_or(uow, order)
    reserved, backordered, holds = _allocate(uow, order, {ln.id: ln.quantity for ln in order.lines})
    SALES_ORDER.apply(order, "confirm")
    save(uow, [*order.lines, order])
    audit(uow, "sales_order.confirm", "sales_order", order.id, before={"status": "draft"},
          after={"status": order.status})
    record_event(uow, events.SalesOrderConfirmed(
        **_event_base(order), total=format_amount(order.total, order.currency), reserved=reserved,
        backordered=backordered,
        promised_date=order.promised_date.isoformat() if order.promised_date else None,
    ), subject=f"sales_order/{order.id}")
    return _allocated(uow, order, holds)


def release_hold(uow: UnitOfWork, order_id: uuid.UUID) -> SalesOrder:
    """Release a held order (a credit manager's decision) and allocate it. Like confirm, refused while
    the customer is blocked or on hold (put so since the order was held): 409 `customer_not_active`."""
    order = _locked_order(uow, order_id)
    if SALES_ORDER.transition_for(OrderStatus(order.status), "release_hold") is None:
        SALES_ORDER.apply(order, "release_hold")  # raises, naming the allowed actions
    _customer_for_credit_step(uow, order.customer_id)  # under its lock: another credit check counts this order
    SALES_ORDER.apply(order, "release_hold")
    reason, order.hold_reason = order.hold_reason, None
    _, _, holds = _allocate(uow, order, {ln.id: ln.quantity for ln in order.lines})
    save(uow, [*order.lines, order])
    audit(uow, "sales_order.release_hold", "sales_order", order.id, before={"status": "on_hold", "hold_reason": reason},
          after={"status": order.status})
    record_event(uow, events.SalesOrderHoldReleased(**_event_base(order)), subject=f"sales_order/{order.id}")
    return _allocated(uow, order, holds)


def _allocate(uow: UnitOfWork, order: SalesOrder, wanted: dict[uuid.UUID, Decimal]
              ) -> tuple[dict, dict, dict[uuid.UUID, Decimal] | None]:
    """Reserve what is wanted per line; sets the lines' backorders and the promised date on the
    step's copy of the order (the caller saves it). Returns the reserved and backordered quantities
    of the lines that changed, as the step's event reports them, and what every line now holds
    when every line was allocated (None otherwise), for the step's answer (see `_allocated`)."""
    inv = ports.inventory()
    lines = [ln for ln in order.lines if wanted.get(ln.id, ZERO) > 0]
    demands = [inv.Demand(demand_type=DEMAND, demand_id=ln.id, product_id=ln.product_id, quantity=wanted[ln.id],
                          ship_to_country=order.ship_to_country,
                          ship_to_region=order.ship_to_region) for ln in lines]
    results = {r.demand_id: r for r in inv.allocate(uow, demands)} if demands else {}
    reserved: dict[str, str] = {}
    backordered: dict[str, str] = {}
    holds: dict[uuid.UUID, Decimal] = {}
    for ln in lines:
        r = results.get(ln.id)
        if r is None:
            continue
        # we always ask for all that is still unreserved, so what is left over is the backorder
        ln.quantity_backordered = r.backordered
        holds[ln.id] = r.reserved  # the line's whole reservation after this call, not only what it added
        if r.reserved:
            reserved[str(ln.id)] = format_quantity(r.reserved)
        if r.backordered:
            backordered[str(ln.id)] = format_quantity(r.backordered)
    today = clock.today()
    short = [ln.product_id for ln in order.lines if ln.quantity_backordered > 0]
    ready = today + timedelta(days=ports.lead_time_days(uow, short, DEFAULT_LEAD_DAYS)) if short else today
    order.promised_date = max(ready, order.requested_date) if order.requested_date else ready
    return reserved, backordered, holds if len(holds) == len(order.lines) else None


# What an allocating step (confirm, release_hold, allocate_backorders) left reserved per line, by
# order id and the version it saved, kept in the unit of work (forgotten on rollback): its HTTP
# answer shows live quantities, which would otherwise be read back from inventory right after
# being computed. A later change of the order moves its version, and the entry no longer counts.
_ALLOCATED_MEMO = "sales.allocated"


def _allocated(uow: UnitOfWork, order: SalesOrder, holds: dict[uuid.UUID, Decimal] | None) -> SalesOrder:
    """The step's answer (held_or) once `save` wrote the order, remembering what its lines hold."""
    result = held_or(uow, order)
    known: dict[uuid.UUID, tuple[int, dict[uuid.UUID, Decimal]]] = uow.memo(_ALLOCATED_MEMO, dict)
    if holds is not None:
        known[order.id] = (order.version, holds)
    else:
        known.pop(order.id, None)
    return result


def allocate_backorders(uow: UnitOfWork, order_id: uuid.UUID) -> SalesOrder:
    """Try again to reserve backordered quantities (after stock arrived)."""
    order = _locked_order(uow, order_id)
    if SALES_ORDER.transition_for(OrderStatus(order.status), "allocate") is None:
        SALES_ORDER.apply(order, "allocate")  # raises, naming the allowed actions (allocate keeps the state)
    # inventory tops a demand's reservation up to the quantity asked: ask for all not yet shipped
    wanted = {ln.id: ln.quantity - ln.quantity_shipped for ln in order.lines if ln.quantity > ln.quantity_shipped}
    if not wanted:
        return held_or(uow, order)
    reserved, backordered, holds = _allocate(uow, order, wanted)
    save(uow, [*order.lines, order])
    if reserved:
        audit(uow, "sales_order.allocate", "sales_order", order.id, after={"reserved": reserved})
        record_event(uow, events.SalesOrderAllocated(**_event_base(order), reserved=reserved, backordered=backordered),
                     subject=f"sales_order/{order.id}")
    return _allocated(uow, order, holds)


def reserved_by_line(uow: UnitOfWork, order: SalesOrder) -> dict[uuid.UUID, Decimal]:
    if order.status not in OPEN_ORDER:
        return {}
    found = ports.inventory().reserved_quantity(uow, DEMAND, [ln.id for ln in order.lines])
    return {ln.id: found.get(ln.id, ZERO) for ln in order.lines}


def live_quantities(uow: UnitOfWork, order: SalesOrder
                    ) -> tuple[dict[uuid.UUID, Decimal] | None, dict[uuid.UUID, Decimal] | None]:
    """Reserved and backordered per line of an open order as inventory holds them (None, None for
    another order: nothing is held for it). When the allocating step that returned this order just
    computed them, they are not read back: its lines' backorders are what inventory holds."""
    if order.status not in OPEN_ORDER:
        return None, None
    known = uow.memo(_ALLOCATED_MEMO, dict).get(order.id)
    if known is not None and known[0] == order.version:
        return {ln.id: known[1].get(ln.id, ZERO) for ln in order.lines}, None
    return live_quantities_of(uow, [order])[order.id]


def live_quantities_of(uow: UnitOfWork, orders: Sequence[SalesOrder]
                       ) -> dict[uuid.UUID, tuple[dict[uuid.UUID, Decimal], dict[uuid.UUID, Decimal]]]:
    """`live_quantities` of a page of orders, by order id (open orders only), in one read of the
    reservations and one of the backorders per `in_lists.MAX_IN_LIST` lines: a line's stored
    `quantity_backordered` is what its last allocating step left, and stock arriving since may have
    filled it."""
    open_orders = [o for o in orders if o.status in OPEN_ORDER]
    line_ids = [ln.id for o in open_orders for ln in o.lines]
    reserved: dict[uuid.UUID, Decimal] = {}
    backordered: dict[uuid.UUID, Decimal] = {}
    for ids in in_lists.slices(line_ids):
        reserved.update(ports.inventory().reserved_quantity(uow, DEMAND, ids))
        backordered.update(ports.backordered_quantity(uow, ids))
    return {o.id: ({ln.id: reserved.get(ln.id, ZERO) for ln in o.lines},
                   {ln.id: backordered.get(ln.id, ZERO) for ln in o.lines}) for o in open_orders}


def cancel_sales_order(uow: UnitOfWork, order_id: uuid.UUID) -> SalesOrder:
    """Cancel an order not yet shipped: release its reservations and its open shipments."""
    order = get_sales_order(uow, order_id, for_update=True)
    before = {"status": order.status} | ({"hold_reason": order.hold_reason} if order.hold_reason else {})
    SALES_ORDER.apply(order, "cancel")
    if before["status"] == OrderStatus.confirmed:
        ports.inventory().release_many(uow, DEMAND, [ln.id for ln in order.lines])
        _cancel_open_shipments(uow, order)
    for ln in order.lines:
        ln.quantity_backordered = ZERO
    order.hold_reason = None  # a cancelled order is held for nothing (the audit keeps why it was)
    audit(uow, "sales_order.cancel", "sales_order", order.id, before=before, after={"status": order.status})
    record_event(uow, events.SalesOrderCancelled(**_event_base(order)), subject=f"sales_order/{order.id}")
    return order


def close_short(uow: UnitOfWork, order_id: uuid.UUID) -> SalesOrder:
    """Close a partially shipped order: what did not ship never will (reservations and backorders
    released, open shipments cancelled). Shipped quantities can still be invoiced; when they all
    already are, the order is invoiced."""
    order = get_sales_order(uow, order_id, for_update=True)
    SALES_ORDER.apply(order, "close")  # the caller's close (POST .../close); audited as close_short, as before
    ports.inventory().release_many(uow, DEMAND, [ln.id for ln in order.lines])
    for ln in order.lines:
        ln.quantity_backordered = ZERO
    _cancel_open_shipments(uow, order)
    if order.invoice_status != OrderInvoiceStatus.invoiced and _fully_invoiced(order):
        # what shipped was already invoiced before the close: nothing is left to bill
        ORDER_INVOICING.apply(order, "invoice")
    audit(uow, "sales_order.close_short", "sales_order", order.id, before={"status": "partially_shipped"},
          after={"status": order.status})
    record_event(uow, events.SalesOrderClosed(**_event_base(order)), subject=f"sales_order/{order.id}")
    return order


def _cancel_open_shipments(uow: UnitOfWork, order: SalesOrder) -> None:
    """The order will not ship what its open shipments hold: each is cancelled as by its own cancel
    (POST /shipments/{id}/cancel), audited and told (`shipment.status_changed.v1`), so the warehouse
    stops picking it."""
    for shipment in uow.session.scalars(select(Shipment).where(
            Shipment.sales_order_id == order.id, Shipment.status.in_(OPEN_SHIPMENT)).order_by(Shipment.number)):
        before = shipment.status
        SHIPMENT.apply(shipment, "cancel")
        audit(uow, "shipment.cancel", "shipment", shipment.id, before={"status": before},
              after={"status": shipment.status, "sales_order": order.status})
        _status_event(uow, shipment)


# ---------------------------------------------------------------- shipping


# What open shipments hold of order lines, per line and the warehouse the shipment is from (None: any).
_IN_OPEN_SHIPMENTS = PreparedIn(lambda in_: (
    select(_SHL.c.sales_order_line_id, _SHL.c.warehouse_id, func.sum(_SHL.c.quantity))
    .join(_SH, (_SH.c.id == _SHL.c.shipment_id) & (_SH.c.tenant_id == _SHL.c.tenant_id))
    .where(_SHL.c.tenant_id == bindparam("tenant_id"), in_(_SHL.c.sales_order_line_id, "line_ids"),
           _SH.c.status.in_([literal(str(s)) for s in OPEN_SHIPMENT]))  # fixed values, not an expanding list
    .group_by(_SHL.c.sales_order_line_id, _SHL.c.warehouse_id)))


def _in_open_shipments(uow: UnitOfWork, line_ids: Sequence[uuid.UUID]
                       ) -> dict[tuple[uuid.UUID, uuid.UUID | None], Decimal]:
    if not line_ids:
        return {}
    uow.session.flush()  # shipments the ORM still holds (picked, cancelled) count as written
    rows = _IN_OPEN_SHIPMENTS.execute(uow, {"tenant_id": uow.tenant_id}, line_ids=list(line_ids))
    return {(line_id, warehouse_id): qty for line_id, warehouse_id, qty in rows}


def shippable_by_line(uow: UnitOfWork, order: SalesOrder,
                      warehouse_id: uuid.UUID | None = None) -> dict[uuid.UUID, Decimal]:
    """Reserved and not already on an open shipment (in `warehouse_id` only, when given). Refuses
    (ShipmentsFromEveryWarehouse) a shipment from one warehouse while one from any is open, and the other
    way round."""
    reserved = reserved_by_line(uow, order)
    pending = _in_open_shipments(uow, [ln.id for ln in order.lines]) if reserved else {}
    from_any = sorted({ln for (ln, wid) in pending if wid is None})
    if pending and (warehouse_id is None) != bool(from_any):
        raise ShipmentsFromEveryWarehouse(
            f"order {order.number} has open shipments " + ("from any warehouse: ship or cancel them before "
                                                          "shipping from one" if from_any else
                                                          "each from one warehouse: name the warehouse (warehouse_id) "
                                                          "of this one too, or ship or cancel them first"))
    if warehouse_id is None:
        held: dict[uuid.UUID, Decimal] = {lid: qty for (lid, _), qty in pending.items()}
        return {lid: max(qty - held.get(lid, ZERO), ZERO) for lid, qty in reserved.items()}
    there = ports.inventory().reserved_by_warehouse(uow, DEMAND, list(reserved))
    return {lid: max(there.get((lid, warehouse_id), ZERO) - pending.get((lid, warehouse_id), ZERO), ZERO)
            for lid in reserved}


def create_shipment(uow: UnitOfWork, *, sales_order_id: uuid.UUID,
                    lines: Sequence[ShipmentLineInput] | None = None,
                    warehouse_id: uuid.UUID | None = None) -> Shipment:
    """A shipment of reserved quantities (all that is reserved and not on another shipment, or the given lines);
    with `warehouse_id`, only what is reserved in that warehouse: a shipment leaves from one place."""
    with reference("sales_order_id"):
        order = _locked_order(uow, sales_order_id)  # read, not changed: locked so two shipments cannot take the same
    if order.status not in (OrderStatus.confirmed, OrderStatus.partially_shipped):
        raise InvalidTransition("sales order", order.status, "ship",
                                SALES_ORDER.allowed_actions(OrderStatus(order.status)))
    where = ""
    if warehouse_id is not None:
        with reference("warehouse_id"):
            where = f" in warehouse {ports.inventory().get_warehouse(uow, warehouse_id).code}"
    available = shippable_by_line(uow, order, warehouse_id)
    by_id = {ln.id: ln for ln in order.lines}
    plan: list[tuple[SalesOrderLine, Decimal]] = []
    if lines is None:
        plan = [(by_id[lid], qty) for lid, qty in available.items() if qty > 0]
        plan.sort(key=lambda p: p[0].line_no)
        if not plan:
            raise NothingToShip(f"nothing on order {order.number} is reserved{where} and unshipped",
                                **_state_of(order))
    else:
        if not lines:
            raise invalid("lines", "give at least one line, or leave lines out to ship everything reserved",
                          "required")
        errors: list[FieldError] = []
        short: list[str] = []
        seen: set[uuid.UUID] = set()
        for i, item in enumerate(lines):
            line = by_id.get(item.sales_order_line_id)
            if line is None:
                errors.append(FieldError(f"lines[{i}].sales_order_line_id", "not a line of this order", "exists"))
            elif item.sales_order_line_id in seen:
                errors.append(FieldError(f"lines[{i}].sales_order_line_id", "line given twice", "unique"))
            elif item.quantity <= 0 or not fits_storage(item.quantity):
                errors.append(FieldError(f"lines[{i}].quantity", "must be greater than zero", "positive"))
            elif item.quantity > available.get(line.id, ZERO):
                short.append(f"line {line.line_no} ({line.sku}): {format_quantity(item.quantity)} asked, "
                             f"{format_quantity(available.get(line.id, ZERO))} reserved{where} and not yet on a "
                             "shipment")
            else:
                plan.append((line, item.quantity))
            seen.add(item.sales_order_line_id)
        if errors:
            raise ValidationFailed(errors)
        if short:
            raise NotReserved("cannot ship more than is reserved: " + "; ".join(short))
    shipment = new_row(Shipment, id=new_id(), number=next_number(uow, "SHP"), sales_order_id=order.id,
                       customer_id=order.customer_id, status=ShipmentStatus.draft, packages=[])
    insert_document(uow, shipment, "lines", [
        new_row(ShipmentLine, id=new_id(), shipment_id=shipment.id, line_no=n + 1, sales_order_line_id=line.id,
                product_id=line.product_id, quantity=qty, warehouse_id=warehouse_id, cost=None, lots=[])
        for n, (line, qty) in enumerate(plan)])
    summary = [{"sales_order_line_id": str(ln.id), "quantity": format_quantity(q)} for ln, q in plan]
    audit(uow, "shipment.create", "shipment", shipment.id, after={"number": shipment.number, "lines": summary})
    record_event(uow, events.ShipmentCreated(shipment_id=str(shipment.id), number=shipment.number,
                                             sales_order_id=str(order.id), lines=summary),
                 subject=f"shipment/{shipment.id}")
    return shipment


def get_shipment(uow: UnitOfWork, shipment_id: uuid.UUID, *, for_update: bool = False) -> Shipment:
    query = select(Shipment).where(Shipment.id == shipment_id).options(joinedload(Shipment.lines))
    if for_update:
        query = query.with_for_update(of=Shipment).execution_options(populate_existing=True)
    shipment = uow.session.scalars(query).unique().one_or_none()
    if shipment is None:
        raise NotFound("shipment", shipment_id)
    return shipment


def _shipment_step(uow: UnitOfWork, shipment_id: uuid.UUID, action: str,
                   details: dict[str, Any] | None = None) -> Shipment:
    _lock_order_of_shipment(uow, shipment_id)
    shipment = get_shipment(uow, shipment_id, for_update=True)
    before = shipment.status
    SHIPMENT.apply(shipment, action)
    audit(uow, f"shipment.{action}", "shipment", shipment.id, before={"status": before},
          after={"status": shipment.status, **(details or {})})
    return shipment


@dataclass
class PickListLine:
    shipment_line: ShipmentLine
    order_line: SalesOrderLine
    picks: list[Any]  # inventory's Pick: warehouse, location, lot, quantity, serials
    short: Decimal  # on the shipment but no longer reserved: nothing to pick for it


@dataclass
class PickList:
    shipment: Shipment
    lines: list[PickListLine]


def pick_list(uow: UnitOfWork, shipment_id: uuid.UUID) -> PickList:
    """Where to pick each line of an open shipment: warehouse, location, lot (and serial numbers when
    tracked) and quantity, from the line's reservations in the order the shipment will be issued.
    When several open shipments share an order line, earlier shipments take from the reservations
    first, so this one's picks start after theirs."""
    shipment = get_shipment(uow, shipment_id)
    if shipment.status not in OPEN_SHIPMENT:
        raise NothingToPick(f"shipment {shipment.number} is {shipment.status}: nothing is left to pick")
    line_ids = [sl.sales_order_line_id for sl in shipment.lines]
    order_lines = {ln.id: ln for ln in uow.session.scalars(
        select(SalesOrderLine).where(SalesOrderLine.id.in_(line_ids)))}
    # per line and warehouse: a shipment from one warehouse comes after the earlier ones from there
    ahead = {(line_id, wid): qty for line_id, wid, qty in uow.session.execute(
        select(ShipmentLine.sales_order_line_id, ShipmentLine.warehouse_id, func.sum(ShipmentLine.quantity))
        .join(Shipment, Shipment.id == ShipmentLine.shipment_id)
        .where(ShipmentLine.sales_order_line_id.in_(line_ids), Shipment.status.in_(OPEN_SHIPMENT),
               Shipment.id != shipment.id,
               (Shipment.created_at < shipment.created_at)
               | ((Shipment.created_at == shipment.created_at) & (Shipment.id < shipment.id)))
        .group_by(ShipmentLine.sales_order_line_id, ShipmentLine.warehouse_id))}
    picking = ports.inventory().picking
    # an open shipment from one warehouse (its lines name it) picks there only, after the earlier ones from there
    plans = picking.pick_plan(uow, demand_type=DEMAND, items=[
        picking.PickItem(sl.sales_order_line_id, sl.quantity,
                         ahead.get((sl.sales_order_line_id, sl.warehouse_id)) or ZERO, sl.warehouse_id)
        for sl in shipment.lines])
    return PickList(shipment, [PickListLine(sl, order_lines[sl.sales_order_line_id], plan.picks, plan.short)
                               for sl, plan in zip(shipment.lines, plans, strict=True)])


def pick_shipment(uow: UnitOfWork, shipment_id: uuid.UUID) -> Shipment:
    shipment = _shipment_step(uow, shipment_id, "pick")
    _status_event(uow, shipment)
    return shipment


def pack_shipment(uow: UnitOfWork, shipment_id: uuid.UUID, packages: Sequence[dict[str, Any]] = ()) -> Shipment:
    """Pack into packages ({weight_kg, reference?}); each weight must be positive."""
    for i, p in enumerate(packages):
        w = p.get("weight_kg")
        if w is None or Decimal(str(w)) <= 0:
            raise invalid(f"packages[{i}].weight_kg", "must be greater than zero", "positive")
    shipment = _shipment_step(uow, shipment_id, "pack")
    shipment.packages = [{"weight_kg": str(p["weight_kg"]), "reference": str(p.get("reference") or "")}
                         for p in packages]
    _status_event(uow, shipment)
    return shipment


def cancel_shipment(uow: UnitOfWork, shipment_id: uuid.UUID) -> Shipment:
    shipment = _shipment_step(uow, shipment_id, "cancel")
    _status_event(uow, shipment)
    return shipment


def deliver_shipment(uow: UnitOfWork, shipment_id: uuid.UUID, *, delivered_at: datetime | None = None,
                     reported_by: Literal["hand", "carrier"] = "hand", connector: str | None = None) -> Shipment:
    """The shipment reached its customer: set by hand (now, unless `delivered_at` says when), or
    reported by a carrier (`reported_by="carrier"`, at the carrier's `delivered_at`, through the
    inbound `connector`). `delivered_at` must be timezone-aware. Only a shipped shipment can be
    delivered (409 naming the allowed actions otherwise)."""
    if delivered_at is not None and delivered_at.utcoffset() is None:
        raise invalid("delivered_at", "must have a time zone", "timezone")
    at = delivered_at.astimezone(UTC) if delivered_at is not None else clock.now()
    details: dict[str, Any] = {"delivered_at": at.isoformat(), "reported_by": reported_by}
    if connector:
        details["connector"] = connector
    shipment = _shipment_step(uow, shipment_id, "deliver", details)
    shipment.delivered_at = at
    record_event(uow, events.ShipmentDelivered(shipment_id=str(shipment.id), number=shipment.number,
                                               sales_order_id=str(shipment.sales_order_id),
                                               delivered_at=at.isoformat(), reported_by=reported_by,
                                               connector=connector),
                 subject=f"shipment/{shipment.id}")
    return shipment


@dataclass(frozen=True)
class TrackingDelivery:
    """What a carrier's delivery report changed: the shipments it delivered now, and those that
    were delivered before (left alone). Both empty: no shipment of this tenant has the tracking
    number in status shipped or delivered (unknown, still open, or cancelled)."""

    delivered: list[Shipment]
    already_delivered: list[Shipment]


def deliver_by_tracking(uow: UnitOfWork, tracking_number: str, *, delivered_at: datetime | None = None,
                        carrier: str | None = None, connector: str | None = None) -> TrackingDelivery:
    """A carrier reports the parcel `tracking_number` delivered: every shipped shipment of this
    tenant with exactly that tracking number (recorded when it shipped) becomes delivered at
    `delivered_at` (default now), through `deliver_shipment`. With `carrier`, only shipments of that
    carrier (case-insensitive) or with no carrier recorded match: two carriers' numbers can coincide.
    Idempotent: a shipment delivered before is left alone (no change, no second event)."""
    query = (select(Shipment.id, Shipment.status)
             .where(Shipment.tracking_number == tracking_number.strip(),
                    Shipment.status.in_((ShipmentStatus.shipped, ShipmentStatus.delivered)))
             .order_by(Shipment.shipped_at, Shipment.id))
    if carrier:
        query = query.where(Shipment.carrier.is_(None) | (func.lower(Shipment.carrier) == carrier.lower()))
    delivered: list[Shipment] = []
    already: list[Shipment] = []
    for shipment_id, status in uow.session.execute(query).all():
        if status == ShipmentStatus.shipped:
            try:
                delivered.append(deliver_shipment(uow, shipment_id, delivered_at=delivered_at,
                                                  reported_by="carrier", connector=connector))
                continue
            except InvalidTransition:
                pass  # delivered by hand since the query above (refused before anything was written)
        shipment = get_shipment(uow, shipment_id)
        if shipment.status == ShipmentStatus.delivered:
            already.append(shipment)
    return TrackingDelivery(delivered, already)


def _status_event(uow: UnitOfWork, shipment: Shipment) -> None:
    record_event(uow, events.ShipmentStatusChanged(shipment_id=str(shipment.id), number=shipment.number,
                                                   sales_order_id=str(shipment.sales_order_id),
                                                   status=shipment.status), subject=f"shipment/{shipment.id}")


def ship_shipment(uow: UnitOfWork, shipment_id: uuid.UUID, *, carrier: str | None = None,
                  service: str | None = None, tracking_number: str | None = None) -> Shipment:
    """Stock leaves the warehouse (inventory issues the reservations and posts COGS); the order
    moves to partially shipped or shipped."""
    order = _locked_order_of_shipment(uow, shipment_id)
    shipment = _locked_shipment(uow, shipment_id)
    before = shipment.status
    if SHIPMENT.transition_for(ShipmentStatus(before), "ship") is None:
        SHIPMENT.apply(shipment, "ship")  # raises, naming the allowed actions
    inv = ports.inventory()
    by_id = {ln.id: ln for ln in order.lines}
    # one batch for all the lines: a fixed number of queries and one cost-of-goods entry per shipment
    # an open shipment's lines name a warehouse only when it ships from that one
    all_issued = inv.issue_reserved_many(uow, demand_type=DEMAND, reference=shipment.number,
                                         items=[(sl.sales_order_line_id, sl.quantity) for sl in shipment.lines],
                                         warehouse_ids=[sl.warehouse_id for sl in shipment.lines])
    # what left, per line, and the order lines' shipped quantities
    for sl, issued in zip(shipment.lines, all_issued, strict=True):
        lots = [{"lot_code": lot.lot_code, "quantity": format_quantity(lot.quantity), "serials": list(lot.serials)}
                for lot in getattr(issued, "lots", [])]
        if getattr(issued, "serials", None) and not lots:
            lots = [{"lot_code": None, "quantity": format_quantity(sl.quantity), "serials": list(issued.serials)}]
        sl.warehouse_id, sl.cost, sl.lots = getattr(issued, "warehouse_id", None), getattr(issued, "cost", None), lots
        by_id[sl.sales_order_line_id].quantity_shipped += sl.quantity
    SHIPMENT.apply(shipment, "ship")
    tracking_number = stripped_or_none(tracking_number)
    shipment.carrier, shipment.service, shipment.tracking_number = carrier, service, tracking_number
    shipment.shipped_at = clock.now()
    complete = all(ln.quantity_shipped >= ln.quantity for ln in order.lines)
    SALES_ORDER.apply(order, "ship" if complete else "ship_partially")
    _maybe_close(uow, order)
    # one statement for the shipment's lines, one for the order's, one per document
    save(uow, [*shipment.lines, *order.lines, shipment, order])
    lines = [{"sales_order_line_id": str(sl.sales_order_line_id), "quantity": format_quantity(sl.quantity)}
             for sl in shipment.lines]
    audit(uow, "shipment.ship", "shipment", shipment.id, before={"status": before},
          after={"status": shipment.status, "carrier": carrier, "tracking_number": tracking_number})
    record_event(uow, events.ShipmentShipped(shipment_id=str(shipment.id), number=shipment.number,
                                             sales_order_id=str(order.id), carrier=carrier, service=service,
                                             tracking_number=tracking_number, lines=lines),
                 subject=f"shipment/{shipment.id}")
    return held_or(uow, shipment)


def _maybe_close(uow: UnitOfWork, order: SalesOrder) -> None:
    if order.status == OrderStatus.shipped and order.invoice_status == OrderInvoiceStatus.invoiced:
        SALES_ORDER.apply(order, "close_fulfilled")
        record_event(uow, events.SalesOrderClosed(**_event_base(order)), subject=f"sales_order/{order.id}")


# ---------------------------------------------------------------- invoicing


def invoice_sales_order(uow: UnitOfWork, order_id: uuid.UUID, *, on: date | None = None) -> Invoice:
    """Invoice what is shipped and not yet invoiced, as one posted invoice (409 when nothing is)."""
    order = _locked_order(uow, order_id)
    lines = _uninvoiced_lines(order)
    if not lines:
        raise billing.NothingToInvoice(f"order {order.number} has no shipped quantity left to invoice",
                                       **_state_of(order))
    return _invoice_order(uow, order, lines, on)


def _state_of(order: SalesOrder) -> dict[str, Any]:
    """The order's state and allowed actions, for a 409 that is not itself a refused transition."""
    status = OrderStatus(order.status)
    return {"state": status.value, "allowed_actions": sorted(SALES_ORDER.allowed_actions(status))}


def _invoice_order(uow: UnitOfWork, order: SalesOrder, lines: list[billing.InvoiceLineInput],
                   on: date | None) -> Invoice:
    """One posted invoice of `lines` (what the order has to bill), the order marked with it."""
    invoice = billing.post_invoice(
        uow, customer_id=order.customer_id, currency=order.currency, sales_order_id=order.id,
        ship_to_country=order.ship_to_country, ship_to_region=order.ship_to_region, on=on, lines=lines,
    )
    _mark_invoiced(uow, order, lines, invoice_total=invoice.total)
    return invoice


def _shipped_through(uow: UnitOfWork, order_ids: Sequence[uuid.UUID], through: date
                     ) -> dict[uuid.UUID, Decimal]:
    """Per order line, the quantity on the orders' shipments shipped on or before `through` (UTC days).
    One query per `in_lists.MAX_IN_LIST` orders: a period's run can invoice more orders than a statement
    takes parameters (an order's lines are all in the same slice, so each line's sum is whole)."""
    end = datetime.combine(through + timedelta(days=1), time(0), tzinfo=UTC)
    shipped: dict[uuid.UUID, Decimal] = {}
    for ids in in_lists.slices(order_ids):
        shipped.update(uow.session.execute(
            select(ShipmentLine.sales_order_line_id, func.sum(ShipmentLine.quantity))
            .join(Shipment, Shipment.id == ShipmentLine.shipment_id)
            .where(Shipment.sales_order_id.in_(ids), Shipment.shipped_at.is_not(None), Shipment.shipped_at < end)
            .group_by(ShipmentLine.sales_order_line_id)).all())
    return shipped


def _uninvoiced_lines(order: SalesOrder, shipped: dict[uuid.UUID, Decimal] | None = None
                      ) -> list[billing.InvoiceLineInput]:
    """What the order has shipped and not invoiced (up to `shipped`, the quantities shipped by a period's
    end, when given: invoicing is cumulative, so a line's first shipments are the first invoiced)."""
    todo = []
    for ln in order.lines:
        shipped_by = ln.quantity_shipped if shipped is None else min(shipped.get(ln.id, ZERO), ln.quantity_shipped)
        # units that came back before they were billed are never billed (the earliest shipped)
        billable = shipped_by - ln.quantity_returned_unbilled
        if billable > ln.quantity_invoiced:
            todo.append((ln, billable - ln.quantity_invoiced))
    if not todo:
        return []
    lines = [billing.InvoiceLineInput(product_id=ln.product_id, quantity=q, unit_price=ln.unit_price,
                                      description=f"{ln.sku} {ln.description}"[:300], tax_class=ln.tax_class,
                                      source_line_id=ln.id) for ln, q in todo]
    if order.shipping_charge and not order.shipping_invoiced:
        # the shipping charge is billed once, with the first shipment's invoice
        lines.append(billing.InvoiceLineInput(
            product_id=None, quantity=Decimal(1), unit_price=order.shipping_charge, tax_class=SHIPPING_TAX_CLASS,
            description=f"Shipping {order.shipping_carrier} {order.shipping_service} [{order.number}]"[:300]))
    return lines


def _billed(lines: Sequence[billing.InvoiceLineInput]) -> dict[uuid.UUID | None, Decimal]:
    return {ln.source_line_id: ln.quantity for ln in lines if ln.source_line_id is not None}


def _mark_invoiced(uow: UnitOfWork, order: SalesOrder, lines: Sequence[billing.InvoiceLineInput], *,
                   invoice_total: Decimal) -> None:
    """On the step's copy of the order (see _locked_order), saved here: `lines` are what was invoiced of it."""
    invoiced = {ln.source_line_id: ln.quantity for ln in lines if ln.source_line_id is not None}
    for ln in order.lines:
        ln.quantity_invoiced += invoiced.get(ln.id, ZERO)
    if any(ln.source_line_id is None and ln.tax_class == SHIPPING_TAX_CLASS for ln in lines):
        order.shipping_invoiced = True
    order.invoiced_total += invoice_total
    ORDER_INVOICING.apply(order, "invoice" if _fully_invoiced(order) else "invoice_partially")
    _maybe_close(uow, order)
    save(uow, [*order.lines, order])


def _fully_invoiced(order: SalesOrder) -> bool:
    """Nothing left to bill: every line invoiced, or returned before it was, up to what was ordered (a
    closed-short order: up to what it shipped)."""
    wanted = (lambda ln: ln.quantity_shipped) if order.status == OrderStatus.closed else (lambda ln: ln.quantity)
    return all(ln.quantity_invoiced + ln.quantity_returned_unbilled >= wanted(ln) for ln in order.lines)


def note_returned_unbilled(uow: UnitOfWork, order_id: uuid.UUID, quantities: dict[uuid.UUID, Decimal]) -> None:
    """Returned units credited before they were invoiced (returns.credit_return): they will not be billed,
    and an order with nothing else left to bill is invoiced."""
    order = _locked_order(uow, order_id)
    for ln in order.lines:
        # never more than was shipped and never invoiced: units billed and then credited by hand are not
        # "unbilled" because this return found nothing left to credit for them
        unbilled = ln.quantity_shipped - ln.quantity_invoiced - ln.quantity_returned_unbilled
        ln.quantity_returned_unbilled += min(quantities.get(ln.id, ZERO), max(unbilled, ZERO))
    if order.invoice_status != OrderInvoiceStatus.invoiced and _fully_invoiced(order):
        ORDER_INVOICING.apply(order, "invoice")
        _maybe_close(uow, order)
    save(uow, [*order.lines, order])


INVOICE_PERIODS = ("none", "week", "month")


def invoice_grouping(uow: UnitOfWork) -> str:
    """Tenant setting `invoice_grouping`: "order" (default) or "customer" (one invoice per customer per run)."""
    return "customer" if tenant_facts(uow).settings.get("invoice_grouping") == "customer" else "order"


def invoice_period(uow: UnitOfWork) -> str:
    """Tenant setting `invoice_period`: "none" (default: invoicing runs are started by hand), "week" or "month"
    (the worker runs one after each period, for what shipped in it and before)."""
    period = tenant_facts(uow).settings.get("invoice_period")
    return period if period in INVOICE_PERIODS else "none"


def last_period_end(period: str, today: date) -> date | None:
    """The last day of the latest whole period before `today` (weeks end on Sunday)."""
    if period == "month":
        return today.replace(day=1) - timedelta(days=1)
    if period == "week":
        return today - timedelta(days=today.isoweekday())
    return None


def run_invoicing(uow: UnitOfWork, *, customer_id: uuid.UUID | None = None, on: date | None = None,
                  through: date | None = None, refused: list[str] | None = None) -> list[Invoice]:
    """The billing run: invoice everything shipped and not yet invoiced — per order, or per customer and
    currency when the tenant groups invoices. With `through` (a period's last day), only what was shipped on
    or before that day: a run for a period made after it ended leaves the next period's shipments alone.
    Nothing to invoice is not an error: the run makes no invoice.

    Given `refused` (the unattended nightly run), an invoice the books refuse (say, no exchange rate for its
    currency that day) leaves its orders for a later run, named in `refused` with the reason, and the run
    goes on with the others; without it the first refusal refuses the whole run, as a clerk expects."""
    today = clock.today()
    if through is not None and through > today:
        raise invalid("through", "a day that has begun: today or earlier", "range")
    if on is not None and (on > today or (through is not None and on < through)):
        raise invalid("on", "today or earlier, and not before `through`: an invoice is dated when (or after) "
                      "what it bills had shipped", "range")
    if customer_id is not None:
        with reference("customer_id"):  # not an empty run: a customer this tenant does not have
            ports.get_customer(uow, customer_id)
    query = select(SalesOrder).join(SalesOrderLine, SalesOrderLine.order_id == SalesOrder.id).where(
        SalesOrderLine.quantity_shipped > SalesOrderLine.quantity_invoiced
        + SalesOrderLine.quantity_returned_unbilled).distinct()
    if customer_id:
        query = query.where(SalesOrder.customer_id == customer_id)
    order_ids = sorted(uow.session.scalars(query.with_only_columns(SalesOrder.id)))
    if not order_ids:
        return []
    orders = [_locked_order(uow, oid) for oid in order_ids]
    # read under the orders' locks: no shipment of theirs ships meanwhile
    shipped = _shipped_through(uow, order_ids, through) if through is not None else None
    todo = [(o, lines) for o in sorted(orders, key=lambda o: o.number) if (lines := _uninvoiced_lines(o, shipped))]
    if on is not None and on < today and through is None:
        # everything shipped is billed: none of it may have shipped after the invoices' date
        by_on = _shipped_through(uow, order_ids, on)
        for o, lines in todo:
            if _billed(_uninvoiced_lines(o, by_on)) != _billed(lines):
                raise invalid("on", f"order {o.number} shipped after {on.isoformat()}: an invoice is dated when "
                              "(or after) what it bills had shipped; give `through` to bill only what shipped "
                              "by then", "range")
    per_order = invoice_grouping(uow) == "order"
    if per_order:
        groups = [[(o, lines)] for o, lines in todo]
    else:
        # one invoice per customer, currency and tax jurisdiction: the invoice is taxed at one ship-to
        by_key: dict[tuple[uuid.UUID, str, str | None, str | None],
                     list[tuple[SalesOrder, list[billing.InvoiceLineInput]]]] = {}
        for o, lines in todo:
            by_key.setdefault((o.customer_id, o.currency, o.ship_to_country, o.ship_to_region), []).append((o, lines))
        groups = list(by_key.values())
    invoices = []
    for group in groups:
        try:
            if refused is None:
                invoice = _invoice_group(uow, group, on, per_order)
            else:
                with uow.savepoint():  # a refusal takes its number, postings, audit and events with it
                    invoice = _invoice_group(uow, group, on, per_order)
        except DomainError as exc:
            exc.detail = f"{', '.join(o.number for o, _ in group)}: {exc.detail}"  # whose invoice it was
            if refused is None:
                raise
            refused.append(exc.detail)
            continue
        invoices.append(invoice)
    return invoices


def _invoice_group(uow: UnitOfWork, group: list[tuple[SalesOrder, list[billing.InvoiceLineInput]]],
                   on: date | None, per_order: bool) -> Invoice:
    """One invoice for the group's orders (one order, or a customer's at one currency and ship-to)."""
    if per_order:
        return _invoice_order(uow, *group[0], on)
    o = group[0][0]
    invoice = billing.post_invoice(uow, customer_id=o.customer_id, currency=o.currency, sales_order_id=None,
                                   ship_to_country=o.ship_to_country, ship_to_region=o.ship_to_region,
                                   on=on, lines=[ln for _, lines in group for ln in lines])
    for o, lines in group:
        ids = {x.id for x in o.lines}
        _mark_invoiced(uow, o, lines, invoice_total=sum(
            (ln.line_total + ln.tax_amount for ln in invoice.lines
             if ln.source_line_id in ids or (ln.source_line_id is None
                                             and ln.description.endswith(f"[{o.number}]"))), ZERO))
    return invoice


def run_period_invoicing_everywhere() -> int:
    """Scheduler entry point (no arguments): in every active tenant that invoices per week or month, invoice
    what shipped up to the end of the last whole period, dated that day (today when its ledger period is
    closed). Repeating it finds nothing more. Returns how many invoices it made."""
    return in_each_active_tenant(_run_last_period, "period invoicing")


def _run_last_period(uow: UnitOfWork) -> int:
    from entrepot.ledger.services.periods import period_state

    through = last_period_end(invoice_period(uow), clock.today())
    if through is None:
        return 0
    on = through if period_state(uow, through)[1] == "open" else clock.today()
    refused: list[str] = []
    invoiced = len(run_invoicing(uow, through=through, on=on, refused=refused))
    if refused:
        # The rest is invoiced (committed here); the refused wait for the next night, and the job's error
        # (`entrepot jobs`, the worker's log) says which and why.
        uow.commit()
        raise PeriodInvoicingIncomplete(f"invoiced {invoiced}; left for the next run: " + "; ".join(refused))
    return invoiced


class PeriodInvoicingIncomplete(RuntimeError):
    """A nightly run invoiced what it could; some orders' invoices were refused."""


# ---------------------------------------------------------------- reading


def order_timeline(uow: UnitOfWork, order_id: uuid.UUID) -> list[OutboxEvent]:
    """Every event on the order, its documents (shipments, invoices, payments, returns), its lines' stock and
    the ledger entries its documents posted, in order."""
    from entrepot.billing.models import InvoiceLine
    from entrepot.ledger import posting
    from entrepot.sales.models import ReturnAuthorization

    order = get_sales_order(uow, order_id)
    line_ids = [ln.id for ln in order.lines]
    subjects = [f"sales_order/{order.id}"]
    subjects += [f"shipment/{i}" for i in uow.session.scalars(select(Shipment.id).where(
        Shipment.sales_order_id == order.id))]
    invoice_ids = list(uow.session.scalars(select(Invoice.id).where(Invoice.sales_order_id == order.id)))
    invoice_ids += [i for i in uow.session.scalars(select(InvoiceLine.invoice_id).where(
        InvoiceLine.source_line_id.in_(line_ids)).distinct()) if i not in invoice_ids]
    subjects += [f"invoice/{i}" for i in invoice_ids]
    if invoice_ids:
        subjects += [f"payment/{i}" for i in set(uow.session.scalars(select(PaymentAllocation.payment_id).where(
            PaymentAllocation.invoice_id.in_(invoice_ids))))]
    returns = uow.session.execute(select(ReturnAuthorization.id, ReturnAuthorization.number).where(
        ReturnAuthorization.sales_order_id == order.id)).all()
    subjects += [f"return/{i}" for i, _ in returns]
    if order.quote_id:
        subjects.append(f"quote/{order.quote_id}")
    # The books: the entries the order's documents posted (one statement), told under each entry's subject —
    # the invoices' (and grouped invoices') receivable and revenue, their credit notes, the payments on them
    # (a payment of several orders' invoices on each of their timelines), the shipments' cost of goods and
    # the returns' restock (posted with their stock moves' ids), and their reversals.
    subjects += [f"journal_entry/{i}" for i in posting.entry_ids_posted_by(uow, [
        *billing.documents_of_invoices(invoice_ids),
        *ports.inventory().document_move_ids(DEMAND, line_ids, product_ids=list({ln.product_id for ln in order.lines}),
                                             returned_under=[number for _, number in returns])])]
    events = list(uow.session.scalars(select(OutboxEvent).where(OutboxEvent.subject.in_(subjects))
                                      .order_by(OutboxEvent.seq)))
    # The stock side of the order's lines (reserved, backorder filled, released, issued) is told under
    # each product's subject: the database picks the lines' own, from the order's first event on.
    first = next((e.seq for e in events if e.subject == subjects[0]), None)
    if order.lines and first is not None:
        events += uow.session.scalars(select(OutboxEvent).where(
            OutboxEvent.subject.in_({f"stock/{ln.product_id}" for ln in order.lines}),
            OutboxEvent.type.in_(_LINE_STOCK_EVENTS), OutboxEvent.seq >= first,
            OutboxEvent.data["demand_id"].as_string().in_([str(ln.id) for ln in order.lines])))
        events.sort(key=lambda e: e.seq)
    return events


_LINE_STOCK_EVENTS = ("stock.reserved.v1", "stock.backorder_allocated.v1", "stock.released.v1", "stock.issued.v1")
