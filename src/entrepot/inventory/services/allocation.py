"""Demands and allocation: reserving stock for demand lines, backorders, releases, issues.

The order-to-cash flow calls `allocate` on confirmation, `release` on cancel
and `issue_reserved_many` (or `issue_reserved`, one line) on shipment. A demand line is identified by
(`demand_type`, `demand_id`), e.g. ("sales_order_line", line.id).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import String, bindparam, func, insert, literal_column, select, type_coerce, update
from sqlalchemy.orm import Session, aliased
from sqlalchemy.orm.util import identity_key

from entrepot.catalog import service as catalog
from entrepot.catalog.models import Product
from entrepot.db.prepared import Prepared, PreparedIn
from entrepot.db.uow import UnitOfWork
from entrepot.identity.models import Tenant
from entrepot.identity.services.audit import audit, snapshot
from entrepot.integration.outbox import record_event, record_events
from entrepot.inventory.events import BackorderAllocated, StockIssued, StockLow, StockReleased, StockReserved
from entrepot.inventory.models import (
    ZERO,
    ItemCost,
    Location,
    LocationKind,
    Lot,
    MoveKind,
    ReorderRule,
    Reservation,
    SerialNumber,
    StockBalance,
    StockDemand,
    StockMove,
    Warehouse,
)
from entrepot.inventory.services import core, fifo
from entrepot.inventory.services.core import NotReserved, as_uuid, quantity_of
from entrepot.kernel import clock
from entrepot.kernel.errors import NotFound, invalid
from entrepot.kernel.events import EventData
from entrepot.kernel.ids import id_from_hex, new_id
from entrepot.kernel.money import format_amount, format_quantity
from entrepot.ledger import posting

POLICIES = ("priority", "split", "nearest")


@dataclass
class Demand:
    demand_type: str
    demand_id: uuid.UUID
    product_id: uuid.UUID
    quantity: Decimal
    warehouse_id: uuid.UUID | None = None
    ship_to_country: str | None = None
    ship_to_region: str | None = None  # with the country: the `nearest` policy prefers a warehouse there


@dataclass
class ReservationInfo:
    warehouse_id: uuid.UUID
    location_id: uuid.UUID
    lot_id: uuid.UUID | None
    quantity: Decimal


@dataclass
class AllocationResult:
    demand_id: uuid.UUID
    product_id: uuid.UUID
    requested: Decimal
    reserved: Decimal
    backordered: Decimal
    reservations: list[ReservationInfo] = field(default_factory=list)


@dataclass
class LotIssue:
    lot_id: uuid.UUID
    lot_code: str
    quantity: Decimal
    serials: list[str] = field(default_factory=list)


@dataclass
class IssueResult:
    quantity: Decimal
    cost: Decimal
    warehouse_id: uuid.UUID | None
    lots: list[LotIssue] = field(default_factory=list)
    move_ids: list[uuid.UUID] = field(default_factory=list)
    serials: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ candidates


def _policy(setting: object) -> str:
    """The tenant's `allocation_policy` setting, if it names a known policy."""
    policy = str(setting or "priority")
    return policy if policy in POLICIES else "priority"


def _active_warehouses(uow: UnitOfWork) -> list[Warehouse]:
    return list(uow.session.scalars(select(Warehouse).where(Warehouse.active.is_(True))
                                    .order_by(Warehouse.priority, Warehouse.code)))


def _locked_stock_balances(uow: UnitOfWork, product_ids: Iterable[uuid.UUID],
                           warehouse_ids: Iterable[uuid.UUID] | None = None) -> list[StockBalance]:
    """Stock-location balances of the products, locked FOR UPDATE in id order (the fixed order)."""
    query = select(StockBalance).where(StockBalance.product_id.in_(list(set(product_ids))),
                                       StockBalance.location_kind == LocationKind.STOCK)
    if warehouse_ids is not None:
        query = query.where(StockBalance.warehouse_id.in_(list(set(warehouse_ids))))
    return list(uow.session.scalars(query.order_by(StockBalance.id).with_for_update()
                                    .execution_options(populate_existing=True)))


def _lots(uow: UnitOfWork, balances: Iterable[StockBalance]) -> dict[uuid.UUID, Lot]:
    ids = {b.lot_id for b in balances if b.lot_id}
    if not ids:
        return {}
    return {lot.id: lot for lot in uow.session.scalars(select(Lot).where(Lot.id.in_(ids)))}


def _fefo(balances: list[StockBalance], lots: dict[uuid.UUID, Lot], today: date) -> list[StockBalance]:
    """Usable balances, expiring first; expired lots are never allocated."""
    usable = []
    for b in balances:
        lot = lots.get(b.lot_id) if b.lot_id else None
        if lot is not None and lot.expiry_date is not None and lot.expiry_date < today:
            continue
        usable.append(b)
    far = date.max

    def key(b: StockBalance) -> tuple[date, str, str]:
        lot = lots.get(b.lot_id) if b.lot_id else None
        return ((lot.expiry_date or far) if lot else far, lot.code if lot else "", str(b.id))

    return sorted(usable, key=key)


def _available(balances: Iterable[StockBalance] | Iterable[_Balance]) -> Decimal:
    total = ZERO
    for b in balances:  # a loop, not sum(max(...)): this runs for every line and warehouse considered
        if b.available > 0:
            total += b.available
    return total


def _plan(need: Decimal, order: list[uuid.UUID], by_warehouse: dict[uuid.UUID, list[StockBalance]],
          policy: str) -> list[tuple[StockBalance, Decimal]]:
    """Which balances give how much, per the tenant's policy."""
    if need <= 0:
        return []
    if policy != "split":
        # One warehouse: the first (by priority / nearness) that can fill the line entirely,
        # else the one that can fill most of it; the rest is backordered.
        best: uuid.UUID | None = None
        best_qty = ZERO
        for wid in order:
            qty = _available(by_warehouse.get(wid, []))
            if qty >= need:
                best = wid
                break
            if qty > best_qty:
                best, best_qty = wid, qty
        order = [best] if best is not None else []
    picks: list[tuple[StockBalance, Decimal]] = []
    remaining = need
    for wid in order:
        for balance in by_warehouse.get(wid, []):
            if remaining <= 0:
                return picks
            free = balance.available
            if free <= 0:
                continue
            take = min(free, remaining)
            picks.append((balance, take))
            remaining -= take
    return picks


def _reserve(uow: UnitOfWork, demand: StockDemand, balance: StockBalance, quantity: Decimal) -> Reservation:
    balance.reserved += quantity
    now = clock.now()
    reservation = Reservation(id=new_id(), created_at=now, updated_at=now, demand_type=demand.demand_type,
                              demand_id=demand.demand_id, product_id=demand.product_id,
                              balance_id=balance.id, warehouse_id=balance.warehouse_id, location_id=balance.location_id,
                              lot_id=balance.lot_id, quantity=quantity, status="open")
    uow.session.add(reservation)
    return reservation


def _open_reservations(uow: UnitOfWork, demand_type: str, demand_ids: Iterable[uuid.UUID]) -> list[Reservation]:
    ids = list(set(demand_ids))
    if not ids:
        return []
    return list(uow.session.scalars(
        select(Reservation).where(Reservation.demand_type == demand_type, Reservation.demand_id.in_(ids),
                                  Reservation.status == "open")
        .order_by(Reservation.created_at, Reservation.id)))


def close_demand(uow: UnitOfWork, demand_type: str, demand_id: uuid.UUID) -> None:
    """A demand line is done (its reservations consumed): it keeps no backorder and takes no more stock."""
    sd = uow.session.scalar(select(StockDemand).where(StockDemand.demand_type == demand_type,
                                                      StockDemand.demand_id == demand_id))
    if sd is not None and sd.status == "open":
        sd.status = "closed"
        sd.backordered = ZERO
        sd.updated_at = clock.now()


