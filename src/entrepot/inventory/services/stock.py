"""Stock operations: adjustments, receipts, returns, scrap, transfers, cycle counts."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from entrepot.catalog.models import Product
from entrepot.db.numbering import next_number
from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.audit import audit, snapshot
from entrepot.integration.outbox import record_event
from entrepot.inventory.events import StockAdjusted, StockCounted, StockReceived, StockTransferred
from entrepot.inventory.models import (
    OPENING_BALANCE,
    ZERO,
    Location,
    LocationKind,
    Lot,
    MoveKind,
    SerialNumber,
    StockBalance,
    StockCount,
    StockMove,
    Transfer,
)
from entrepot.inventory.services import core, valuation
from entrepot.inventory.services.allocation import (
    Demand,
    ReorderWatch,
    allocate,
    backordered_quantity,
    close_demand,
    fill_backorders,
    open_reservations,
    release,
    reorder_watch,
    reserved_quantity,
)
from entrepot.inventory.services.core import (
    LocationLocked,
    SerialInStock,
    as_uuid,
    cost_of,
    quantity_of,
)
from entrepot.inventory.states import STOCK_COUNT, TRANSFER, CountStatus, TransferStatus
from entrepot.kernel import clock
from entrepot.kernel.dates import check_past_date
from entrepot.kernel.errors import FieldError, NotFound, ValidationFailed, invalid
from entrepot.kernel.money import format_amount, format_price, format_quantity
from entrepot.ledger import posting


def _date(on: object, field: str = "on") -> date | None:
    if on is None:
        return None
    if isinstance(on, str):
        try:
            on = date.fromisoformat(on)
        except ValueError as exc:
            raise invalid(field, "an ISO date (YYYY-MM-DD)", "date") from exc
    if not isinstance(on, date):
        raise invalid(field, "an ISO date (YYYY-MM-DD)", "date")
    return check_past_date(on, field, "stock moves")


def check_open_period(uow: UnitOfWork, on: date | None) -> None:
    """A back-dated move is allowed only into an open accounting period (even one worth nothing)."""
    if on is not None and on < clock.today():
        from entrepot.ledger.services.periods import open_period_for_posting

        open_period_for_posting(uow, on)


def _reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise invalid("reason", "a reason code is required", "required")
    if len(reason.strip()) > 200:
        raise invalid("reason", "at most 200 characters", "length")
    return reason.strip()


def _reference(reference: object) -> str:
    ref = "" if reference is None else str(reference).strip()
    if len(ref) > 120:
        raise invalid("reference", "at most 120 characters", "length")
    return ref


def _lot_by_id(uow: UnitOfWork, product: Product, lot_id: object) -> Lot:
    lid = as_uuid(lot_id, "lot_id")
    lot = uow.session.get(Lot, lid)
    if lot is None:  # a 422, as an unknown lot code is (#5 names unknown lots among the 409/422s)
        raise invalid("lot_id", f"no lot {lid}", "exists")
    if lot.product_id != product.id:
        raise invalid("lot_id", f"lot {lot.code} is not of product {product.sku}", "exists")
    return lot


def _check_serials(uow: UnitOfWork, product: Product, serials: Sequence[str] | None, quantity: Decimal,
                   field: str = "serials") -> list[str]:
    """The serial numbers given for `quantity` units: one each, distinct, for a serial-tracked product only."""
    if not product.track_serials:
        if serials:
            raise invalid(field, f"product {product.sku} is not serial-tracked", "not_tracked")
        return []
    clean = [str(s).strip() for s in (serials or [])]
    if quantity != quantity.to_integral_value() or len(clean) != int(quantity):
        raise invalid(field, f"product {product.sku} is serial-tracked: one serial per unit "
                      f"({format_quantity(quantity)} units, {len(clean)} serials)", "count")
    if any(not s or len(s) > 100 for s in clean) or len(set(clean)) != len(clean):
        raise invalid(field, "serials must be 1-100 characters and distinct", "distinct")
    return clean


def _receive_serials(uow: UnitOfWork, product: Product, serials: list[str], lot: Lot | None,
                     location: Location) -> None:
    if not serials:
        return
    existing = {s.serial: s for s in uow.session.scalars(
        select(SerialNumber).where(SerialNumber.product_id == product.id, SerialNumber.serial.in_(serials)))}
    # a serial may come (back) in from a customer, or turn up after it was written off as lost
    away = {core.location_of(uow, None, kind).id for kind in (LocationKind.CUSTOMER, LocationKind.ADJUSTMENT)}
    for serial in serials:
        row = existing.get(serial)
        if row is not None and row.location_id not in away:
            raise SerialInStock(f"serial {serial} of {product.sku} is already in stock", serial=serial)
        if row is None:
            uow.session.add(SerialNumber(product_id=product.id, serial=serial, lot_id=lot.id if lot else None,
                                         location_id=location.id))
        else:
            row.location_id = location.id
            row.lot_id = lot.id if lot else row.lot_id


def _outbound_serials(uow: UnitOfWork, product: Product, location: Location, lot: Lot | None, quantity: Decimal,
                      to: Location, serials: Sequence[str] | None) -> list[str] | None:
    """Serials leaving a location: the ones named (one per unit, as on the way in), else the oldest there."""
    if serials:
        serials = _check_serials(uow, product, serials, quantity)
    if not product.track_serials:
        return None
    core.refuse_part_units(product.sku, quantity)
    query = select(SerialNumber).where(SerialNumber.product_id == product.id, SerialNumber.location_id == location.id)
    if lot is not None:
        query = query.where(SerialNumber.lot_id == lot.id)  # a lot's stock leaves with that lot's serials
    if serials:
        query = query.where(SerialNumber.serial.in_(list(serials)))
    rows = list(uow.session.scalars(query.order_by(SerialNumber.created_at, SerialNumber.serial)
                                    .limit(int(quantity))))
    if len(rows) < int(quantity):
        if serials:  # the caller named them: say which are not there
            found = {r.serial for r in rows}
            missing = [s for s in serials if s not in found]
            lot_text = f" in lot {lot.code}" if lot is not None else ""
            raise core.InsufficientStock(f"{product.sku}: serial {', '.join(missing)} not at {location.code}"
                                         f"{lot_text}", serials=missing)
        raise core.InsufficientStock(f"{product.sku}: not enough serial numbers at {location.code}")
    for row in rows:
        row.location_id = to.id
    return [r.serial for r in rows]


# ------------------------------------------------------------------ adjustments


def adjust_stock(
    uow: UnitOfWork,
    *,
    warehouse_id: object,
    product_id: object,
    quantity: object,
    reason: object,
    unit_cost: object | None = None,
    lot_code: str | None = None,
    lot_id: object | None = None,
    expiry_date: object | None = None,
    serials: Sequence[str] | None = None,
    reference: str | None = None,
    on: object | None = None,
    kind: str = MoveKind.ADJUSTMENT,
    location_id: object | None = None,
) -> StockMove:
    """Signed adjustment of a warehouse's stock location (found, damaged, correction…).

    Gains are valued at `unit_cost` (default: the moving average, else the
    product's standard cost); losses at the moving average. The value is posted
    to the ledger (inventory against inventory adjustment)."""
    warehouse = core.warehouse_for(uow, warehouse_id)
    product = core.product_for(uow, product_id)
    if lot_id is not None and not product.track_lots:
        raise invalid("lot_id", f"product {product.sku} is not lot-tracked", "not_tracked")
    qty = quantity_of(quantity, positive=False)
    why = _reason(reason)
    cost = cost_of(unit_cost) if unit_cost is not None else None
    when = _date(on)
    ref = _reference(reference)
    expiry = _date_any(expiry_date, "expiry_date")
    location = core.stock_location(uow, warehouse.id, location_id)
    return core.with_retry(uow, lambda: _adjust(uow, warehouse.id, product, qty, why, cost, lot_code, lot_id, expiry,
                                                serials, ref, when, kind, location))


def _date_any(value: object, field: str) -> date | None:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:
        raise invalid(field, "an ISO date (YYYY-MM-DD)", "date") from exc


def _refuse_while_counted(uow: UnitOfWork, location: Location) -> None:
    """A location being counted takes no other stock change: the count sheet's expected quantities
    would no longer be what is on the shelf.

    The flag is read again under a share lock of the location (FOR KEY SHARE): a count starting
    meanwhile (`start_count` locks the row FOR UPDATE) waits for this change to commit, or this
    waits for the count and sees it. The location as loaded earlier in the transaction would still
    say it is not counted (PostgreSQL, READ COMMITTED)."""
    counted = uow.session.scalar(select(Location.count_locked).where(Location.id == location.id)
                                 .with_for_update(read=True, key_share=True))
    if counted:
        raise LocationLocked(f"{location.code} is being counted; post or cancel the count first")


def _adjust(uow: UnitOfWork, warehouse_id: uuid.UUID, product: Product, qty: Decimal, reason: str,
            unit_cost: Decimal | None, lot_code: str | None, lot_id: object | None, expiry: date | None,
            serials: Sequence[str] | None, reference: str, on: date | None, kind: str,
            location: Location | None = None, watch: ReorderWatch | None = None) -> StockMove:
    """`watch`: the caller's, when this is one of its several moves (a count's lines), which it emits once
    after the last, so that stock moving from one lot to another is not stock running low on the way."""
    core.lock_products(uow, [product.id])
    check_open_period(uow, on)
    stock = location or core.location_of(uow, warehouse_id, LocationKind.STOCK)
    if kind != MoveKind.COUNT:
        _refuse_while_counted(uow, stock)
    adjustment = core.location_of(uow, None, LocationKind.ADJUSTMENT)
    if lot_id is not None and product.track_lots:
        lot = _lot_by_id(uow, product, lot_id)
    else:
        lot = core.lot_for(uow, product, lot_code, expiry, create=qty > 0)
    if qty > 0 and kind != MoveKind.COUNT:
        # As at receipt: expired goods are scrapped, not added to sellable stock. (A count records
        # what is on the shelf, expired or not.)
        core.refuse_expired(lot, on)
    own_watch = watch is None
    watch = watch or reorder_watch(uow, [product.id])
    if qty > 0:
        clean_serials = _check_serials(uow, product, serials, qty)
        cost = unit_cost if unit_cost is not None else core.current_unit_cost(uow, product, warehouse_id)
        value = core.value_in(uow, product, warehouse_id, qty, cost, on=on)
        move = core.record_move(uow, product=product, from_location=adjustment, to_location=stock, quantity=qty,
                                kind=kind, lot=lot, value=value, unit_cost=cost, reason=reason, reference=reference,
                                on=on, serials=clean_serials or None)
        _receive_serials(uow, product, clean_serials, lot, stock)
        signed_value = value
    else:
        out = -qty
        moved = _outbound_serials(uow, product, stock, lot, out, adjustment, serials)
        # check stock before valuing, so a refused adjustment leaves the average untouched
        balance = core.balance_for(uow, product.id, stock, lot.id if lot else None)
        if not core.negative_stock_allowed(uow) and balance.on_hand - balance.reserved < out:
            available = max(balance.on_hand - balance.reserved, ZERO)
            raise core.InsufficientStock(
                f"{product.sku}: {format_quantity(available)} available in the warehouse, cannot remove "
                f"{format_quantity(out)} (negative stock is not allowed)",
                product_id=str(product.id), available=format_quantity(available))
        value = core.value_out(uow, product, warehouse_id, out)
        move = core.record_move(uow, product=product, from_location=stock, to_location=adjustment, quantity=out,
                                kind=kind, lot=lot, value=value, unit_cost=core.quantize_storage(value / out),
                                reason=reason, reference=reference, on=on, serials=moved)
        signed_value = -value
        watch.touched(product.id, warehouse_id)
    if reason == OPENING_BALANCE and kind == MoveKind.ADJUSTMENT:
        posting.post_opening_stock(uow, source_id=move.id, on=move.effective_date, amount=signed_value)
    else:
        posting.post_stock_adjustment(uow, source_id=move.id, on=move.effective_date, amount=signed_value)
    _revalue_if_backdated(uow, product, warehouse_id, move, on)
    on_hand = _on_hand(uow, product.id, stock.id)
    audit(uow, "stock.adjust", "stock_move", move.id, after=snapshot(move))
    record_event(uow, StockAdjusted(move_id=str(move.id), product_id=str(product.id), warehouse_id=str(warehouse_id),
                                    quantity=format_quantity(qty), reason=reason, on_hand=format_quantity(on_hand),
                                    value=format_amount(signed_value, core.functional_currency(uow))),
                 subject=f"stock/{product.id}")
    if qty > 0:
        fill_backorders(uow, product.id, warehouse_id)
    if own_watch:
        watch.emit()
    return move


def _revalue_if_backdated(uow: UnitOfWork, product: Product, warehouse_id: uuid.UUID, move: StockMove,
                          on: date | None) -> None:
    """A move dated before later outflows re-costs them: one correction, not a repost (valuation.py)."""
    if on is not None and valuation.needs_revalue(uow, product.id, warehouse_id, on,
                                                  outflow=move.from_warehouse_id == warehouse_id):
        valuation.revalue(uow, product, warehouse_id, move)


def _on_hand(uow: UnitOfWork, product_id: uuid.UUID, location_id: uuid.UUID) -> Decimal:
    uow.session.flush()
    rows = uow.session.scalars(select(StockBalance.on_hand).where(StockBalance.product_id == product_id,
                                                                  StockBalance.location_id == location_id))
    return sum(rows, ZERO)


# ------------------------------------------------------------------ receipts and returns


def receive_stock(
    uow: UnitOfWork,
    *,
    product_id: object,
    warehouse_id: object,
    quantity: object,
    unit_cost: object,
    reference: str,
    lot_code: str | None = None,
    expiry: object | None = None,
    serials: Sequence[str] | None = None,
    on: object | None = None,
    location_id: object | None = None,
) -> StockMove:
    """Goods received from a supplier into the warehouse's stock (Dr inventory / Cr GRNI)."""
    warehouse = core.warehouse_for(uow, warehouse_id)
    product = core.product_for(uow, product_id)
    qty = quantity_of(quantity)
    cost = cost_of(unit_cost)
    ref = _reference(reference)
    when = _date(on)
    expiry_date = _date_any(expiry, "expiry")
    location = core.stock_location(uow, warehouse.id, location_id)
    return core.with_retry(uow, lambda: _receive(uow, warehouse.id, product, qty, cost, ref, lot_code, expiry_date,
                                                 serials, when, MoveKind.RECEIPT, LocationKind.SUPPLIER, False,
                                                 location))


