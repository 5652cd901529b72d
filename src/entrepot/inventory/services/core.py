"""The stock ledger's mechanics, shared by every inventory use case.

* `record_move` is the only code that writes a `StockMove` and changes a
  balance's on-hand quantity; it keeps `StockBalance` equal to the moves.
  (Its one batch form is `allocation._issue_many`, which ships a whole
  shipment's reserved stock with one statement per table and the same rules.)
* Product locks: every operation that changes a product's stock first takes a
  per-product lock (a transaction-scoped advisory lock on PostgreSQL, in
  product-id order; SQLite serialises writers with BEGIN IMMEDIATE), then
  locks the balance rows it touches `FOR UPDATE` in id order. Two
  transactions therefore always queue in the same order: no oversell, no
  deadlock; `with_retry` absorbs the rare serialisation failure anyway.
* Valuation is the moving average per product × warehouse (`ItemCost`); the
  value of each move is rounded once to the functional currency and is the
  exact amount posted to the ledger, so the valuation report always equals
  the inventory account.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterable
from datetime import date
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import event, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from entrepot.catalog import service as catalog
from entrepot.catalog.models import Product
from entrepot.db.insert_if_missing import insert_if_missing
from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.tenants import TENANT_FACTS_MEMO, tenant_facts
from entrepot.inventory.models import (
    INTERNAL_KINDS,
    WAREHOUSE_KINDS,
    ZERO,
    ItemCost,
    Location,
    LocationKind,
    Lot,
    StockBalance,
    StockMove,
    Warehouse,
)
from entrepot.inventory.services import fifo
from entrepot.kernel import clock
from entrepot.kernel.errors import Conflict, NotFound, invalid, reference, unknown
from entrepot.kernel.ids import new_id
from entrepot.kernel.money import (
    InvalidAmount,
    fits_storage,
    format_quantity,
    quantize_storage,
    round_money,
    to_decimal,
)
from entrepot.ledger.services import accounts as chart

T = TypeVar("T")
RETRIES = 5


class InsufficientStock(Conflict):
    code = "insufficient_stock"
    title = "Not enough stock"


class NotReserved(Conflict):
    code = "not_reserved"
    title = "Quantity exceeds what is reserved"


class ExpiredLot(Conflict):
    code = "expired_lot"
    title = "Lot has expired"


class SerialInStock(Conflict):
    code = "serial_in_stock"
    title = "Serial number already in stock"


class LocationLocked(Conflict):
    code = "location_locked"
    title = "Location is being counted"


# ------------------------------------------------------------------ input rules


def quantity_of(value: object, field: str = "quantity", *, positive: bool = True,
                allow_zero: bool = False) -> Decimal:
    """A quantity from input: exact decimal, storable, positive unless told otherwise."""
    try:
        qty = to_decimal(value)
    except InvalidAmount as exc:
        raise invalid(field, str(exc), "decimal") from exc
    if not fits_storage(qty):
        raise invalid(field, "at most 4 decimal places", "scale")
    if abs(qty) >= Decimal("1e14"):  # SQLite's scaled 64-bit storage ends near 9.2e14
        raise invalid(field, "too large", "range")
    if qty == 0 and not allow_zero:
        raise invalid(field, "must not be zero", "nonzero")
    if positive and qty < 0:
        raise invalid(field, "must not be negative" if allow_zero else "must be positive", "positive")
    return quantize_storage(qty)


def cost_of(value: object, field: str = "unit_cost") -> Decimal:
    cost = quantity_of(value, field, allow_zero=True)
    return cost


def as_uuid(value: object, field: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError) as exc:
        raise invalid(field, "not a valid id", "uuid") from exc


# ------------------------------------------------------------------ tenant settings


def tenant_settings(uow: UnitOfWork) -> dict[str, Any]:
    """The tenant's settings (allocation policy, negative stock...), read once per unit of work."""
    return tenant_facts(uow).settings


def functional_currency(uow: UnitOfWork) -> str:
    # The ledger's, kept per process (a tenant's functional currency never changes): a shipment
    # needs only the currency, and reading the tenant row for it cost a statement per step.
    return chart.functional_currency(uow)


def negative_stock_allowed(uow: UnitOfWork) -> bool:
    return bool(tenant_settings(uow).get("allow_negative_stock", False))


# ------------------------------------------------------------------ look-ups


def product_for(uow: UnitOfWork, product_id: object, field: str = "product_id") -> Product:
    """A product named in a request body: unknown is a 404 naming the field."""
    pid = as_uuid(product_id, field)
    with reference(field):
        return catalog.get_product(uow, pid)