def open_reservations(uow: UnitOfWork, demand_type: str, demand_id: uuid.UUID) -> list[Reservation]:
    """The open reservations of one demand line, oldest first."""
    return _open_reservations(uow, demand_type, [demand_id])


def _infos(reservations: Sequence[Reservation] | Sequence[_Reserved]) -> list[ReservationInfo]:
    if len(reservations) == 1:  # the usual case: nothing to group
        r = reservations[0]
        return [ReservationInfo(r.warehouse_id, r.location_id, r.lot_id, r.quantity)] if r.quantity > 0 else []
    grouped: dict[tuple[uuid.UUID, uuid.UUID, uuid.UUID | None], Decimal] = defaultdict(lambda: ZERO)
    for r in reservations:
        grouped[(r.warehouse_id, r.location_id, r.lot_id)] += r.quantity
    return [ReservationInfo(w, loc, lot, q) for (w, loc, lot), q in grouped.items() if q > 0]


# ------------------------------------------------------------------ allocate


def _check_demand(d: Demand, index: int) -> tuple[str, uuid.UUID, uuid.UUID, Decimal]:
    where = f"demands[{index}]"
    if not isinstance(d.demand_type, str) or not d.demand_type.strip() or len(d.demand_type) > 40:
        raise invalid(f"{where}.demand_type", "1-40 characters", "required")
    quantity = quantity_of(d.quantity, f"{where}.quantity")
    return d.demand_type, as_uuid(d.demand_id, f"{where}.demand_id"), as_uuid(d.product_id, f"{where}.product_id"), \
        quantity


def allocate(uow: UnitOfWork, demands: Sequence[Demand]) -> list[AllocationResult]:
    """Reserve stock for demand lines per the tenant's policy; the rest is backordered.

    Calling it again for a demand line tops its reservation up to the new
    quantity (never reserves twice)."""
    checked = [_check_demand(d, i) for i, d in enumerate(demands)]
    if not checked:
        return []
    for warehouse_id in dict.fromkeys(d.warehouse_id for d in demands if d.warehouse_id is not None):
        core.warehouse_for(uow, warehouse_id)
    if uow.session.get_bind().dialect.name == "sqlite":
        # No savepoint needed (it is a tenth of an allocation's cost): SQLite serialises writers from
        # BEGIN IMMEDIATE, so nothing here can fail for want of a lock and there is nothing to retry, and
        # `_allocate` raises every refusal before its first write, so a refused allocation leaves the
        # caller's transaction as it was. PostgreSQL can meet a deadlock or serialisation failure
        # anywhere: there the savepoint and bounded retries stay.
        return _allocate(uow, demands, checked)
    return core.with_retry(uow, lambda: _allocate(uow, demands, checked))