def receive_return(
    uow: UnitOfWork,
    *,
    product_id: object,
    warehouse_id: object,
    quantity: object,
    unit_cost: object,
    reference: str,
    scrap: bool = False,
    lot_code: str | None = None,
    serials: Sequence[str] | None = None,
    on: object | None = None,
) -> StockMove:
    """Goods returned by a customer: back into stock at `unit_cost` (Dr inventory / Cr COGS),
    or into scrap (no value comes back; the cost stays in COGS)."""
    warehouse = core.warehouse_for(uow, warehouse_id)
    product = core.product_for(uow, product_id)
    qty = quantity_of(quantity)
    cost = cost_of(unit_cost)
    ref = _reference(reference)
    when = _date(on)
    return core.with_retry(uow, lambda: _receive(uow, warehouse.id, product, qty, cost, ref, lot_code, None, serials,
                                                 when, MoveKind.RETURN, LocationKind.CUSTOMER, scrap))


@dataclass(frozen=True)
class ReturnedGoods:
    """What came back from customers under some references (returns' numbers): the quantities per
    product and lot code, and the serial numbers per product."""

    by_lot: dict[tuple[uuid.UUID, str], Decimal]
    serials: dict[uuid.UUID, set[str]]


def returned_goods(uow: UnitOfWork, product_ids: Sequence[uuid.UUID], references: Sequence[str]) -> ReturnedGoods:
    """A return checks what it brings back against what the order shipped less what came back before:
    a lot no more than shipped of it, a serial once."""
    goods = ReturnedGoods({}, {})
    if not product_ids or not references:
        return goods
    for product_id, code, quantity, serials in uow.session.execute(
            select(StockMove.product_id, Lot.code, StockMove.quantity, StockMove.serials)
            .outerjoin(Lot, Lot.id == StockMove.lot_id)
            .where(StockMove.product_id.in_(list(product_ids)), StockMove.kind == MoveKind.RETURN,
                   StockMove.reference.in_(list(references)))):
        if code is not None:
            goods.by_lot[(product_id, code)] = goods.by_lot.get((product_id, code), ZERO) + quantity
        goods.serials.setdefault(product_id, set()).update(serials or [])
    return goods