def get_warehouse(uow: UnitOfWork, warehouse_id: object) -> Warehouse:
    try:
        wid = as_uuid(warehouse_id, "warehouse_id")
    except Exception as exc:
        raise NotFound("warehouse", warehouse_id) from exc
    warehouse = uow.session.get(Warehouse, wid)
    if warehouse is None:
        raise NotFound("warehouse", warehouse_id)
    return warehouse


def warehouse_for(uow: UnitOfWork, warehouse_id: object, field: str = "warehouse_id") -> Warehouse:
    """A warehouse named in a request body: unknown is a 404, inactive a 422, naming the field."""
    wid = as_uuid(warehouse_id, field)
    warehouse = uow.session.get(Warehouse, wid)
    if warehouse is None:
        raise unknown(field, f"no warehouse {wid}")
    if not warehouse.active:
        raise invalid(field, f"warehouse {warehouse.code} is inactive", "active")
    return warehouse


def location_of(uow: UnitOfWork, warehouse_id: uuid.UUID | None, kind: LocationKind) -> Location:
    """The warehouse's location of a kind (or the tenant's virtual one when warehouse_id is None)."""
    cache: dict[tuple[Any, str], Location] = uow.session.info.setdefault("inventory_locations", {})
    key = (warehouse_id, str(kind))
    loc = cache.get(key)
    if loc is not None and loc in uow.session:
        return loc
    query = select(Location).where(Location.kind == kind)
    query = query.where(Location.warehouse_id == warehouse_id) if warehouse_id else query.where(
        Location.warehouse_id.is_(None))
    loc = uow.session.scalars(query.order_by(Location.id).limit(1)).first()
    if loc is None:
        raise NotFound("location", f"{kind} of warehouse {warehouse_id}")
    cache[key] = loc
    return loc


def stock_location(uow: UnitOfWork, warehouse_id: uuid.UUID, location_id: object | None = None,
                   field: str = "location_id") -> Location:
    """A storage location of the warehouse: the one named (a bin), else its main stock location."""
    if location_id is None:
        return location_of(uow, warehouse_id, LocationKind.STOCK)
    lid = as_uuid(location_id, field)
    location = uow.session.get(Location, lid)
    if location is None:
        raise unknown(field, f"no location {lid}")
    if location.warehouse_id != warehouse_id or location.kind != LocationKind.STOCK:
        raise invalid(field, "not a storage location of that warehouse", "exists")
    return location


def lot_for(uow: UnitOfWork, product: Product, lot_code: str | None, expiry: date | None = None, *,
            create: bool) -> Lot | None:
    if not product.track_lots:
        if lot_code:
            raise invalid("lot_code", f"product {product.sku} is not lot-tracked", "not_tracked")
        return None
    if not lot_code or not str(lot_code).strip():
        raise invalid("lot_code", f"product {product.sku} is lot-tracked: a lot is required", "required")
    code = str(lot_code).strip()
    if len(code) > 64:
        raise invalid("lot_code", "at most 64 characters", "length")
    lot = uow.session.scalar(select(Lot).where(Lot.product_id == product.id, Lot.code == code))
    if lot is None:
        if not create:
            raise invalid("lot_code", f"no lot {code} of product {product.sku}", "exists")
        # INSERT … ON CONFLICT DO NOTHING, then read: a lot first met by two transactions at once (a count
        # posting reads its lots before it takes the product lock) is one row for both, not a duplicate key.
        now = clock.now()
        insert_if_missing(uow.session, Lot, {"id": new_id(), "tenant_id": uow.tenant_id, "product_id": product.id,
                                             "code": code, "expiry_date": expiry, "created_at": now,
                                             "updated_at": now}, key=["tenant_id", "product_id", "code"])
        lot = uow.session.scalar(select(Lot).where(Lot.product_id == product.id, Lot.code == code))
        assert lot is not None
    if expiry is not None and lot.expiry_date not in (None, expiry):
        raise invalid("expiry_date", f"lot {code} already expires on {lot.expiry_date}", "mismatch")
    elif expiry is not None and lot.expiry_date is None:
        lot.expiry_date = expiry
    return lot


def refuse_part_units(sku: str, quantity: Decimal) -> None:
    """A serial-tracked product moves in whole units (one serial number each)."""
    if quantity != quantity.to_integral_value():
        raise invalid("quantity", f"{sku} is serial-tracked: whole units only", "integer")