def _known_products(uow: UnitOfWork, ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    """The products' ids (one narrow query, no ORM objects); NotFound names the first unknown one."""
    wanted = list(dict.fromkeys(ids))
    found = set(uow.session.scalars(select(Product.id).where(Product.id.in_(wanted))))
    for product_id in wanted:
        if product_id not in found:
            raise NotFound("product", product_id)
    return wanted


@dataclass(slots=True)
class _Balance:
    """A stock balance as allocation reads it, with what allocation needs of its warehouse, its lot
    and the reorder rule of its product there (a plain row: no ORM object to build or flush)."""

    id: Any  # the id as the driver gives it (see `_RawId`); `uid` once this allocation takes from it
    product_id: uuid.UUID
    warehouse_id: uuid.UUID
    location_id: uuid.UUID
    lot_id: uuid.UUID | None
    available: Decimal  # on hand minus reserved, less what this allocation takes (`taken`)
    priority: int
    warehouse_code: str
    country: str | None
    region: str
    lot_code: str | None
    expiry_date: date | None
    reorder_point: Decimal | None
    taken: Decimal = ZERO
    uid: uuid.UUID | None = None


class _LotInfo(NamedTuple):
    """What FEFO needs of a lot (`_fefo` reads `code` and `expiry_date`)."""

    code: str
    expiry_date: date | None


class _DemandRow(NamedTuple):
    id: uuid.UUID
    demand_id: uuid.UUID
    product_id: uuid.UUID


@dataclass(slots=True)
class _Reserved:
    warehouse_id: uuid.UUID
    location_id: uuid.UUID
    lot_id: uuid.UUID | None
    quantity: Decimal


# The reads of an allocation, built once. They run on the driver's cursor of the transaction's connection
# (`Prepared`: no ORM and no Core execution machinery, which would cost more than the statements: this runs
# for every order), a path that skips the session's automatic tenant criteria, so each statement names the
# tenant of every table it reads.
_b, _w, _lot, _rule, _sd, _r = StockBalance, Warehouse, Lot, ReorderRule, StockDemand, Reservation
_TENANT = bindparam("tenant")
# Ids read as the driver gives them (32 hex digits on SQLite, a UUID on PostgreSQL), converted by
# `_id_reader`: an allocation's rows repeat the same few warehouses, locations and products, and
# each conversion costs as much as a row's other columns together; a balance's own id is converted
# only if the allocation takes from it.
_RawId = String()


def _raw(column: Any) -> Any:
    return type_coerce(column, _RawId)


# Raw ids already converted, kept across calls (bounded): a tenant's few warehouses and locations are on
# every allocation's rows, and a product ordered often on many. A UUID is immutable, so sharing is safe;
# a clear racing another thread's read only makes that read convert again.
_KNOWN_IDS: dict[Any, uuid.UUID] = {}
_IDS_KEPT = 65_536


def _id_reader() -> Callable[[Any], uuid.UUID]:
    """A converter of raw ids to UUIDs that converts each distinct value once."""
    known = _KNOWN_IDS
    if len(known) >= _IDS_KEPT:
        known.clear()

    def of(raw: Any) -> uuid.UUID:
        found = known.get(raw)
        if found is None:
            found = known[raw] = id_from_hex(raw)  # type: ignore[assignment]
        return found

    return of


# Everything about the products' stock in one query: their stock-location balances in active
# warehouses, each with its warehouse's priority and country, its lot's expiry and the reorder point
# of the product there, and (the same on every row) the tenant's allocation policy. The balance rows
# (only those) are locked FOR UPDATE in id order, the fixed order.
_POLICY = (select(Tenant.settings["allocation_policy"].as_string()).where(Tenant.id == _TENANT)
           .scalar_subquery())
# Allocation needs only what is available, so that is read (one value to convert instead of two) and the
# balance is written back as a delta (`_ADD_RESERVED`).
_STOCK = PreparedIn(lambda in_: (
    select(_raw(_b.id), _raw(_b.product_id), _raw(_b.warehouse_id), _raw(_b.location_id), _raw(_b.lot_id),
           type_coerce(_b.on_hand - _b.reserved, _b.on_hand.type), _w.priority, _w.code, _w.country, _w.region,
           _lot.code, _lot.expiry_date, _rule.reorder_point, _POLICY,
           # Whether any of the lines already has a demand (of any of the call's demand types, so it may
           # say yes for nothing): a new order's lines have none, and then `_DEMANDS` is not sent.
           select(_sd.id).where(_sd.tenant_id == _TENANT, in_(_sd.demand_type, "types"),
                                in_(_sd.demand_id, "demands")).exists())
    .join(_w, (_w.id == _b.warehouse_id) & (_w.tenant_id == _TENANT) & _w.active.is_(True))
    .outerjoin(_lot, (_lot.id == _b.lot_id) & (_lot.tenant_id == _TENANT))
    .outerjoin(_rule, (_rule.product_id == _b.product_id) & (_rule.warehouse_id == _b.warehouse_id)
               & (_rule.tenant_id == _TENANT))
    .where(_b.tenant_id == _TENANT, in_(_b.product_id, "products"),
           _b.location_kind == LocationKind.STOCK.value)
    .order_by(_b.id)
    .with_for_update(of=_b.__table__)
))
# The lines' demands (a new line has none yet), locked in key order (the fixed order).
_DEMANDS = PreparedIn(lambda in_: (
    select(_sd.id, _sd.demand_id, _sd.product_id)
    .where(_sd.tenant_id == _TENANT, _sd.demand_type == bindparam("demand_type"), in_(_sd.demand_id, "ids"))
    .order_by(_sd.demand_id)
    .with_for_update()
))
# What is already reserved for existing lines (a line allocated again is topped up, not reserved twice).
_OPEN_RESERVATIONS = PreparedIn(lambda in_: (
    select(_r.demand_id, _r.warehouse_id, _r.location_id, _r.lot_id, _r.quantity)
    .where(_r.tenant_id == _TENANT, _r.demand_type == bindparam("demand_type"), in_(_r.demand_id, "ids"),
           _r.status == "open")
    .order_by(_r.created_at, _r.id)
))
# The writes (rows carry their tenant_id; an id found by the reads above is the tenant's own).
_DEMAND_FIELDS = ("warehouse_id", "ship_to_country", "requested", "status", "updated_at", "backordered")
_INSERT_DEMANDS = Prepared(insert(_sd.__table__), columns=(
    "id", "tenant_id", "demand_type", "demand_id", "product_id", "promised_at", "created_at", *_DEMAND_FIELDS))
_SD, _R = _sd.__table__.c, _r.__table__.c
# Demands and reservations are keyed by their line (see the models): changed by that key.
_UPDATE_DEMANDS = Prepared(update(_sd.__table__).where(_SD.tenant_id == bindparam("b_tenant"),
                                                       _SD.demand_type == bindparam("b_demand_type"),
                                                       _SD.demand_id == bindparam("b_demand_id"))
                           .values({name: bindparam(f"b_{name}") for name in _DEMAND_FIELDS}))
_ADD_RESERVED = Prepared(update(_b.__table__).where(_b.__table__.c.id == bindparam("b_id"))
                         .values(reserved=_b.__table__.c.reserved + bindparam("b_taken", type_=_b.reserved.type)))
_INSERT_RESERVATIONS = Prepared(insert(_r.__table__), columns=(
    "id", "tenant_id", "created_at", "updated_at", "demand_type", "demand_id", "product_id", "balance_id",
    "warehouse_id", "location_id", "lot_id", "quantity", "status"))


def _expire(session: Session, cls: type, ids: Iterable[Any], attrs: list[str]) -> None:
    """Rows were changed with Core: objects of them already in the session must reload those columns."""
    if not session.identity_map:
        return  # nothing loaded (the usual case in a batch of its own): nothing to tell
    for ident in ids:
        obj = session.identity_map.get(identity_key(cls, ident))
        if obj is not None:
            session.expire(obj, attrs)


def _free_stock(balances: Iterable[_Balance], keys: Iterable[tuple[uuid.UUID, uuid.UUID]]
                ) -> dict[tuple[uuid.UUID, uuid.UUID], Decimal]:
    """Available stock (on hand minus reserved, all stock locations, as `core.stock_available` counts it)
    per product × warehouse of `keys`."""
    out = dict.fromkeys(keys, ZERO)
    if not out:
        return out  # no reorder rule where the products are stocked, the usual case
    for bal in balances:
        key = (bal.product_id, bal.warehouse_id)
        if key in out:
            out[key] += bal.available
    return out


def _allocate(uow: UnitOfWork, demands: Sequence[Demand],
              checked: list[tuple[str, uuid.UUID, uuid.UUID, Decimal]]) -> list[AllocationResult]:
    """Allocation with a fixed number of statements whatever the number of lines: one read of the stock
    (balances locked in id order), one of the lines' demands, then one executemany per table for the writes.

    Every refusal (unknown product, a line naming another product) is raised before the first write:
    keep it so (see `allocate`)."""
    session = uow.session
    session.flush()  # the reads below go to the connection, which does not autoflush
    tenant = uow.tenant_id
    product_ids = list(dict.fromkeys(c[2] for c in checked))
    core.lock_products(uow, product_ids)
    demand_types = sorted({c[0] for c in checked})
    rows = _STOCK.execute(uow, {"tenant": tenant}, products=product_ids, types=demand_types,
                          demands=list(dict.fromkeys(c[1] for c in checked)))
    of = _id_reader()
    balances = [_Balance(row[0], of(row[1]), of(row[2]), of(row[3]), None if row[4] is None else of(row[4]),
                         *row[5:-2]) for row in rows]
    stocked = {bal.product_id for bal in balances}
    if len(stocked) < len(product_ids):
        # A product without stock anywhere must still exist (NotFound names the first that does not).
        _known_products(uow, [pid for pid in product_ids if pid not in stocked])
    policy = _policy(rows[0][-2] if rows else None)  # without stock, every line is backordered anyway
    lots = {bal.lot_id: _LotInfo(bal.lot_code or "", bal.expiry_date) for bal in balances if bal.lot_id}
    warehouses: dict[uuid.UUID, _Balance] = {}
    by_product: dict[uuid.UUID, dict[uuid.UUID, list[_Balance]]] = defaultdict(lambda: defaultdict(list))
    for bal in balances:
        warehouses.setdefault(bal.warehouse_id, bal)
        by_product[bal.product_id][bal.warehouse_id].append(bal)
    if lots:
        today = clock.today()
        for per_wh in by_product.values():
            for wid in per_wh:
                per_wh[wid] = _fefo(per_wh[wid], lots, today)
    # else: no lot, no expiry, and FEFO order is id order, the order of the read
    by_priority = sorted(warehouses, key=lambda wid: (warehouses[wid].priority, warehouses[wid].warehouse_code))
    # Reorder points of the products where they are stocked: most have none, and then nothing is watched.
    rules = {(bal.product_id, bal.warehouse_id): bal.reorder_point for bal in balances
             if bal.reorder_point is not None}
    free_before = _free_stock(balances, rules)
    # The lines' demands, and the open reservations of those that already exist (a new line has none).
    existing: dict[tuple[str, uuid.UUID], _DemandRow] = {}
    for demand_type in demand_types if not rows or rows[0][-1] else ():  # without stock rows, nothing is known
        ids = list(dict.fromkeys(c[1] for c in checked if c[0] == demand_type))
        for row in _DEMANDS.execute(uow, {"tenant": tenant, "demand_type": demand_type}, ids=ids):
            existing[(demand_type, row[1])] = _DemandRow(*row)
    open_by_demand: dict[tuple[str, uuid.UUID], list[_Reserved]] = defaultdict(list)
    for demand_type in sorted({k[0] for k in existing}):
        ids = [k[1] for k in existing if k[0] == demand_type]
        for row in _OPEN_RESERVATIONS.execute(uow, {"tenant": tenant, "demand_type": demand_type}, ids=ids):
            open_by_demand[(demand_type, row[0])].append(_Reserved(*row[1:]))
    now = clock.now()
    results: list[AllocationResult] = []
    new_demands: dict[tuple[str, uuid.UUID], dict[str, Any]] = {}
    changed_demands: dict[tuple[str, uuid.UUID], dict[str, Any]] = {}
    new_reservations: list[dict[str, Any]] = []
    touched: dict[uuid.UUID, _Balance] = {}
    lines: list[dict[str, str]] = []
    events: list[tuple[EventData, str]] = []
    for d, (demand_type, demand_id, product_id, quantity) in zip(demands, checked, strict=True):
        key = (demand_type, demand_id)
        ship_to = (d.ship_to_country or "").upper()[:2] or None
        row = existing.get(key)
        if row is not None and row.product_id != product_id:
            raise invalid("product_id", f"demand {demand_id} is for another product", "mismatch")
        if row is None and key not in new_demands:
            sd_id = new_id()
            values: dict[str, Any] = {
                "id": sd_id, "tenant_id": tenant, "demand_type": demand_type, "demand_id": demand_id,
                "product_id": product_id, "promised_at": now, "created_at": now}
            new_demands[key] = values
        elif row is None:
            values = new_demands[key]  # the same line twice in one call: the last one wins
            sd_id = values["id"]
        else:
            sd_id = row.id
            values = changed_demands.setdefault(key, {})
        values.update(warehouse_id=d.warehouse_id, ship_to_country=ship_to, requested=quantity, status="open",
                      updated_at=now)
        held = open_by_demand[key]
        already = sum((x.quantity for x in held), ZERO)
        need = max(quantity - already, ZERO)
        if d.warehouse_id is not None:
            order = [d.warehouse_id]
        elif policy == "nearest" and ship_to:
            # the ship-to's region first, then its country, then the rest; each by priority (a stable sort)
            region = (d.ship_to_region or "").strip().casefold()
            order = sorted(by_priority, key=lambda wid: (
                warehouses[wid].country != ship_to,
                not region or (warehouses[wid].region or "").strip().casefold() != region))
        else:
            order = by_priority
        got = ZERO
        for bal, take in _plan(need, order, by_product[product_id], policy):
            bal.available -= take
            bal.taken += take
            if bal.uid is None:
                bal.uid = id_from_hex(bal.id)
                touched[bal.uid] = bal
            got += take
            held.append(_Reserved(bal.warehouse_id, bal.location_id, bal.lot_id, take))
            new_reservations.append({
                "id": new_id(), "tenant_id": tenant, "created_at": now, "updated_at": now,
                "demand_type": demand_type, "demand_id": demand_id, "product_id": product_id, "balance_id": bal.uid,
                "warehouse_id": bal.warehouse_id, "location_id": bal.location_id, "lot_id": bal.lot_id,
                "quantity": take, "status": "open"})
        backordered = need - got
        values["backordered"] = backordered
        reserved_total = already + got
        # The audit line and the event say the same, from the same strings.
        said = {"demand_type": demand_type, "demand_id": str(demand_id), "product_id": str(product_id),
                "requested": format_quantity(quantity), "reserved": format_quantity(reserved_total),
                "backordered": format_quantity(backordered)}
        lines.append({**said, "stock_demand_id": str(sd_id)})
        events.append((StockReserved(**said), f"stock/{said['product_id']}"))
        results.append(AllocationResult(demand_id=demand_id, product_id=product_id, requested=quantity,
                                        reserved=reserved_total, backordered=backordered,
                                        reservations=_infos(held)))
    # stock.low.v1 where this allocation took available stock below a reorder point (known from the read).
    for (product_id, wid), after in sorted(_free_stock(balances, rules).items()):
        point = rules[(product_id, wid)]
        if free_before[(product_id, wid)] >= point > after:
            events.append((StockLow(product_id=str(product_id), warehouse_id=str(wid), available=format_quantity(after),
                                    reorder_point=format_quantity(point)), f"stock/{product_id}"))
    # Writes: one statement per table (executemany), demands before the reservations that name them.
    if new_demands:
        _INSERT_DEMANDS.execute_many(uow, list(new_demands.values()))
    if changed_demands:
        _UPDATE_DEMANDS.execute_many(uow, [{"b_tenant": tenant, "b_demand_type": key[0], "b_demand_id": key[1],
                                            **{f"b_{name}": values[name] for name in _DEMAND_FIELDS}}
                                           for key, values in changed_demands.items()])
        _expire(session, StockDemand, [(tenant, *key) for key in changed_demands], list(_DEMAND_FIELDS))
    if touched:
        _ADD_RESERVED.execute_many(uow, [{"b_id": uid, "b_taken": bal.taken} for uid, bal in touched.items()])
        _expire(session, StockBalance, touched, ["reserved"])
    if new_reservations:
        _INSERT_RESERVATIONS.execute_many(uow, new_reservations)
    # One audit entry for the call, listing its lines (not one per line).
    audit(uow, "stock.allocate", "stock_allocation", None, after={"lines": lines})
    record_events(uow, events)
    return results



# ------------------------------------------------------------------ backorders


def fill_backorders(uow: UnitOfWork, product_id: uuid.UUID, warehouse_id: uuid.UUID) -> Decimal:
    """Stock arrived (or was freed) in a warehouse: give it to open backorders, oldest promise first.

    Runs in the caller's transaction, under the product lock it already holds."""
    session = uow.session
    core.lock_products(uow, [product_id])
    warehouse = session.get(Warehouse, warehouse_id)
    if warehouse is None or not warehouse.active:
        return ZERO
    open_demands = list(session.scalars(
        select(StockDemand).where(StockDemand.product_id == product_id, StockDemand.status == "open",
                                  StockDemand.backordered > literal_column("0"))  # as the partial index says
        .order_by(StockDemand.promised_at, StockDemand.id).with_for_update()))
    open_demands = [d for d in open_demands if d.warehouse_id in (None, warehouse_id)]
    if not open_demands:
        return ZERO
    balances = _locked_stock_balances(uow, [product_id], [warehouse_id])
    balances = _fefo(balances, _lots(uow, balances), clock.today())
    total = ZERO
    for sd in open_demands:
        picks = _plan(sd.backordered, [warehouse_id], {warehouse_id: balances}, "split")
        if not picks:
            break
        made = [_reserve(uow, sd, b, q) for b, q in picks]
        got = sum((r.quantity for r in made), ZERO)
        before = snapshot(sd)
        sd.backordered -= got
        total += got
        session.flush()
        audit(uow, "stock.backorder_allocate", "stock_demand", sd.id, before=before, after=snapshot(sd))
        record_event(uow, BackorderAllocated(demand_type=sd.demand_type, demand_id=str(sd.demand_id),
                                             product_id=str(product_id), warehouse_id=str(warehouse_id),
                                             quantity=format_quantity(got),
                                             still_backordered=format_quantity(sd.backordered)),
                     subject=f"stock/{product_id}")
    return total


# ------------------------------------------------------------------ release


def release(uow: UnitOfWork, demand_type: str, demand_id: uuid.UUID) -> Decimal:
    """Release a demand line's reservations and cancel its backorder. Returns the quantity released.

    With the tenant setting `reallocate_on_release`, freed stock goes to other backordered lines
    at once (oldest promise first); by default it becomes available and backorders are filled
    when stock arrives."""
    demand_id = as_uuid(demand_id, "demand_id")
    return core.with_retry(uow, lambda: _release(uow, demand_type, demand_id))


def release_many(uow: UnitOfWork, demand_type: str, demand_ids: Sequence[uuid.UUID]) -> Decimal:
    """`release` for several demand lines (an order's), their products locked first, all at once in
    product-id order: released one line after the other, a line of a higher product before one of a
    lower product would hold the higher lock while waiting for the lower, against every other stock
    change. Returns the quantity released."""
    ids = [as_uuid(d, "demand_id") for d in demand_ids]

    def work() -> Decimal:
        products = set(uow.session.scalars(select(StockDemand.product_id).where(
            StockDemand.demand_type == demand_type, StockDemand.demand_id.in_(ids))))
        products.update(r.product_id for r in _open_reservations(uow, demand_type, ids))
        core.lock_products(uow, products)
        return sum((_release(uow, demand_type, demand_id) for demand_id in ids), ZERO)

    return core.with_retry(uow, work) if ids else ZERO


def _release(uow: UnitOfWork, demand_type: str, demand_id: uuid.UUID) -> Decimal:
    session = uow.session
    sd = session.scalar(select(StockDemand).where(StockDemand.demand_type == demand_type,
                                                  StockDemand.demand_id == demand_id))
    reservations = _open_reservations(uow, demand_type, [demand_id])
    if sd is None and not reservations:
        return ZERO
    product_id = sd.product_id if sd is not None else reservations[0].product_id
    core.lock_products(uow, [product_id])
    if sd is not None:
        session.refresh(sd, with_for_update=True)
    reservations = _open_reservations(uow, demand_type, [demand_id])
    balances = {b.id: b for b in session.scalars(
        select(StockBalance).where(StockBalance.id.in_([r.balance_id for r in reservations]))
        .order_by(StockBalance.id).with_for_update().execution_options(populate_existing=True))}
    released = ZERO
    freed: set[uuid.UUID] = set()
    for r in reservations:
        balances[r.balance_id].reserved -= r.quantity
        released += r.quantity
        freed.add(r.warehouse_id)
        r.quantity = ZERO
        r.status = "closed"
    if sd is not None:
        before = snapshot(sd)
        sd.backordered = ZERO
        sd.status = "closed"
        session.flush()
        audit(uow, "stock.release", "stock_demand", sd.id, before=before, after=snapshot(sd))
    session.flush()
    record_event(uow, StockReleased(demand_type=demand_type, demand_id=str(demand_id), product_id=str(product_id),
                                    released=format_quantity(released)), subject=f"stock/{product_id}")
    if core.tenant_settings(uow).get("reallocate_on_release"):
        for wid in sorted(freed):
            fill_backorders(uow, product_id, wid)
    return released


# ------------------------------------------------------------------ queries


# What the order desk asks of its lines: reserved (open reservations) and backordered, per demand line.
_RESERVED_BY_DEMAND = PreparedIn(lambda in_: (
    select(_r.demand_id, func.sum(_r.quantity))
    .where(_r.tenant_id == _TENANT, _r.demand_type == bindparam("demand_type"), in_(_r.demand_id, "ids"),
           _r.status == "open")
    .group_by(_r.demand_id)
))
_BACKORDERED_BY_DEMAND = PreparedIn(lambda in_: (
    select(_sd.demand_id, _sd.backordered)
    .where(_sd.tenant_id == _TENANT, _sd.demand_type == bindparam("demand_type"), in_(_sd.demand_id, "ids"),
           _sd.status == "open")
))


def reserved_quantity(uow: UnitOfWork, demand_type: str, demand_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Decimal]:
    ids = list(set(demand_ids))
    out = dict.fromkeys(ids, ZERO)
    if not ids:
        return out
    uow.session.flush()  # prepared reads see only what is written; a session.execute would autoflush
    rows = _RESERVED_BY_DEMAND.execute(uow, {"tenant": uow.tenant_id, "demand_type": demand_type}, ids=ids)
    for demand_id, qty in rows:
        out[demand_id] = qty if qty is not None else ZERO
    return out


def reserved_by_warehouse(uow: UnitOfWork, demand_type: str, demand_ids: Iterable[uuid.UUID]
                          ) -> dict[tuple[uuid.UUID, uuid.UUID], Decimal]:
    """What is reserved (open reservations) per demand line and warehouse: where each line can ship from."""
    ids = list(set(demand_ids))
    if not ids:
        return {}
    rows = uow.session.execute(
        select(Reservation.demand_id, Reservation.warehouse_id, func.sum(Reservation.quantity))
        .where(Reservation.demand_type == demand_type, Reservation.demand_id.in_(ids), Reservation.status == "open")
        .group_by(Reservation.demand_id, Reservation.warehouse_id))
    return {(demand_id, warehouse_id): qty for demand_id, warehouse_id, qty in rows if qty}


def backordered_quantity(uow: UnitOfWork, demand_type: str,
                         demand_ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Decimal]:
    ids = list(set(demand_ids))
    out = dict.fromkeys(ids, ZERO)
    if not ids:
        return out
    uow.session.flush()
    rows = _BACKORDERED_BY_DEMAND.execute(uow, {"tenant": uow.tenant_id, "demand_type": demand_type}, ids=ids)
    for demand_id, qty in rows:
        out[demand_id] = qty
    return out


# ------------------------------------------------------------------ issue


def issue_reserved(uow: UnitOfWork, *, demand_type: str, demand_id: uuid.UUID, quantity: Decimal, reference: str,
                   on: date | None = None) -> IssueResult:
    """Ship reserved stock of a demand line to the customer, at moving-average cost (COGS posted)."""
    return issue_reserved_many(uow, demand_type=demand_type, items=[(demand_id, quantity)], reference=reference,
                               on=on)[0]


def issue_reserved_many(uow: UnitOfWork, *, demand_type: str, items: Sequence[tuple[uuid.UUID, Decimal]],
                        reference: str, on: date | None = None,
                        warehouse_ids: Sequence[uuid.UUID | None] | None = None) -> list[IssueResult]:
    """`issue_reserved` for several demand lines at once (a shipment): one result per item, in order.
    `warehouse_ids` (one per item, None for any) issues an item only from what is reserved in that
    warehouse (a shipment from one warehouse of lines reserved in several).

    All or nothing. The work is a fixed number of queries whatever the number of
    lines, and the cost of goods of all the lines is posted as ONE journal entry
    (each move keeps its own cost)."""
    wheres = list(warehouse_ids) if warehouse_ids is not None else [None] * len(items)
    checked = [(as_uuid(demand_id, "demand_id"), quantity_of(quantity), where)
               for (demand_id, quantity), where in zip(items, wheres, strict=True)]
    if not checked:
        return []
    return core.with_retry(uow, lambda: _issue_many(uow, demand_type, checked, reference, on))


@dataclass(slots=True)
class _Held:
    """An open reservation as issuing reads it, with what issuing needs of its product, its lot and its
    demand line (a plain row; written back with one executemany)."""

    id: uuid.UUID
    demand_id: uuid.UUID
    product_id: uuid.UUID
    warehouse_id: uuid.UUID
    location_id: uuid.UUID
    lot_id: uuid.UUID | None
    quantity: Decimal
    created_at: datetime
    sku: str
    track_serials: bool
    standard_cost: Decimal | None
    lot_code: str | None
    expiry_date: date | None
    stock_demand_id: uuid.UUID | None
    backordered: Decimal | None
    counted: bool  # its location is being counted (`Location.count_locked`): it may not leave now
    customer_location_id: uuid.UUID | None  # the same on every row: where issued stock goes


class _ProductFacts(NamedTuple):
    """What issuing needs of a product (it stands in for a `Product` in `take_value` and `_pick_serials`)."""

    id: uuid.UUID
    sku: str
    track_serials: bool
    standard_cost: Decimal | None


@dataclass(slots=True)
class _Stock:
    """A stock balance being issued from."""

    id: uuid.UUID
    on_hand: Decimal
    reserved: Decimal


@dataclass(slots=True)
class _Cost:
    """A product's moving average in a warehouse (`core.take_value` works on it as on an `ItemCost`)."""

    id: uuid.UUID
    quantity: Decimal
    value: Decimal
    unit_cost: Decimal
    new: bool = False


# The reads and writes of an issue, built once; like allocation's, they run on the driver's cursor and
# name the tenant of every table they read.
# The lines' open reservations, each with its product's facts, its lot's code and expiry and its demand
# line (every line to issue has a reservation, else it is refused: so every demand line is found), whether
# its location is being counted, and (the same on every row) the tenant's customer location, where the
# moves go.
_CUSTOMER = (select(Location.id)
             .where(Location.tenant_id == _TENANT, Location.kind == LocationKind.CUSTOMER.value,
                    Location.warehouse_id.is_(None))
             .order_by(Location.id).limit(1).scalar_subquery())
_HELD_COLUMNS = 17  # the columns of `_Held`
# The reservation's location (aliased: `_CUSTOMER` reads the same table and must not correlate to it).
_at = aliased(Location, name="held_at")


def _held(in_: Callable[[Any, str], Any], *, with_stock: bool = False, lock_locations: bool = False) -> Any:
    query = (
        select(_r.id, _r.demand_id, _raw(_r.product_id), _raw(_r.warehouse_id), _raw(_r.location_id), _r.lot_id,
               _r.quantity, _r.created_at, Product.sku, Product.track_serials, Product.standard_cost, _lot.code,
               _lot.expiry_date, _sd.id, _sd.backordered, _at.count_locked, _raw(_CUSTOMER))
        .join(Product, (Product.id == _r.product_id) & (Product.tenant_id == _TENANT))
        .join(_at, (_at.id == _r.location_id) & (_at.tenant_id == _TENANT))
        .outerjoin(_lot, (_lot.id == _r.lot_id) & (_lot.tenant_id == _TENANT))
        .outerjoin(_sd, (_sd.demand_type == _r.demand_type) & (_sd.demand_id == _r.demand_id)
                   & (_sd.tenant_id == _TENANT))
        .where(_r.tenant_id == _TENANT, _r.demand_type == bindparam("demand_type"), in_(_r.demand_id, "ids"),
               _r.status == "open")
        .order_by(_r.created_at, _r.id)
    )
    if with_stock:
        # With each reservation, its balance (as `_ISSUE_BALANCES` reads it) and its product's cost in its
        # warehouse (as `_COSTS` does; none before the first stock in).
        query = (query.add_columns(_b.id, _b.lot_key, _b.on_hand, _b.reserved, ItemCost.id, ItemCost.quantity,
                                   ItemCost.value, ItemCost.unit_cost)
                 .outerjoin(_b, (_b.id == _r.balance_id) & (_b.tenant_id == _TENANT))
                 .outerjoin(ItemCost, (ItemCost.product_id == _r.product_id)
                            & (ItemCost.warehouse_id == _r.warehouse_id) & (ItemCost.tenant_id == _TENANT)))
    if lock_locations:
        # The count flag read under a share lock of the locations, as `stock._refuse_while_counted` reads
        # it: a count starting there meanwhile (`start_count` locks the row FOR UPDATE) waits for this
        # issue to commit and counts what it left, or this waits for the count and sees the flag.
        query = query.with_for_update(read=True, key_share=True, of=_at)
    return query


_HELD = PreparedIn(_held)
# PostgreSQL, the read under the product locks: `_HELD` with the reservations' locations locked FOR KEY SHARE.
_HELD_LOCKED = PreparedIn(lambda in_: _held(in_, lock_locations=True))
# SQLite only, where nothing is locked: the three reads of an issue in one. (PostgreSQL reads the balances
# and costs apart, to lock them in id order.)
_HELD_WITH_STOCK = PreparedIn(lambda in_: _held(in_, with_stock=True))
# The balances the reservations draw on, found by (product, location, lot) as `core.balance_for` finds
# them, and locked in id order.
_ISSUE_BALANCES = PreparedIn(lambda in_: (
    select(_b.id, _raw(_b.product_id), _raw(_b.location_id), _b.lot_key, _b.on_hand, _b.reserved)
    .where(_b.tenant_id == _TENANT, in_(_b.product_id, "products"), in_(_b.location_id, "locations"))
    .order_by(_b.id)
    .with_for_update()
))
_COSTS = PreparedIn(lambda in_: (
    select(ItemCost.id, _raw(ItemCost.product_id), _raw(ItemCost.warehouse_id), ItemCost.quantity, ItemCost.value,
           ItemCost.unit_cost)
    .where(ItemCost.tenant_id == _TENANT, in_(ItemCost.product_id, "products"),
           in_(ItemCost.warehouse_id, "warehouses"))
    .order_by(ItemCost.id)
    .with_for_update()
))
_INSERT_MOVES = Prepared(insert(StockMove.__table__), columns=(
    "id", "tenant_id", "product_id", "lot_id", "from_location_id", "to_location_id", "from_warehouse_id",
    "to_warehouse_id", "quantity", "unit_cost", "value", "kind", "reason", "reference", "demand_type", "demand_id",
    "serials", "effective_date", "created_at", "actor"))
_UPDATE_STOCK = Prepared(update(_b.__table__).where(_b.__table__.c.id == bindparam("b_id"))
                         .values(on_hand=bindparam("b_on_hand"), reserved=bindparam("b_reserved")))
_UPDATE_HELD = Prepared(update(_r.__table__).where(_R.tenant_id == bindparam("b_tenant"),
                                                   _R.demand_type == bindparam("b_demand_type"),
                                                   _R.demand_id == bindparam("b_demand_id"), _R.id == bindparam("b_id"))
                        .values(quantity=bindparam("b_quantity"), status=bindparam("b_status"),
                                updated_at=bindparam("b_at")))
_INSERT_COSTS = Prepared(insert(ItemCost.__table__), columns=(
    "id", "tenant_id", "product_id", "warehouse_id", "quantity", "value", "unit_cost", "created_at", "updated_at"))
_UPDATE_COSTS = Prepared(update(ItemCost.__table__).where(ItemCost.__table__.c.id == bindparam("b_id"))
                         .values(quantity=bindparam("b_quantity"), value=bindparam("b_value"),
                                 unit_cost=bindparam("b_unit_cost"), updated_at=bindparam("b_at")))
_CLOSE_DEMANDS = Prepared(update(_sd.__table__).where(_SD.tenant_id == bindparam("b_tenant"),
                                                      _SD.demand_type == bindparam("b_demand_type"),
                                                      _SD.demand_id == bindparam("b_demand_id"))
                          .values(status="closed", updated_at=bindparam("b_at")))
_SERIALS_AT = (select(SerialNumber.id, SerialNumber.serial)
               .order_by(SerialNumber.created_at, SerialNumber.serial))
_MOVE_SERIALS = Prepared(update(SerialNumber.__table__).where(SerialNumber.__table__.c.id == bindparam("b_id"))
                         .values(location_id=bindparam("b_location_id"), updated_at=bindparam("b_at")))


def _held_by_demand(uow: UnitOfWork, demand_type: str, demand_ids: list[uuid.UUID],
                    of: Callable[[Any], uuid.UUID], *, lock_locations: bool = False) -> dict[uuid.UUID, list[_Held]]:
    """The lines' open reservations by demand line (`of` converts the raw ids, see `_RawId`); with
    `lock_locations`, their locations locked FOR KEY SHARE (PostgreSQL)."""
    out: dict[uuid.UUID, list[_Held]] = defaultdict(list)
    read = _HELD_LOCKED if lock_locations else _HELD
    for row in read.execute(uow, {"tenant": uow.tenant_id, "demand_type": demand_type}, ids=demand_ids):
        out[row[1]].append(_Held(row[0], row[1], of(row[2]), of(row[3]), of(row[4]), *row[5:-1],
                                 None if row[-1] is None else of(row[-1])))
    return out


def _held_with_stock(uow: UnitOfWork, demand_type: str, demand_ids: list[uuid.UUID], of: Callable[[Any], uuid.UUID]
                     ) -> tuple[dict[uuid.UUID, list[_Held]], dict[tuple[Any, ...], _Stock],
                                dict[tuple[uuid.UUID, uuid.UUID], _Cost]]:
    """`_held_by_demand`, with the balances and costs the reservations draw on, keyed as `_issue_many`
    keys them (SQLite: one read instead of three)."""
    out: dict[uuid.UUID, list[_Held]] = defaultdict(list)
    balances: dict[tuple[Any, ...], _Stock] = {}
    costs: dict[tuple[uuid.UUID, uuid.UUID], _Cost] = {}
    n = _HELD_COLUMNS
    for row in _HELD_WITH_STOCK.execute(uow, {"tenant": uow.tenant_id, "demand_type": demand_type}, ids=demand_ids):
        held = _Held(row[0], row[1], of(row[2]), of(row[3]), of(row[4]), *row[5:n - 1],
                     None if row[n - 1] is None else of(row[n - 1]))
        out[row[1]].append(held)
        if row[n] is not None:
            balances.setdefault((held.product_id, held.location_id, row[n + 1]), _Stock(row[n], row[n + 2], row[n + 3]))
        if row[n + 4] is not None:
            costs.setdefault((held.product_id, held.warehouse_id), _Cost(row[n + 4], *row[n + 5:n + 8]))
    return out, balances, costs


def _check_reserved(by_demand: dict[uuid.UUID, list[_Held]],
                    wanted: dict[tuple[uuid.UUID, uuid.UUID | None], Decimal], demand_type: str) -> None:
    """Each (demand line, warehouse or None for any) has at least what is wanted of it reserved."""
    for (demand_id, where), quantity in wanted.items():
        reserved = sum((r.quantity for r in by_demand.get(demand_id, [])
                        if where is None or r.warehouse_id == where), ZERO)
        if quantity > reserved:
            there = "" if where is None else " in that warehouse"
            raise NotReserved(f"{format_quantity(quantity)} to issue but only {format_quantity(reserved)} reserved"
                              f"{there} for {demand_type} {demand_id}", reserved=format_quantity(reserved))


def _issue_many(uow: UnitOfWork, demand_type: str, items: list[tuple[uuid.UUID, Decimal, uuid.UUID | None]],
                reference: str, on: date | None) -> list[IssueResult]:
    """The stock side of a shipment with a fixed number of statements whatever the number of lines: one
    read of the lines' reservations (with their products, lots and demand lines), one each of the balances
    and costs (locked in id order; on SQLite, which locks nothing, part of the first read), then one
    executemany per table for the writes.

    This is `core.record_move` for a batch of issues, with plain rows instead of ORM objects: each move
    leaves a stock balance, consuming its reservation, and goes to the customer location (no balance).
    Stock in a location being counted does not leave (`LocationLocked`): the reservations' read says
    so, on PostgreSQL under a share lock of their locations (see `_held`)."""
    session = uow.session
    session.flush()  # the reads below go to the connection, which does not autoflush
    tenant = uow.tenant_id
    demand_ids = list(dict.fromkeys(d for d, _, _ in items))
    wanted: dict[tuple[uuid.UUID, uuid.UUID | None], Decimal] = defaultdict(lambda: ZERO)
    for demand_id, quantity, where in items:
        wanted[(demand_id, where)] += quantity
    of = _id_reader()  # one for the three reads: they name the same products, locations and warehouses
    read_stock = uow.connection().dialect.name == "sqlite"
    if read_stock:
        # SQLite writers are serialised from BEGIN IMMEDIATE: what this reads is current and stays so.
        by_demand, balances, costs = _held_with_stock(uow, demand_type, demand_ids, of)
    else:
        by_demand = _held_by_demand(uow, demand_type, demand_ids, of)
    _check_reserved(by_demand, wanted, demand_type)
    core.lock_products(uow, sorted({rs[0].product_id for rs in by_demand.values()}))
    today = clock.today()
    if on is not None and on < today:
        from entrepot.ledger.services.periods import open_period_for_posting

        open_period_for_posting(uow, on)
    if not read_stock:
        # Read again under the product locks: another transaction may have changed them meanwhile
        # (SQLite writers are serialised from BEGIN IMMEDIATE, so what we read is already current).
        # This read also locks the reservations' locations FOR KEY SHARE, so that their count flags
        # stay as read until this commits (see `_held`).
        by_demand = _held_by_demand(uow, demand_type, demand_ids, of, lock_locations=True)
        _check_reserved(by_demand, wanted, demand_type)
    every = [r for rs in by_demand.values() for r in rs]
    products = {r.product_id: _ProductFacts(r.product_id, r.sku, r.track_serials, r.standard_cost) for r in every}
    far = date.max
    for rs in by_demand.values():
        rs.sort(key=lambda r: ((r.expiry_date or far) if r.lot_id else far, r.created_at, r.id))
    if not read_stock:
        # Everything the moves touch, in one query each; balances and costs locked in id order (the fixed order).
        balances = {(of(row[1]), of(row[2]), row[3]): _Stock(row[0], row[4], row[5])
                    for row in _ISSUE_BALANCES.execute(uow, {"tenant": tenant}, products=list(products),
                                                       locations=list({r.location_id for r in every}))}
        costs = {(of(row[1]), of(row[2])): _Cost(row[0], *row[3:]) for row in _COSTS.execute(
            uow, {"tenant": tenant}, products=list(products), warehouses=list({r.warehouse_id for r in every}))}
    for key in sorted({(r.product_id, r.warehouse_id) for r in every} - costs.keys()):
        costs[key] = _Cost(new_id(), ZERO, ZERO, ZERO, new=True)  # first stock out before any in
    currency = core.functional_currency(uow)
    by_layers = core.valued_fifo(uow)
    customer_id = every[0].customer_location_id
    if customer_id is None:
        raise NotFound("location", "customer of warehouse None")
    now = clock.now()
    actor = uow.actor.ref
    results: list[IssueResult] = []
    moves: list[dict[str, Any]] = []
    touched: dict[uuid.UUID, _Stock] = {}
    used: dict[uuid.UUID, _Held] = {}
    picked: set[uuid.UUID] = set()  # serial numbers (ids) leaving with this issue
    for demand_id, quantity, where in items:
        reservations = by_demand[demand_id]
        if where is not None:  # only what is reserved in that warehouse (checked above: enough of it)
            reservations = [r for r in reservations if r.warehouse_id == where]
        product = products[reservations[0].product_id]
        remaining = quantity
        total_cost = ZERO
        move_ids = []
        by_lot: dict[uuid.UUID, LotIssue] = {}
        all_serials: list[str] = []
        warehouse_id: uuid.UUID | None = None
        for r in reservations:
            if remaining <= 0:
                break
            if r.quantity <= 0:
                continue  # used up by an earlier item of the same demand line
            take = min(r.quantity, remaining)
            if r.counted:
                # Stock picked while its location is counted would be written off as a variance when
                # the count is posted (or the sheet's expected quantities would not be on the shelf).
                code = session.get_one(Location, r.location_id).code
                raise core.LocationLocked(f"{code} is being counted; post or cancel the count first")
            if r.lot_id is not None and r.expiry_date is not None and r.expiry_date < (on or today):
                # Reserved before it expired: it may not leave for a customer now (the savepoint
                # takes back what earlier lines of this call wrote).
                raise core.ExpiredLot(f"lot {r.lot_code} expired on {r.expiry_date}", lot_id=str(r.lot_id))
            balance = balances.get((product.id, r.location_id, str(r.lot_id) if r.lot_id else ""))
            if balance is None or take > balance.reserved:
                code = session.get(Location, r.location_id).code
                raise NotReserved(f"only {format_quantity(balance.reserved if balance else ZERO)} reserved at {code}")
            serials = (_pick_serials(uow, product, r.location_id, r.lot_id, take, picked)
                       if product.track_serials else None)
            cost = costs[(product.id, r.warehouse_id)]
            value = (fifo.take(uow, cost, product.id, r.warehouse_id, product.standard_cost, take, currency)
                     if by_layers else core.take_value(cost, product, take, currency))
            balance.reserved -= take
            balance.on_hand -= take
            touched[balance.id] = balance
            move_id = new_id()
            moves.append({
                "id": move_id, "tenant_id": tenant, "product_id": product.id, "lot_id": r.lot_id,
                "from_location_id": r.location_id, "to_location_id": customer_id,
                "from_warehouse_id": r.warehouse_id, "to_warehouse_id": None, "quantity": take,
                "unit_cost": core.quantize_storage(value / take), "value": value, "kind": MoveKind.ISSUE.value,
                "reason": None, "reference": reference, "demand_type": demand_type, "demand_id": demand_id,
                "serials": serials, "effective_date": on or today, "created_at": now, "actor": actor})
            r.quantity -= take
            used[r.id] = r
            remaining -= take
            total_cost += value
            move_ids.append(move_id)
            warehouse_id = warehouse_id or r.warehouse_id
            if serials:
                all_serials.extend(serials)
            if r.lot_id is not None:
                entry = by_lot.setdefault(r.lot_id, LotIssue(r.lot_id, r.lot_code or "", ZERO))
                entry.quantity += take
                entry.serials.extend(serials or [])
        results.append(IssueResult(quantity=quantity, cost=total_cost, warehouse_id=warehouse_id,
                                   lots=list(by_lot.values()), move_ids=move_ids, serials=all_serials))
    # Writes: one statement per table (executemany). Objects of these rows already in the session
    # (loaded earlier in this transaction) are told to reload what changed.
    _INSERT_MOVES.execute_many(uow, moves)
    _UPDATE_STOCK.execute_many(uow, [{"b_id": b.id, "b_on_hand": b.on_hand, "b_reserved": b.reserved}
                                     for b in touched.values()])
    _expire(session, StockBalance, touched, ["on_hand", "reserved"])
    _UPDATE_HELD.execute_many(uow, [{"b_tenant": tenant, "b_demand_type": demand_type, "b_demand_id": r.demand_id,
                                     "b_id": r.id, "b_quantity": r.quantity,
                                     "b_status": "open" if r.quantity > 0 else "closed", "b_at": now}
                                    for r in used.values()])
    _expire(session, Reservation, [(tenant, demand_type, r.demand_id, r.id) for r in used.values()],
            ["quantity", "status", "updated_at"])
    new_costs = [(key, c) for key, c in costs.items() if c.new]
    if new_costs:
        _INSERT_COSTS.execute_many(uow, [{"id": c.id, "tenant_id": tenant, "product_id": key[0],
                                          "warehouse_id": key[1], "quantity": c.quantity, "value": c.value,
                                          "unit_cost": c.unit_cost, "created_at": now, "updated_at": now}
                                         for key, c in new_costs])
    old_costs = [c for c in costs.values() if not c.new]
    if old_costs:
        _UPDATE_COSTS.execute_many(uow, [{"b_id": c.id, "b_quantity": c.quantity, "b_value": c.value,
                                          "b_unit_cost": c.unit_cost, "b_at": now} for c in old_costs])
        _expire(session, ItemCost, [c.id for c in old_costs], ["quantity", "value", "unit_cost", "updated_at"])
    if picked:
        _MOVE_SERIALS.execute_many(uow, [{"b_id": s, "b_location_id": customer_id, "b_at": now} for s in picked])
        _expire(session, SerialNumber, picked, ["location_id", "updated_at"])
    # A demand line is done when nothing is reserved for it any more and nothing is backordered.
    done = [{"b_tenant": tenant, "b_demand_type": demand_type, "b_demand_id": demand_id, "b_at": now}
            for demand_id, rs in by_demand.items()
            if rs[0].stock_demand_id is not None and rs[0].backordered == 0 and not any(r.quantity > 0 for r in rs)]
    if done:
        _CLOSE_DEMANDS.execute_many(uow, done)
        _expire(session, StockDemand, [(tenant, demand_type, d["b_demand_id"]) for d in done],
                ["status", "updated_at"])
    # One cost-of-goods entry for the whole issue (the moves carry the cost per line).
    posting.post_shipment_cost(uow, source_id=moves[0]["id"], on=on or today,
                               amount=sum((r.cost for r in results), ZERO))
    if on is not None and on < today:
        from entrepot.inventory.services import valuation

        first_move: dict[tuple[uuid.UUID, uuid.UUID], uuid.UUID] = {}
        for m in moves:
            first_move.setdefault((m["product_id"], m["from_warehouse_id"]), m["id"])
        for (product_id, wid), trigger_id in sorted(first_move.items(), key=lambda kv: (str(kv[0][0]),
                                                                                         str(kv[0][1]))):
            if valuation.needs_revalue(uow, product_id, wid, on, outflow=True):
                valuation.revalue(uow, catalog.get_product(uow, product_id), wid,
                                  session.get_one(StockMove, trigger_id))
    for move in moves:
        audit(uow, "stock.issue", "stock_move", move["id"], after=move)
    issued = []
    for (demand_id, quantity, _), result in zip(items, results, strict=True):
        product_id = by_demand[demand_id][0].product_id
        issued.append((StockIssued(demand_type=demand_type, demand_id=str(demand_id), product_id=str(product_id),
                                   warehouse_id=str(result.warehouse_id), quantity=format_quantity(quantity),
                                   cost=format_amount(result.cost, currency), reference=reference),
                       f"stock/{product_id}"))
    record_events(uow, issued)
    return results


def _pick_serials(uow: UnitOfWork, product: _ProductFacts, location_id: uuid.UUID, lot_id: uuid.UUID | None,
                  quantity: Decimal, picked: set[uuid.UUID]) -> list[str]:
    """The serial numbers to ship from a location (and lot), oldest first, leaving out those this issue
    already took (`picked`, which they join): they move to the customer with the issue's writes."""
    core.refuse_part_units(product.sku, quantity)
    query = _SERIALS_AT.where(SerialNumber.product_id == product.id, SerialNumber.location_id == location_id)
    if lot_id is not None:
        query = query.where(SerialNumber.lot_id == lot_id)
    # At most len(picked) of the rows read are already taken: read that many more and leave them out.
    rows = [row for row in uow.session.execute(query.limit(int(quantity) + len(picked)))
            if row.id not in picked][:int(quantity)]
    if len(rows) < int(quantity):
        raise core.InsufficientStock(f"{product.sku}: only {len(rows)} serial numbers at the location")
    picked.update(row.id for row in rows)
    return [row.serial for row in rows]


class ReorderWatch:
    """Emits stock.low.v1 when an operation takes available stock below a reorder point.

    (Allocation does the same from the rows it reads anyway: see `_allocate`.)"""

    def __init__(self, uow: UnitOfWork, product_ids: Iterable[uuid.UUID]) -> None:
        self.uow = uow
        # Plain rows (no ORM objects): this runs on every allocation, and most products have no rule.
        self.rules = {(r.product_id, r.warehouse_id): r for r in uow.session.execute(
            select(ReorderRule.product_id, ReorderRule.warehouse_id, ReorderRule.reorder_point)
            .where(ReorderRule.product_id.in_(list(set(product_ids)))))}
        self.before: dict[tuple[uuid.UUID, uuid.UUID], Decimal] = {
            key: core.stock_available(uow, *key) for key in self.rules}
        self.seen: set[tuple[uuid.UUID, uuid.UUID]] = set()

    def touched(self, product_id: uuid.UUID, warehouse_id: uuid.UUID) -> None:
        if (product_id, warehouse_id) in self.rules:
            self.seen.add((product_id, warehouse_id))

    def emit(self) -> None:
        if not self.seen:
            return
        self.uow.session.flush()
        for key in sorted(self.seen):
            rule = self.rules[key]
            after = core.stock_available(self.uow, *key)
            if self.before[key] >= rule.reorder_point > after:
                record_event(self.uow, StockLow(product_id=str(key[0]), warehouse_id=str(key[1]),
                                                available=format_quantity(after),
                                                reorder_point=format_quantity(rule.reorder_point)),
                             subject=f"stock/{key[0]}")


def reorder_watch(uow: UnitOfWork, product_ids: Iterable[uuid.UUID]) -> ReorderWatch:
    return ReorderWatch(uow, product_ids)