def _receive(uow: UnitOfWork, warehouse_id: uuid.UUID, product: Product, qty: Decimal, cost: Decimal, reference: str,
             lot_code: str | None, expiry: date | None, serials: Sequence[str] | None, on: date | None, kind: str,
             source_kind: LocationKind, scrap: bool, location: Location | None = None) -> StockMove:
    core.lock_products(uow, [product.id])
    check_open_period(uow, on)
    source = core.location_of(uow, None, source_kind)
    target = core.location_of(uow, warehouse_id, LocationKind.SCRAP) if scrap else (
        location or core.location_of(uow, warehouse_id, LocationKind.STOCK))
    if not scrap:
        _refuse_while_counted(uow, target)
    lot = core.lot_for(uow, product, lot_code, expiry, create=True)
    if not scrap:
        core.refuse_expired(lot, on)  # expired goods go to scrap, never to sellable stock
    clean_serials = _check_serials(uow, product, serials, qty)
    value = ZERO if scrap else core.value_in(uow, product, warehouse_id, qty, cost, on=on)
    move = core.record_move(uow, product=product, from_location=source, to_location=target, quantity=qty, kind=kind,
                            lot=lot, value=value, unit_cost=cost, reference=reference, on=on,
                            serials=clean_serials or None)
    _receive_serials(uow, product, clean_serials, lot, target)
    when = move.effective_date
    if kind == MoveKind.RECEIPT:
        posting.post_goods_receipt(uow, source_id=move.id, on=when, amount=value)
    elif not scrap:
        posting.post_stock_return(uow, source_id=move.id, on=when, amount=value)
    if not scrap:
        _revalue_if_backdated(uow, product, warehouse_id, move, on)
    audit(uow, f"stock.{kind}", "stock_move", move.id, after=snapshot(move))
    record_event(uow, StockReceived(move_id=str(move.id), product_id=str(product.id), warehouse_id=str(warehouse_id),
                                    quantity=format_quantity(qty),
                                    unit_cost=format_price(cost, core.functional_currency(uow)), reference=reference,
                                    lot_id=str(lot.id) if lot else None), subject=f"stock/{product.id}")
    if not scrap:
        fill_backorders(uow, product.id, warehouse_id)
    return move