def refuse_expired(lot: Lot | None, on: date | None = None) -> None:
    if lot is not None and lot.expiry_date is not None and lot.expiry_date < (on or clock.today()):
        raise ExpiredLot(f"lot {lot.code} expired on {lot.expiry_date}", lot_id=str(lot.id))


# ------------------------------------------------------------------ locking and retries


def _lock_key(tenant_id: uuid.UUID, product_id: uuid.UUID) -> int:
    digest = hashlib.blake2b(tenant_id.bytes + product_id.bytes, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


# ORDER BY as well: PostgreSQL evaluates a volatile select-list function after the sort. The first key
# is the tenant's valuation lock when `:shared_first` (held shared, before any product's).
_LOCK_MANY = text("SELECT CASE WHEN t.n = 1 AND :shared_first THEN pg_advisory_xact_lock_shared(t.k) "
                  "ELSE pg_advisory_xact_lock(t.k) END "
                  "FROM unnest(CAST(:keys AS bigint[])) WITH ORDINALITY AS t(k, n) ORDER BY t.n")


def lock_products(uow: UnitOfWork, product_ids: Iterable[uuid.UUID]) -> None:
    """Serialise stock changes per product, always in the same (id) order.

    On PostgreSQL the first call of a transaction also takes the tenant's valuation lock, shared,
    before any product's: a change of valuation method takes it exclusively (`fifo._refuse_change_after_first_move`),
    so it waits for the stock changes in flight and they wait for it. The tenant's settings are
    read again after it, so a change that committed meanwhile is seen."""
    session = uow.session
    if session.get_bind().dialect.name != "postgresql":
        return  # SQLite serialises writers from BEGIN IMMEDIATE: there is nothing to lock
    held: set[uuid.UUID] = session.info.setdefault("inventory_product_locks", set())
    wanted = sorted(set(product_ids) - held)
    if not wanted:
        return
    # One round trip for all the products, the locks still taken one by one in product-id order.
    keys = [_lock_key(uow.tenant_id, pid) for pid in wanted]
    first = not held
    if first:
        keys.insert(0, fifo.valuation_key(uow.tenant_id))
    if len(keys) == 1:
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": keys[0]})
    else:
        session.execute(_LOCK_MANY, {"keys": keys, "shared_first": first}).all()
    held.update(wanted)
    if first:
        uow.forget(TENANT_FACTS_MEMO)


@event.listens_for(Session, "after_commit")
def _forget_locks_at_commit(session: Session) -> None:
    """Transaction-scoped locks end with the transaction; so does our note of them. SQLAlchemy
    fires this for a savepoint's release too, which keeps the locks (they belong to the
    transaction): the note stays."""
    if not session.in_nested_transaction():
        session.info.pop("inventory_product_locks", None)


@event.listens_for(Session, "after_rollback")
def _forget_locks_at_rollback(session: Session) -> None:
    """A rollback, of the transaction or of a savepoint, may have released locks the note lists:
    the note goes (`_in_savepoint` puts back what was held before its own savepoint). Taking a
    lock again is harmless; skipping one still needed is not."""
    session.info.pop("inventory_product_locks", None)


def _retryable(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    state = getattr(orig, "sqlstate", None)
    if state in ("40001", "40P01", "55P03"):
        return True
    return "database is locked" in str(orig or exc)


def with_retry(uow: UnitOfWork, work: Callable[[], T], attempts: int = RETRIES) -> T:
    """Run `work` inside a savepoint; retry serialisation failures and deadlocks (bounded,
    with exponential backoff: 10 ms, 20 ms, 40 ms ...).

    The savepoint also means a refused operation leaves nothing behind in the
    caller's transaction."""
    retrying = Retrying(stop=stop_after_attempt(attempts), wait=wait_exponential(multiplier=0.01, max=1),
                        retry=retry_if_exception(lambda exc: isinstance(exc, DBAPIError) and _retryable(exc)),
                        reraise=True)
    for attempt in retrying:
        with attempt:
            return _in_savepoint(uow, work)
    raise AssertionError("unreachable")


def _in_savepoint(uow: UnitOfWork, work: Callable[[], T]) -> T:
    held = set(uow.session.info.get("inventory_product_locks", set()))
    try:
        with uow.savepoint():
            return work()
    except BaseException:
        # the savepoint's advisory locks are released with it
        uow.session.info["inventory_product_locks"] = held
        raise


# ------------------------------------------------------------------ balances


def balance_for(uow: UnitOfWork, product_id: uuid.UUID, location: Location, lot_id: uuid.UUID | None) -> StockBalance:
    """The balance row (locked), created at zero when missing. Callers hold the product lock."""
    key = str(lot_id) if lot_id else ""
    balance = uow.session.scalar(
        select(StockBalance)
        .where(StockBalance.product_id == product_id, StockBalance.location_id == location.id,
               StockBalance.lot_key == key)
        .with_for_update()
    )
    if balance is None:
        assert location.warehouse_id is not None
        balance = StockBalance(product_id=product_id, location_id=location.id, warehouse_id=location.warehouse_id,
                               location_kind=location.kind, lot_id=lot_id, lot_key=key, on_hand=ZERO,
                               reserved=ZERO)
        uow.session.add(balance)
        uow.session.flush()
    return balance


def has_balance(location: Location) -> bool:
    return location.warehouse_id is not None and location.kind in WAREHOUSE_KINDS


def is_valued(location: Location) -> bool:
    return location.warehouse_id is not None and location.kind in INTERNAL_KINDS


# ------------------------------------------------------------------ valuation


def item_cost(uow: UnitOfWork, product_id: uuid.UUID, warehouse_id: uuid.UUID) -> ItemCost:
    cost = uow.session.scalar(
        select(ItemCost).where(ItemCost.product_id == product_id, ItemCost.warehouse_id == warehouse_id)
        .with_for_update()
    )
    if cost is None:
        cost = ItemCost(product_id=product_id, warehouse_id=warehouse_id, quantity=ZERO, value=ZERO, unit_cost=ZERO)
        uow.session.add(cost)
        uow.session.flush()
    return cost


def current_unit_cost(uow: UnitOfWork, product: Product, warehouse_id: uuid.UUID) -> Decimal:
    cost = item_cost(uow, product.id, warehouse_id)
    if cost.quantity > 0:
        return quantize_storage(cost.value / cost.quantity)
    return cost.unit_cost or product.standard_cost or ZERO


def value_in(uow: UnitOfWork, product: Product, warehouse_id: uuid.UUID, quantity: Decimal,
             unit_cost: Decimal, *, on: date | None = None) -> Decimal:
    """Stock enters the warehouse's valuation at `unit_cost`; returns the (rounded) value added."""
    value = round_money(quantity * unit_cost, functional_currency(uow))
    value_in_exact(uow, product, warehouse_id, quantity, value, on=on)
    return value


def value_in_exact(uow: UnitOfWork, product: Product, warehouse_id: uuid.UUID, quantity: Decimal,
                   value: Decimal, *, on: date | None = None) -> None:
    """Stock enters with a known value (a transfer carries the value it left the source with), dated
    `on` (default today: the date of its FIFO layer)."""
    cost = item_cost(uow, product.id, warehouse_id)
    cost.quantity += quantity
    cost.value += value
    if cost.quantity > 0:
        cost.unit_cost = quantize_storage(cost.value / cost.quantity)
    if valued_fifo(uow):
        fifo.add(uow, cost, product.id, warehouse_id, quantity, value, on)


def value_out(uow: UnitOfWork, product: Product, warehouse_id: uuid.UUID, quantity: Decimal) -> Decimal:
    """Stock leaves the warehouse's valuation at the moving average (or, for a FIFO tenant, from its
    oldest cost layers); returns the value removed.

    Taking the last units takes exactly the remaining value, so no rounding
    residue is ever left in the inventory account."""
    cost = item_cost(uow, product.id, warehouse_id)
    if valued_fifo(uow):
        return fifo.take(uow, cost, product.id, warehouse_id, product.standard_cost, quantity,
                         functional_currency(uow))
    return take_value(cost, product, quantity, functional_currency(uow))


def valued_fifo(uow: UnitOfWork) -> bool:
    """The tenant values stock first in, first out (setting `valuation_method`), not at the moving average."""
    return tenant_settings(uow).get("valuation_method") == "fifo"


def item_costs(uow: UnitOfWork, keys: Iterable[tuple[uuid.UUID, uuid.UUID]]) -> dict[tuple[uuid.UUID, uuid.UUID],
                                                                                   ItemCost]:
    """`item_cost` for many (product, warehouse) pairs: one query, rows locked in id order; missing rows made."""
    wanted = set(keys)
    if not wanted:
        return {}
    found = {(c.product_id, c.warehouse_id): c for c in uow.session.scalars(
        select(ItemCost).where(ItemCost.product_id.in_({k[0] for k in wanted}),
                               ItemCost.warehouse_id.in_({k[1] for k in wanted}))
        .order_by(ItemCost.id).with_for_update())}
    missing = sorted(wanted - found.keys())
    for product_id, warehouse_id in missing:
        found[(product_id, warehouse_id)] = cost = ItemCost(product_id=product_id, warehouse_id=warehouse_id,
                                                            quantity=ZERO, value=ZERO, unit_cost=ZERO)
        uow.session.add(cost)
    if missing:
        uow.session.flush()
    return {k: found[k] for k in wanted}


def take_value(cost: ItemCost, product: Product, quantity: Decimal, currency: str) -> Decimal:
    """`value_out` on an already locked `ItemCost`."""
    if cost.quantity > 0 and quantity <= cost.quantity:
        value = cost.value if quantity == cost.quantity else round_money(cost.value * quantity / cost.quantity,
                                                                         currency)
    elif cost.quantity > 0:  # going negative (allowed by the tenant): the rest at the last average
        unit = quantize_storage(cost.value / cost.quantity)
        value = cost.value + round_money((quantity - cost.quantity) * unit, currency)
    else:
        value = round_money(quantity * (cost.unit_cost or product.standard_cost or ZERO), currency)
    if cost.quantity > 0:
        cost.unit_cost = quantize_storage(cost.value / cost.quantity)
    cost.quantity -= quantity
    cost.value -= value
    return value


# ------------------------------------------------------------------ the ledger


def record_move(
    uow: UnitOfWork,
    *,
    product: Product,
    from_location: Location,
    to_location: Location,
    quantity: Decimal,
    kind: str,
    lot: Lot | None = None,
    value: Decimal = ZERO,
    unit_cost: Decimal = ZERO,
    reason: str | None = None,
    reference: str = "",
    on: date | None = None,
    demand_type: str | None = None,
    demand_id: uuid.UUID | None = None,
    serials: list[str] | None = None,
    consume_reserved: bool = False,
    check_available: bool = True,
    source_balance: StockBalance | None = None,
    flush: bool = True,
) -> StockMove:
    """Write one immutable move and apply it to both balances.

    Leaving a location needs available stock (on hand minus reserved) unless
    the move consumes a reservation or the tenant allows negative stock.
    Batch callers pass the `source_balance` they already locked and `flush=False`
    (they flush once for all their moves)."""
    if quantity <= 0:
        raise invalid("quantity", "must be positive", "positive")
    if from_location.id == to_location.id:
        raise invalid("to_location_id", "source and destination are the same location", "distinct")
    lot_id = lot.id if lot else None
    if has_balance(from_location):
        source = source_balance if source_balance is not None else balance_for(uow, product.id, from_location, lot_id)
        if consume_reserved:
            if quantity > source.reserved:
                raise NotReserved(f"only {format_quantity(source.reserved)} reserved at {from_location.code}")
            source.reserved -= quantity
        elif check_available and not negative_stock_allowed(uow) and source.on_hand - source.reserved < quantity:
            raise InsufficientStock(
                f"{product.sku}: {format_quantity(max(source.on_hand - source.reserved, ZERO))} available at "
                f"{from_location.code}, {format_quantity(quantity)} needed",
                product_id=str(product.id), available=format_quantity(max(source.on_hand - source.reserved, ZERO)),
            )
        source.on_hand -= quantity
    if has_balance(to_location):
        target = balance_for(uow, product.id, to_location, lot_id)
        target.on_hand += quantity
    move = StockMove(
        id=new_id(),  # known before the flush (batch callers reference it)
        product_id=product.id,
        lot_id=lot_id,
        from_location_id=from_location.id,
        to_location_id=to_location.id,
        from_warehouse_id=from_location.warehouse_id,
        to_warehouse_id=to_location.warehouse_id,
        quantity=quantity,
        unit_cost=unit_cost,
        value=value,
        kind=kind,
        reason=reason,
        reference=reference,
        demand_type=demand_type,
        demand_id=demand_id,
        serials=serials,
        effective_date=on or clock.today(),
        actor=uow.actor.ref,
    )
    uow.session.add(move)
    if flush:
        uow.session.flush()
    return move


def stock_available(uow: UnitOfWork, product_id: uuid.UUID, warehouse_id: uuid.UUID) -> Decimal:
    rows = uow.session.execute(
        select(StockBalance.on_hand, StockBalance.reserved).where(
            StockBalance.product_id == product_id, StockBalance.warehouse_id == warehouse_id,
            StockBalance.location_kind == LocationKind.STOCK)
    ).all()
    return sum((r.on_hand - r.reserved for r in rows), ZERO)