# ------------------------------------------------------------------ scrap


def scrap_stock(uow: UnitOfWork, *, warehouse_id: object, product_id: object, quantity: object, reason: object,
                lot_code: str | None = None, serials: Sequence[str] | None = None,
                location_id: object | None = None) -> StockMove:
    """Unsellable stock to the scrap location: it leaves the valuation (posted as an adjustment loss)."""
    warehouse = core.warehouse_for(uow, warehouse_id)
    product = core.product_for(uow, product_id)
    qty = quantity_of(quantity)
    why = _reason(reason)
    location = core.stock_location(uow, warehouse.id, location_id)
    return core.with_retry(uow, lambda: _scrap(uow, warehouse.id, product, qty, why, lot_code, serials, location))


def _scrap(uow: UnitOfWork, warehouse_id: uuid.UUID, product: Product, qty: Decimal, reason: str,
           lot_code: str | None, serials: Sequence[str] | None, stock: Location) -> StockMove:
    core.lock_products(uow, [product.id])
    _refuse_while_counted(uow, stock)
    scrap = core.location_of(uow, warehouse_id, LocationKind.SCRAP)
    lot = core.lot_for(uow, product, lot_code, create=False)
    watch = reorder_watch(uow, [product.id])
    balance = core.balance_for(uow, product.id, stock, lot.id if lot else None)
    if not core.negative_stock_allowed(uow) and balance.on_hand - balance.reserved < qty:
        available = max(balance.on_hand - balance.reserved, ZERO)
        raise core.InsufficientStock(f"{product.sku}: {format_quantity(available)} available, cannot scrap "
                                     f"{format_quantity(qty)}", product_id=str(product.id),
                                     available=format_quantity(available))
    moved = _outbound_serials(uow, product, stock, lot, qty, scrap, serials)
    value = core.value_out(uow, product, warehouse_id, qty)
    move = core.record_move(uow, product=product, from_location=stock, to_location=scrap, quantity=qty,
                            kind=MoveKind.SCRAP, lot=lot, value=value, unit_cost=core.quantize_storage(value / qty),
                            reason=reason, serials=moved)
    posting.post_stock_adjustment(uow, source_id=move.id, on=move.effective_date, amount=-value)
    audit(uow, "stock.scrap", "stock_move", move.id, after=snapshot(move))
    record_event(uow, StockAdjusted(move_id=str(move.id), product_id=str(product.id), warehouse_id=str(warehouse_id),
                                    quantity=format_quantity(-qty), reason=f"scrap: {reason}",
                                    on_hand=format_quantity(_on_hand(uow, product.id, stock.id)),
                                    value=format_amount(-value, core.functional_currency(uow))),
                 subject=f"stock/{product.id}")
    watch.touched(product.id, warehouse_id)
    watch.emit()
    return move


# ------------------------------------------------------------------ transfers


TRANSFER_DEMAND = "transfer"  # the demand type of a requested transfer's reservation (demand id: the transfer's)


def create_transfer(uow: UnitOfWork, *, product_id: object, from_warehouse_id: object, to_warehouse_id: object,
                    quantity: object, lot_code: str | None = None, ship: bool = True,
                    location_id: object | None = None) -> Transfer:
    """Ship stock to another warehouse: it waits in the destination's in-transit location,
    valued there at the source's cost, until `receive_transfer`.

    With `ship=False` the transfer is only requested: the stock is reserved at the source like an order
    line's (expiring lots first; what is not there is backordered and filled, oldest promise first, when
    stock arrives), and leaves with `ship_transfer`. Shipped at once, it leaves the source's bin
    `location_id` (default: its main stock location)."""
    source = core.warehouse_for(uow, from_warehouse_id, "from_warehouse_id")
    target = core.warehouse_for(uow, to_warehouse_id, "to_warehouse_id")
    if source.id == target.id:
        raise invalid("to_warehouse_id", "a transfer needs two different warehouses", "distinct")
    product = core.product_for(uow, product_id)
    qty = quantity_of(quantity)
    if not ship:
        if lot_code:
            raise invalid("lot_code", "a requested transfer reserves lots by expiry; name a lot only when "
                          "shipping at once", "unsupported")
        if location_id is not None:
            raise invalid("location_id", "a requested transfer reserves from every bin of the source; name a bin "
                          "only when shipping at once", "unsupported")
        if product.track_serials:
            core.refuse_part_units(product.sku, qty)
        return _request_transfer(uow, product, source.id, target.id, qty)
    stock = core.stock_location(uow, source.id, location_id)
    return core.with_retry(uow, lambda: _ship_transfer(uow, product, source.id, target.id, qty, lot_code, stock))


def _transferred(uow: UnitOfWork, transfer: Transfer) -> None:
    record_event(uow, StockTransferred(transfer_id=str(transfer.id), status=transfer.status,
                                       product_id=str(transfer.product_id),
                                       from_warehouse_id=str(transfer.from_warehouse_id),
                                       to_warehouse_id=str(transfer.to_warehouse_id),
                                       quantity=format_quantity(transfer.quantity)),
                 subject=f"transfer/{transfer.id}")


def _plain(quantity: Decimal) -> str:
    """A quantity as people write it in a message: 3, 2.5 (not 3.0000)."""
    text = f"{quantity:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _request_transfer(uow: UnitOfWork, product: Product, source_id: uuid.UUID, target_id: uuid.UUID,
                      qty: Decimal) -> Transfer:
    core.lock_products(uow, [product.id])  # before the number, in the order the other stock actions take them
    transfer = Transfer(number=next_number(uow, "TRF"), product_id=product.id, lot_id=None,
                        from_warehouse_id=source_id, to_warehouse_id=target_id, quantity=qty,
                        status=TransferStatus.REQUESTED)
    uow.session.add(transfer)
    uow.session.flush()
    allocate(uow, [Demand(TRANSFER_DEMAND, transfer.id, product.id, qty, warehouse_id=source_id)])
    audit(uow, "transfer.request", "transfer", transfer.id, after=snapshot(transfer))
    _transferred(uow, transfer)
    return transfer


def transfer_reservation(uow: UnitOfWork, transfers: Sequence[Transfer]) -> dict[uuid.UUID, tuple[Decimal, Decimal]]:
    """(reserved, backordered) of each requested transfer among `transfers`."""
    ids = [t.id for t in transfers if t.status == TransferStatus.REQUESTED]
    if not ids:
        return {}
    reserved = reserved_quantity(uow, TRANSFER_DEMAND, ids)
    backordered = backordered_quantity(uow, TRANSFER_DEMAND, ids)
    return {i: (reserved.get(i, ZERO), backordered.get(i, ZERO)) for i in ids}


def _ship_transfer(uow: UnitOfWork, product: Product, source_id: uuid.UUID, target_id: uuid.UUID, qty: Decimal,
                   lot_code: str | None, stock: Location) -> Transfer:
    core.lock_products(uow, [product.id])
    _refuse_while_counted(uow, stock)
    transit = core.location_of(uow, target_id, LocationKind.IN_TRANSIT)
    lot = core.lot_for(uow, product, lot_code, create=False)
    core.refuse_expired(lot)
    watch = reorder_watch(uow, [product.id])
    balance = core.balance_for(uow, product.id, stock, lot.id if lot else None)
    if not core.negative_stock_allowed(uow) and balance.on_hand - balance.reserved < qty:
        raise core.InsufficientStock(f"{product.sku}: {_plain(max(balance.on_hand - balance.reserved, ZERO))} "
                                     f"available at {stock.code}, cannot transfer {_plain(qty)}")
    serials = _outbound_serials(uow, product, stock, lot, qty, transit, None)
    value = core.value_out(uow, product, source_id, qty)
    unit = core.quantize_storage(value / qty)
    core.value_in_exact(uow, product, target_id, qty, value)
    transfer = Transfer(number=next_number(uow, "TRF"), product_id=product.id, lot_id=lot.id if lot else None,
                        from_warehouse_id=source_id, to_warehouse_id=target_id, quantity=qty,
                        status=TransferStatus.IN_TRANSIT, shipped_at=clock.now())
    uow.session.add(transfer)
    uow.session.flush()
    core.record_move(uow, product=product, from_location=stock, to_location=transit, quantity=qty,
                     kind=MoveKind.TRANSFER_OUT, lot=lot, value=value, unit_cost=unit, reference=transfer.number,
                     serials=serials)
    audit(uow, "transfer.ship", "transfer", transfer.id, after=snapshot(transfer))
    _transferred(uow, transfer)
    watch.touched(product.id, source_id)
    watch.emit()
    return transfer


def get_transfer(uow: UnitOfWork, transfer_id: object) -> Transfer:
    try:
        tid = as_uuid(transfer_id, "transfer_id")
    except ValidationFailed as exc:
        raise NotFound("transfer", transfer_id) from exc
    transfer = uow.session.get(Transfer, tid)
    if transfer is None:
        raise NotFound("transfer", transfer_id)
    return transfer


def _locked_transfer(uow: UnitOfWork, transfer_id: object, action: str) -> tuple[Transfer, Product, dict[str, Any]]:
    """The transfer locked (after its product, the fixed order), its state checked for `action` and applied;
    with the product and the transfer as it was."""
    from entrepot.catalog import service as catalog

    transfer = get_transfer(uow, transfer_id)
    product = catalog.get_product(uow, transfer.product_id)
    core.lock_products(uow, [product.id])
    uow.session.refresh(transfer, with_for_update=True)
    before = snapshot(transfer)
    TRANSFER.apply(transfer, action)
    return transfer, product, before


def ship_transfer(uow: UnitOfWork, transfer_id: object) -> Transfer:
    """A requested transfer leaves: its reserved stock moves to the destination's in-transit location
    (409 unless all of it is reserved)."""
    return core.with_retry(uow, lambda: _ship_requested(uow, transfer_id))


def _ship_requested(uow: UnitOfWork, transfer_id: object) -> Transfer:
    transfer, product, before = _locked_transfer(uow, transfer_id, "ship")
    reservations = open_reservations(uow, TRANSFER_DEMAND, transfer.id)
    reserved = sum((r.quantity for r in reservations), ZERO)
    if reserved < transfer.quantity:
        raise core.InsufficientStock(f"{product.sku}: {_plain(reserved)} of {_plain(transfer.quantity)} reserved for "
                                     f"{transfer.number}; ship it when the rest arrives, or cancel it")
    transit = core.location_of(uow, transfer.to_warehouse_id, LocationKind.IN_TRANSIT)
    watch = reorder_watch(uow, [product.id])
    # Each reservation's move leaves the valuation as a move of its own (as a back-dated move's replay of
    # the warehouse's history takes it): one take of the whole, shared out, would leave the warehouse's
    # average where the replay, move by move, does not.
    places = []
    for r in reservations:  # every refusal before the first write
        lot = uow.session.get(Lot, r.lot_id) if r.lot_id else None
        core.refuse_expired(lot)
        source = uow.session.get(Location, r.location_id)
        assert source is not None
        _refuse_while_counted(uow, source)
        places.append((lot, source))
    parts = [core.value_out(uow, product, transfer.from_warehouse_id, r.quantity) for r in reservations]
    core.value_in_exact(uow, product, transfer.to_warehouse_id, transfer.quantity, sum(parts, ZERO))
    for r, (lot, source), part in zip(reservations, places, parts, strict=True):
        serials = _outbound_serials(uow, product, source, lot, r.quantity, transit, None)
        core.record_move(uow, product=product, from_location=source, to_location=transit, quantity=r.quantity,
                         kind=MoveKind.TRANSFER_OUT, lot=lot, value=part,
                         unit_cost=core.quantize_storage(part / r.quantity), reference=transfer.number,
                         serials=serials, consume_reserved=True, demand_type=TRANSFER_DEMAND, demand_id=transfer.id)
        r.quantity = ZERO
        r.status = "closed"
    close_demand(uow, TRANSFER_DEMAND, transfer.id)
    transfer.shipped_at = clock.now()
    uow.session.flush()
    audit(uow, "transfer.ship", "transfer", transfer.id, before=before, after=snapshot(transfer))
    _transferred(uow, transfer)
    watch.touched(product.id, transfer.from_warehouse_id)
    watch.emit()
    return transfer


def cancel_transfer(uow: UnitOfWork, transfer_id: object) -> Transfer:
    """A requested transfer is called off: its reservation is released and its backorder closed."""
    return core.with_retry(uow, lambda: _cancel_transfer(uow, transfer_id))


def _cancel_transfer(uow: UnitOfWork, transfer_id: object) -> Transfer:
    transfer, _, before = _locked_transfer(uow, transfer_id, "cancel")
    release(uow, TRANSFER_DEMAND, transfer.id)
    uow.session.flush()
    audit(uow, "transfer.cancel", "transfer", transfer.id, before=before, after=snapshot(transfer))
    _transferred(uow, transfer)
    return transfer


def receive_transfer(uow: UnitOfWork, transfer_id: object) -> Transfer:
    return core.with_retry(uow, lambda: _receive_transfer(uow, transfer_id))


def _receive_transfer(uow: UnitOfWork, transfer_id: object) -> Transfer:
    transfer, product, before = _locked_transfer(uow, transfer_id, "receive")
    transit = core.location_of(uow, transfer.to_warehouse_id, LocationKind.IN_TRANSIT)
    stock = core.location_of(uow, transfer.to_warehouse_id, LocationKind.STOCK)
    _refuse_while_counted(uow, stock)
    # What left, lot by lot (a requested transfer may have shipped several lots): each comes in as it left.
    # The serials come in as they left, too (not whichever of the lot are oldest in transit: another
    # transfer's may be there).
    shipped: dict[uuid.UUID | None, Decimal] = {}
    sent: dict[uuid.UUID | None, list[str]] = {}
    for lot_id, qty, serials in uow.session.execute(
            select(StockMove.lot_id, StockMove.quantity, StockMove.serials)
            .where(StockMove.reference == transfer.number, StockMove.kind == MoveKind.TRANSFER_OUT,
                   StockMove.product_id == product.id, StockMove.to_location_id == transit.id)):
        shipped[lot_id] = shipped.get(lot_id, ZERO) + qty
        sent.setdefault(lot_id, []).extend(serials or [])
    if not shipped:
        shipped = {transfer.lot_id: transfer.quantity}
    for lot_id, qty in sorted(shipped.items(), key=lambda item: str(item[0])):
        lot = uow.session.get(Lot, lot_id) if lot_id else None
        serials = _outbound_serials(uow, product, transit, lot, qty, stock, sent.get(lot_id) or None)
        core.record_move(uow, product=product, from_location=transit, to_location=stock, quantity=qty,
                         kind=MoveKind.TRANSFER_IN, lot=lot, reference=transfer.number, serials=serials,
                         check_available=False)
    transfer.received_at = clock.now()
    uow.session.flush()
    audit(uow, "transfer.receive", "transfer", transfer.id, before=before, after=snapshot(transfer))
    _transferred(uow, transfer)
    fill_backorders(uow, product.id, transfer.to_warehouse_id)
    return transfer


# ------------------------------------------------------------------ cycle counts


def start_count(uow: UnitOfWork, *, warehouse_id: object, counter: object,
                location_id: object | None = None) -> StockCount:
    """Open a count sheet for the warehouse's stock location, locking it against other counts,
    adjustments, receipts, returns, scrap, transfers and shipments (`allocation._issue_many`) until
    the count is posted or cancelled. Expected quantities are snapshotted."""
    warehouse = core.warehouse_for(uow, warehouse_id)
    if not isinstance(counter, str) or not counter.strip() or len(counter) > 200:
        raise invalid("counter", "who counts: 1-200 characters", "required")
    location = core.stock_location(uow, warehouse.id, location_id)
    uow.session.refresh(location, with_for_update=True)
    if location.count_locked:
        raise LocationLocked(f"{location.code} is already being counted")
    location.count_locked = True
    rows = uow.session.execute(select(StockBalance.product_id, StockBalance.lot_id, StockBalance.on_hand)
                               .where(StockBalance.location_id == location.id, StockBalance.on_hand != 0)
                               .order_by(StockBalance.product_id)).all()
    count = StockCount(number=next_number(uow, "CNT"), warehouse_id=warehouse.id, location_id=location.id,
                       counter=counter.strip(), status=CountStatus.OPEN,
                       lines=[{"product_id": str(r.product_id), "lot_id": str(r.lot_id) if r.lot_id else None,
                               "expected": str(r.on_hand)} for r in rows])
    uow.session.add(count)
    uow.session.flush()
    audit(uow, "stock_count.start", "stock_count", count.id, after=snapshot(count))
    return count


def get_count(uow: UnitOfWork, count_id: object) -> StockCount:
    try:
        cid = as_uuid(count_id, "count_id")
    except ValidationFailed as exc:
        raise NotFound("stock count", count_id) from exc
    count = uow.session.get(StockCount, cid)
    if count is None:
        raise NotFound("stock count", count_id)
    return count


def post_count(uow: UnitOfWork, count_id: object, lines: Sequence[Mapping[str, Any]]) -> StockCount:
    """Record counted quantities; each difference to the book becomes an adjustment
    (reason `cycle_count`, the counter recorded on the move and in the audit)."""
    count = get_count(uow, count_id)
    if count.status != CountStatus.OPEN:
        STOCK_COUNT.apply(count, "post")  # raises InvalidTransition naming the allowed actions
    errors: list[FieldError] = []
    parsed: list[_Counted] = []
    seen: set[tuple[uuid.UUID, uuid.UUID | None]] = set()
    for i, line in enumerate(lines):
        try:
            product = core.product_for(uow, line.get("product_id"), f"lines[{i}].product_id")
            counted = quantity_of(line.get("counted_quantity"), f"lines[{i}].counted_quantity", allow_zero=True)
            lot = core.lot_for(uow, product, line.get("lot_code"), create=counted > 0) if product.track_lots else None
            if line.get("lot_code") and not product.track_lots:
                raise invalid(f"lines[{i}].lot_code", "product is not lot-tracked", "not_tracked")
            serials = _counted_serials(uow, product, line.get("serials"), counted, f"lines[{i}].serials")
        except ValidationFailed as exc:
            errors.extend(exc.errors)
            continue
        key = (product.id, lot.id if lot else None)
        if key in seen:
            errors.append(FieldError(f"lines[{i}].product_id", "counted twice", "duplicate"))
        seen.add(key)
        parsed.append(_Counted(product, lot, counted, serials, f"lines[{i}].serials"))
    if errors:
        raise ValidationFailed(errors)
    return core.with_retry(uow, lambda: _post_count(uow, count, parsed))


@dataclass(frozen=True)
class _Counted:
    product: Product
    lot: Lot | None
    quantity: Decimal
    serials: frozenset[str] | None  # a serial-tracked product's serials found on the shelf
    serials_field: str


def _counted_serials(uow: UnitOfWork, product: Product, serials: object, counted: Decimal,
                     field: str) -> frozenset[str] | None:
    """The serials found on the shelf (a count line may leave them out), checked as on a receipt."""
    if serials is None:
        return None
    if not product.track_serials:  # an empty list too: a product without serials is counted without them
        raise invalid(field, f"product {product.sku} is not serial-tracked", "not_tracked")
    return frozenset(_check_serials(uow, product, serials if isinstance(serials, list) else [], counted, field))


def _serials_at(uow: UnitOfWork, product: Product, location: Location, lot: Lot | None) -> set[str]:
    query = select(SerialNumber.serial).where(SerialNumber.product_id == product.id,
                                              SerialNumber.location_id == location.id)
    if lot is not None:
        query = query.where(SerialNumber.lot_id == lot.id)
    return set(uow.session.scalars(query))


def _post_count(uow: UnitOfWork, count: StockCount, parsed: list[_Counted]) -> StockCount:
    core.lock_products(uow, [c.product.id for c in parsed])
    uow.session.refresh(count, with_for_update=True)
    before = snapshot(count)
    location = uow.session.get(Location, count.location_id)
    assert location is not None
    sheet = list(count.lines or [])
    watch = reorder_watch(uow, [c.product.id for c in parsed])  # what the whole count did, said once
    counted_lines: dict[tuple[str, str | None], dict[str, Any]] = {}
    variances = 0
    for c in parsed:
        product, lot, counted = c.product, c.lot, c.quantity
        balance = core.balance_for(uow, product.id, location, lot.id if lot else None)
        variance = counted - balance.on_hand
        if variance < 0 and balance.on_hand + variance < balance.reserved:
            said = format_quantity(counted), format_quantity(balance.reserved)
            raise core.InsufficientStock(f"{product.sku}: counted {said[0]} but {said[1]} are reserved; release "
                                         "or ship the reservations first", product_id=str(product.id),
                                         counted=said[0], reserved=said[1])
        # A serial-tracked product's count says which units: those the books had here that were not found go,
        # those found that the books did not have here come in (a unit seen in place of another is both).
        missing: list[str] = []
        found: list[str] = []
        if product.track_serials:
            if c.serials is None:
                if variance != 0:
                    raise invalid(c.serials_field, f"product {product.sku} is serial-tracked: list the serial numbers "
                                  "found, so the right units are written off or taken in", "required")
            else:
                on_book = _serials_at(uow, product, location, lot)
                missing, found = sorted(on_book - c.serials), sorted(c.serials - on_book)
        changes = ([(-Decimal(len(missing)), missing)] if missing else []) + (
            [(Decimal(len(found)), found)] if found else [])
        if not product.track_serials and variance != 0:
            changes = [(variance, None)]
        move_id = None
        if changes:
            variances += 1
        for quantity, serials in changes:
            move = _adjust(uow, count.warehouse_id, product, quantity, "cycle_count", None, lot.code if lot else None,
                           None, None, serials, f"{count.number} by {count.counter}", None, MoveKind.COUNT, location,
                           watch)
            move_id = str(move.id)
        key = (str(product.id), str(lot.id) if lot else None)
        counted_lines[key] = {"product_id": key[0], "lot_id": key[1], "expected": str(balance.on_hand - variance),
                              "counted": str(counted), "variance": str(variance), "move_id": move_id}
        if c.serials is not None:
            counted_lines[key] |= {"serials_missing": missing, "serials_found": found}
    # The sheet stays whole: a line not counted keeps what was expected, with nothing counted and nothing
    # posted (not a zero count); lines found that were not on the sheet follow it.
    result_lines = [counted_lines.pop((line["product_id"], line.get("lot_id")), line) for line in sheet]
    result_lines.extend(counted_lines.values())
    STOCK_COUNT.apply(count, "post")
    count.lines = result_lines
    count.posted_at = clock.now()
    location.count_locked = False
    uow.session.flush()
    watch.emit()
    audit(uow, "stock_count.post", "stock_count", count.id, before=before, after=snapshot(count))
    record_event(uow, StockCounted(count_id=str(count.id), warehouse_id=str(count.warehouse_id),
                                   location_id=str(count.location_id), counter=count.counter, lines=len(parsed),
                                   variances=variances), subject=f"stock_count/{count.id}")
    return count


def cancel_count(uow: UnitOfWork, count_id: object) -> StockCount:
    count = get_count(uow, count_id)
    # locked before its state is checked, as posting it does: a posting that committed meanwhile is seen
    uow.session.refresh(count, with_for_update=True)
    before = snapshot(count)
    STOCK_COUNT.apply(count, "cancel")
    location = uow.session.get(Location, count.location_id)
    if location is not None:
        location.count_locked = False
    uow.session.flush()
    audit(uow, "stock_count.cancel", "stock_count", count.id, before=before, after=snapshot(count))
    return count
