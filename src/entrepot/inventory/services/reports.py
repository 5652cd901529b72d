"""Reading the stock: levels, history, valuation, lot trace, the ledger check, replenishment."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Any

from sqlalchemy import Select, bindparam, func, or_, select, update
from sqlalchemy.orm import aliased
from sqlalchemy.orm.attributes import set_committed_value

from entrepot.catalog import service as catalog
from entrepot.db.prepared import Prepared
from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.audit import audit, snapshot
from entrepot.identity.services.tenant_settings import SETTINGS
from entrepot.identity.services.tenants import in_each_active_tenant
from entrepot.integration.outbox import record_event
from entrepot.inventory.events import LotExpiring
from entrepot.inventory.models import (
    INTERNAL_KINDS,
    ZERO,
    CostLayer,
    ItemCost,
    Location,
    LocationKind,
    Lot,
    MoveKind,
    ReorderRule,
    Reservation,
    StockBalance,
    StockDemand,
    StockMove,
    Transfer,
    Warehouse,
)
from entrepot.inventory.services import core
from entrepot.inventory.services.core import as_uuid, quantity_of
from entrepot.inventory.states import TransferStatus
from entrepot.kernel import clock
from entrepot.kernel.errors import NotFound, ValidationFailed, invalid
from entrepot.kernel.money import format_quantity
from entrepot.ledger.errors import NoExchangeRate
from entrepot.ledger.services.rates import rate_on


@dataclass
class WarehouseStock:
    warehouse_id: uuid.UUID
    warehouse_code: str
    product_id: uuid.UUID
    on_hand: Decimal = ZERO
    reserved: Decimal = ZERO
    available: Decimal = ZERO
    in_transit: Decimal = ZERO
    backordered: Decimal = ZERO


# Stock levels of one product per warehouse, built once: this is the most frequent stock read (every
# product page, every availability check). It is prepared (run on the driver's cursor: SQLAlchemy's Core
# execution cost more than the query), a path that skips the session's automatic tenant criteria, so the
# tenant of both tables is stated here. The two kinds are spelled out (an IN list would be expanded per call).
_kind = StockBalance.location_kind
_LEVELS_QUERY = (
    select(Warehouse.id, Warehouse.code, _kind,
           func.sum(StockBalance.on_hand).label("on_hand"), func.sum(StockBalance.reserved).label("reserved"))
    .join(Warehouse, (Warehouse.id == StockBalance.warehouse_id) & (Warehouse.tenant_id == bindparam("tenant")))
    .where(StockBalance.tenant_id == bindparam("tenant"), StockBalance.product_id == bindparam("product"),
           (_kind == LocationKind.STOCK.value) | (_kind == LocationKind.IN_TRANSIT.value))
    .group_by(Warehouse.id, Warehouse.code, Warehouse.priority, _kind)
    .order_by(Warehouse.priority, Warehouse.code)
)
_LEVELS = Prepared(_LEVELS_QUERY)
_LEVELS_IN_WAREHOUSE = Prepared(_LEVELS_QUERY.where(StockBalance.warehouse_id == bindparam("warehouse")))


def stock_levels(uow: UnitOfWork, product_id: object, warehouse_id: object | None = None) -> list[WarehouseStock]:
    """Per warehouse: on hand, reserved and available in its stock location (plus in transit). One query."""
    pid = as_uuid(product_id, "product_id")
    params = {"tenant": uow.tenant_id, "product": pid}
    if warehouse_id is not None:
        params["warehouse"] = as_uuid(warehouse_id, "warehouse_id")
    uow.session.flush()  # prepared reads do not autoflush: see this transaction's own changes
    rows = (_LEVELS if warehouse_id is None else _LEVELS_IN_WAREHOUSE).execute(uow, params)
    if not rows:
        # No stock anywhere: the product may be unknown here (another tenant's, or no product at
        # all), which is a 404 like any other record; asked only then, so stock lookups stay one query.
        catalog.get_product(uow, pid)
        if warehouse_id is not None:
            core.get_warehouse(uow, params["warehouse"])
    # Warehouses where the product has (or had) stock; one never stocked has no row.
    out: dict[uuid.UUID, WarehouseStock] = {}
    for wid, code, kind, on_hand, reserved in rows:
        item = out.setdefault(wid, WarehouseStock(wid, code, pid))
        if kind == LocationKind.STOCK:
            item.on_hand += on_hand or ZERO
            item.reserved += reserved or ZERO
        else:
            item.in_transit += on_hand or ZERO
    for item in out.values():
        item.available = item.on_hand - item.reserved
    return list(out.values())


@dataclass
class LocationStock:
    warehouse_id: uuid.UUID
    location_id: uuid.UUID
    location_code: str
    location_kind: str
    lot_id: uuid.UUID | None
    lot_code: str | None
    expiry_date: date | None
    on_hand: Decimal
    reserved: Decimal
    available: Decimal


def stock_by_location(uow: UnitOfWork, product_id: object) -> list[LocationStock]:
    pid = as_uuid(product_id, "product_id")
    rows = uow.session.execute(
        select(StockBalance, Location.code, Lot.code, Lot.expiry_date)
        .join(Location, Location.id == StockBalance.location_id)
        .outerjoin(Lot, Lot.id == StockBalance.lot_id)
        .where(StockBalance.product_id == pid, StockBalance.on_hand != 0)
        .order_by(Location.code, Lot.expiry_date, Lot.code)).all()
    if not rows:
        catalog.get_product(uow, pid)  # 404 for an unknown product (see stock_levels)
    return [LocationStock(b.warehouse_id, b.location_id, code, b.location_kind, b.lot_id, lot_code, expiry,
                          b.on_hand, b.reserved, b.on_hand - b.reserved) for b, code, lot_code, expiry in rows]


def stock_at(uow: UnitOfWork, product_id: object, on: date) -> list[WarehouseStock]:
    """On hand per warehouse (stock locations) at the end of a past day, and what was in transit to
    it (its in-transit location), as GET /stock reads them today; from the moves alone."""
    pid = as_uuid(product_id, "product_id")
    if on > clock.today():
        raise invalid("on", "today or a past day: stock is known up to now", "range")
    kinds = (LocationKind.STOCK.value, LocationKind.IN_TRANSIT.value)
    counted = select(Location.id, Location.kind).where(Location.kind.in_(kinds)).subquery()

    def flows(warehouse: Any, location: Any) -> list[Any]:
        return uow.session.execute(
            select(warehouse, counted.c.kind, func.sum(StockMove.quantity))
            .join(counted, counted.c.id == location)
            .where(StockMove.product_id == pid, StockMove.effective_date <= on)
            .group_by(warehouse, counted.c.kind)).all()

    totals: dict[tuple[uuid.UUID, str], Decimal] = defaultdict(lambda: ZERO)
    for wid, kind, qty in flows(StockMove.to_warehouse_id, StockMove.to_location_id):
        totals[(wid, str(kind))] += qty or ZERO
    for wid, kind, qty in flows(StockMove.from_warehouse_id, StockMove.from_location_id):
        totals[(wid, str(kind))] -= qty or ZERO
    if not totals:
        catalog.get_product(uow, pid)  # 404 for an unknown product (see stock_levels)
    held = {wid for wid, _ in totals}
    warehouses = {w.id: w for w in uow.session.scalars(select(Warehouse).order_by(Warehouse.priority, Warehouse.code))}
    out = []
    for wid, w in warehouses.items():
        if wid in held:
            on_hand = totals.get((wid, LocationKind.STOCK.value), ZERO)
            out.append(WarehouseStock(wid, w.code, pid, on_hand, ZERO, on_hand,
                                      in_transit=totals.get((wid, LocationKind.IN_TRANSIT.value), ZERO)))
    return out


def move_query(product_id: object, warehouse_id: object | None = None, lot_id: object | None = None) -> Any:
    query = select(StockMove).where(StockMove.product_id == as_uuid(product_id, "product_id"))
    if warehouse_id is not None:
        wid = as_uuid(warehouse_id, "warehouse_id")
        query = query.where((StockMove.from_warehouse_id == wid) | (StockMove.to_warehouse_id == wid))
    if lot_id is not None:
        query = query.where(StockMove.lot_id == as_uuid(lot_id, "lot_id"))
    return query


def document_move_ids(demand_type: str, demand_ids: Sequence[uuid.UUID], *, product_ids: Sequence[uuid.UUID] = (),
                      returned_under: Sequence[str] = ()) -> list[Select[tuple[uuid.UUID]]]:
    """The stock moves of a document's lines, as queries of their ids for a caller to compose (the ledger
    finds the entries they posted: cost of goods issued, goods returned to stock, and any valuation
    correction one of them triggered): the moves that issued to `demand_ids`, and those that took back
    `product_ids` from customers under the references `returned_under` (returns' numbers)."""
    queries: list[Select[tuple[uuid.UUID]]] = []
    if demand_ids:
        queries.append(select(StockMove.id).where(StockMove.demand_type == demand_type,
                                                  StockMove.demand_id.in_(list(demand_ids))))
    if product_ids and returned_under:
        queries.append(select(StockMove.id).where(StockMove.product_id.in_(list(product_ids)),
                                                  StockMove.kind == MoveKind.RETURN,
                                                  StockMove.reference.in_(list(returned_under))))
    return queries


# ------------------------------------------------------------------ valuation


@dataclass
class ValuationLine:
    product_id: uuid.UUID
    warehouse_id: uuid.UUID
    quantity: Decimal
    unit_cost: Decimal
    value: Decimal


@dataclass
class Valuation:
    currency: str
    total_value: Decimal
    lines: list[ValuationLine] = field(default_factory=list)


def valuation(uow: UnitOfWork, warehouse_id: object | None = None) -> Valuation:
    """Inventory value per product × warehouse at moving-average cost; equals the inventory account."""
    query = select(ItemCost).where((ItemCost.quantity != 0) | (ItemCost.value != 0))
    if warehouse_id is not None:
        query = query.where(ItemCost.warehouse_id == as_uuid(warehouse_id, "warehouse_id"))
    rows = list(uow.session.scalars(query.order_by(ItemCost.warehouse_id, ItemCost.product_id)))
    lines = [ValuationLine(r.product_id, r.warehouse_id, r.quantity,
                           core.quantize_storage(r.value / r.quantity) if r.quantity > 0 else r.unit_cost, r.value)
             for r in rows]
    return Valuation(core.functional_currency(uow), sum((line.value for line in lines), ZERO), lines)


# ------------------------------------------------------------------ lots


def get_lot(uow: UnitOfWork, lot_id: object) -> Lot:
    try:
        lid = as_uuid(lot_id, "lot_id")
    except ValidationFailed as exc:
        raise NotFound("lot", lot_id) from exc
    lot = uow.session.get(Lot, lid)
    if lot is None:
        raise NotFound("lot", lot_id)
    return lot


@dataclass
class LotTrace:
    lot: Lot
    received: list[StockMove]
    shipped: list[StockMove]
    on_hand: list[LocationStock]  # where it is now, per location (code and kind), as GET /stock/locations


def trace_lot(uow: UnitOfWork, lot_id: object) -> LotTrace:
    """Where a lot came from and every customer shipment it went to (recall)."""
    lot = get_lot(uow, lot_id)
    customer = core.location_of(uow, None, LocationKind.CUSTOMER)
    moves = list(uow.session.scalars(select(StockMove).where(StockMove.lot_id == lot.id)
                                     .order_by(StockMove.created_at, StockMove.id)))
    virtual_sources = {loc.id for loc in uow.session.scalars(select(Location).where(Location.warehouse_id.is_(None)))}
    received = [m for m in moves if m.from_location_id in virtual_sources and m.to_warehouse_id is not None]
    shipped = [m for m in moves if m.to_location_id == customer.id]
    on_hand = [LocationStock(b.warehouse_id, b.location_id, code, b.location_kind, lot.id, lot.code, lot.expiry_date,
                             b.on_hand, b.reserved, b.on_hand - b.reserved)
               for b, code in uow.session.execute(
                   select(StockBalance, Location.code).join(Location, Location.id == StockBalance.location_id)
                   .where(StockBalance.lot_id == lot.id, StockBalance.on_hand != 0).order_by(Location.code))]
    return LotTrace(lot, received, shipped, on_hand)


@dataclass
class ExpiringLot:
    lot: Lot
    on_hand: Decimal
    expired: bool  # its expiry date is already past
    announced: bool  # lot.expiring.v1 was emitted for its current expiry date (before or by this call)
    announced_now: bool = False  # emitted by this call


def expiring_lots(uow: UnitOfWork, within_days: int | None = None) -> list[ExpiringLot]:
    """Lots with stock in the tenant's warehouses that expire within the window (the tenant's
    `lot_expiry_warning_days` unless given) or have expired already, soonest first, and whether each
    was announced. Reads only: looking further ahead must not use up a lot's one announcement."""
    if within_days is None:
        within_days = int(core.tenant_settings(uow).get(
            "lot_expiry_warning_days", SETTINGS["lot_expiry_warning_days"].default))
    if isinstance(within_days, bool) or not isinstance(within_days, int) or within_days < 0:
        raise invalid("within_days", "a whole number of days, 0 or more", "range")
    today = clock.today()
    rows = uow.session.execute(
        select(Lot, func.sum(StockBalance.on_hand))
        .join(StockBalance, StockBalance.lot_id == Lot.id)
        .where(Lot.expiry_date.is_not(None), Lot.expiry_date <= today + timedelta(days=within_days),
               StockBalance.location_kind.in_([k.value for k in INTERNAL_KINDS]))
        .group_by(Lot.id).order_by(Lot.expiry_date, Lot.code)).all()
    return [ExpiringLot(lot, on_hand, lot.expiry_date < today, lot.expiry_warned_for == lot.expiry_date)
            for lot, on_hand in rows if on_hand and on_hand > 0]


def announce_expiring_lots(uow: UnitOfWork) -> list[ExpiringLot]:
    """lot.expiring.v1 for each lot within the tenant's own warning window not announced yet; returns the
    lots in that window (`announced_now`: by this call). Once per lot, so the hourly job and the command
    can run as often as they like. No window argument: an announcement is the tenant's to time."""
    lots = expiring_lots(uow)
    for x in lots:
        if x.announced:
            continue
        lot = x.lot
        # Marked by a conditional update, so that of two runs at once only one announces the lot (on
        # PostgreSQL the second waits for the first's commit, then finds the mark set).
        x.announced_now = uow.session.execute(
            update(Lot).where(Lot.id == lot.id, or_(Lot.expiry_warned_for.is_(None),
                                                    Lot.expiry_warned_for != lot.expiry_date))
            .values(expiry_warned_for=lot.expiry_date).execution_options(synchronize_session=False)
        ).rowcount == 1
        x.announced = True
        if x.announced_now:
            record_event(uow, LotExpiring(lot_id=str(lot.id), product_id=str(lot.product_id), code=lot.code,
                                          expiry_date=lot.expiry_date.isoformat(), on_hand=format_quantity(x.on_hand),
                                          expired=x.expired),
                         subject=f"lot/{lot.id}")
            set_committed_value(lot, "expiry_warned_for", lot.expiry_date)
    return lots


def announce_expiring_lots_everywhere() -> int:
    """Scheduler entry point (no arguments): announce expiring lots in every active tenant. Returns how many
    lots were announced."""
    return in_each_active_tenant(lambda uow: sum(1 for x in announce_expiring_lots(uow) if x.announced_now),
                                 "lot expiry announcements")


# ------------------------------------------------------------------ the ledger check


@dataclass
class Discrepancy:
    kind: str  # on_hand | reserved | valuation_quantity | layers_quantity | layers_value | backorder
    product_id: uuid.UUID
    location_id: uuid.UUID | None
    lot_id: uuid.UUID | None
    expected: Decimal
    actual: Decimal

    def describe(self) -> str:
        where = f" at location {self.location_id}" if self.location_id else ""
        lot = f" lot {self.lot_id}" if self.lot_id else ""
        return f"{self.kind} of product {self.product_id}{where}{lot}: ledger says " \
               f"{format_quantity(self.expected)}, balance says {format_quantity(self.actual)}"


def check_balances(uow: UnitOfWork) -> list[Discrepancy]:
    """Recompute every balance from the ledger (moves) and open reservations; report differences."""
    session = uow.session
    expected: dict[tuple[uuid.UUID, uuid.UUID, uuid.UUID | None], Decimal] = defaultdict(lambda: ZERO)
    for pid, loc, lot, qty in session.execute(
            select(StockMove.product_id, StockMove.to_location_id, StockMove.lot_id, func.sum(StockMove.quantity))
            .where(StockMove.to_warehouse_id.is_not(None))
            .group_by(StockMove.product_id, StockMove.to_location_id, StockMove.lot_id)):
        expected[(pid, loc, lot)] += qty
    for pid, loc, lot, qty in session.execute(
            select(StockMove.product_id, StockMove.from_location_id, StockMove.lot_id, func.sum(StockMove.quantity))
            .where(StockMove.from_warehouse_id.is_not(None))
            .group_by(StockMove.product_id, StockMove.from_location_id, StockMove.lot_id)):
        expected[(pid, loc, lot)] -= qty
    reserved: dict[uuid.UUID, Decimal] = {bid: qty for bid, qty in session.execute(
        select(Reservation.balance_id, func.sum(Reservation.quantity)).where(Reservation.status == "open")
        .group_by(Reservation.balance_id))}
    found: list[Discrepancy] = []
    seen: set[tuple[uuid.UUID, uuid.UUID, uuid.UUID | None]] = set()
    valued_kinds = {k.value for k in INTERNAL_KINDS}
    per_warehouse: dict[tuple[uuid.UUID, uuid.UUID], Decimal] = defaultdict(lambda: ZERO)
    for b in session.scalars(select(StockBalance).order_by(StockBalance.id)):
        key = (b.product_id, b.location_id, b.lot_id)
        seen.add(key)
        if expected[key] != b.on_hand:
            found.append(Discrepancy("on_hand", b.product_id, b.location_id, b.lot_id, expected[key], b.on_hand))
        want = reserved.get(b.id, ZERO)
        if want != b.reserved:
            found.append(Discrepancy("reserved", b.product_id, b.location_id, b.lot_id, want, b.reserved))
        if b.location_kind in valued_kinds:
            per_warehouse[(b.product_id, b.warehouse_id)] += expected[key]
    for key, qty in expected.items():
        if key not in seen and qty != 0:
            found.append(Discrepancy("on_hand", key[0], key[1], key[2], qty, ZERO))
    # FIFO: while a warehouse holds stock its cost layers add up to its valuation; without stock it has none.
    layers = {(pid, wid): (qty, value) for pid, wid, qty, value in session.execute(
        select(CostLayer.product_id, CostLayer.warehouse_id, func.sum(CostLayer.quantity), func.sum(CostLayer.value))
        .group_by(CostLayer.product_id, CostLayer.warehouse_id))}
    by_layers = core.valued_fifo(uow)
    costed: set[tuple[uuid.UUID, uuid.UUID]] = set()
    for cost in session.scalars(select(ItemCost)):
        costed.add((cost.product_id, cost.warehouse_id))
        want = per_warehouse.get((cost.product_id, cost.warehouse_id), ZERO)
        if want != cost.quantity:
            found.append(Discrepancy("valuation_quantity", cost.product_id, None, None, want, cost.quantity))
        held = (cost.quantity, cost.value) if by_layers and cost.quantity > 0 else (ZERO, ZERO)
        in_layers = layers.get((cost.product_id, cost.warehouse_id), (ZERO, ZERO))
        for kind, valued, layered in (("layers_quantity", held[0], in_layers[0]),
                                      ("layers_value", held[1], in_layers[1])):
            if valued != layered:
                found.append(Discrepancy(kind, cost.product_id, None, None, valued, layered))
    # Stock or layers in a warehouse with no valuation row at all: the loop above never saw them.
    for (pid, wid), qty in per_warehouse.items():
        if (pid, wid) not in costed and qty != 0:
            found.append(Discrepancy("valuation_quantity", pid, None, None, qty, ZERO))
    for (pid, wid), (qty, value) in layers.items():
        if (pid, wid) not in costed:
            found.extend(Discrepancy(kind, pid, None, None, ZERO, layered)
                         for kind, layered in (("layers_quantity", qty), ("layers_value", value)) if layered != 0)
    for sd in session.scalars(select(StockDemand).where(StockDemand.backordered < 0)):
        found.append(Discrepancy("backorder", sd.product_id, None, None, ZERO, sd.backordered))
    return found


# ------------------------------------------------------------------ replenishment


def set_reorder_rule(uow: UnitOfWork, *, product_id: object, warehouse_id: object, reorder_point: object,
                     order_up_to: object, safety_stock: object = 0) -> ReorderRule:
    product = core.product_for(uow, product_id)
    warehouse = core.warehouse_for(uow, warehouse_id)
    point = quantity_of(reorder_point, "reorder_point", allow_zero=True)
    up_to = quantity_of(order_up_to, "order_up_to", allow_zero=True)
    safety = quantity_of(safety_stock, "safety_stock", allow_zero=True)
    if up_to < point:
        raise invalid("order_up_to", "must be at least the reorder point", "range")
    rule = uow.session.scalar(select(ReorderRule).where(ReorderRule.product_id == product.id,
                                                        ReorderRule.warehouse_id == warehouse.id))
    before = snapshot(rule) if rule else None
    if rule is None:
        rule = ReorderRule(product_id=product.id, warehouse_id=warehouse.id)
        uow.session.add(rule)
    rule.reorder_point, rule.order_up_to, rule.safety_stock = point, up_to, safety
    uow.session.flush()
    audit(uow, "reorder_rule.set", "reorder_rule", rule.id, before=before, after=snapshot(rule))
    return rule


@dataclass
class Suggestion:
    product_id: uuid.UUID
    warehouse_id: uuid.UUID
    supplier_id: uuid.UUID | None
    supplier_item_id: uuid.UUID | None
    quantity: Decimal
    projected: Decimal
    reorder_point: Decimal
    order_up_to: Decimal
    lead_time_days: int
    unit_cost: Decimal | None
    currency: str | None
    daily_usage: Decimal = ZERO  # average quantity shipped to customers per day over the usage window
    lead_time_demand: Decimal = ZERO  # daily usage × lead time: what goes out while the order is on its way
    expected_on: date | None = None  # when an order placed today arrives (today + lead time)
    backordered: Decimal = ZERO  # open backorders this warehouse fills first from what arrives (in `projected`)
    in_transit: Decimal = ZERO  # on its way from other warehouses: transfers shipped or requested (in `projected`)


USAGE_DAYS = 90  # the window of past shipments replenishment takes the daily usage from


def _rules_scope(warehouse_id: uuid.UUID | None, rule: Any = ReorderRule) -> list[Any]:
    """The conditions on `rule` (ReorderRule or an alias of it) of the rules asked about: all, or one
    warehouse's. The reads below join or select the rules themselves rather than list their products:
    a tenant's rules can outnumber the parameters of a statement (see entrepot.db.in_lists)."""
    return [] if warehouse_id is None else [rule.warehouse_id == warehouse_id]


def _daily_usage(uow: UnitOfWork, scope: list[Any], days: int) -> dict[tuple[uuid.UUID, uuid.UUID], Decimal]:
    """Per product × warehouse of the rules, the quantity shipped to customers per day over the last `days`
    days (returns to stock not deducted: they are not demand)."""
    since = clock.today() - timedelta(days=days)
    rows = uow.session.execute(
        select(StockMove.product_id, StockMove.from_warehouse_id, func.sum(StockMove.quantity))
        .join(ReorderRule, (ReorderRule.product_id == StockMove.product_id)
              & (ReorderRule.warehouse_id == StockMove.from_warehouse_id))
        .where(StockMove.kind == MoveKind.ISSUE, StockMove.effective_date > since, *scope)
        .group_by(StockMove.product_id, StockMove.from_warehouse_id))
    return {(pid, wid): quantity / days for pid, wid, quantity in rows}


def _available_by_rule(uow: UnitOfWork, rules: list[ReorderRule], scope: list[Any]
                       ) -> dict[tuple[uuid.UUID, uuid.UUID], Decimal]:
    """What is available (on hand − reserved in stock locations, as `core.stock_available` counts it)
    for every rule's product and warehouse, in one query joining the rules rather than one per rule.
    Expired lots are left out: they are never allocated nor shipped, so they cover no demand."""
    out: dict[tuple[uuid.UUID, uuid.UUID], Decimal] = dict.fromkeys(
        ((r.product_id, r.warehouse_id) for r in rules), ZERO)
    for pid, wid, on_hand, reserved in uow.session.execute(
            select(StockBalance.product_id, StockBalance.warehouse_id, StockBalance.on_hand, StockBalance.reserved)
            .join(ReorderRule, (ReorderRule.product_id == StockBalance.product_id)
                  & (ReorderRule.warehouse_id == StockBalance.warehouse_id))
            .outerjoin(Lot, Lot.id == StockBalance.lot_id)
            .where(StockBalance.location_kind == LocationKind.STOCK, *scope,
                   or_(Lot.expiry_date.is_(None), Lot.expiry_date >= clock.today()))):
        if (pid, wid) in out:
            out[(pid, wid)] += on_hand - reserved
    return out


def _inbound_by_rule(uow: UnitOfWork, scope: list[Any]) -> dict[tuple[uuid.UUID, uuid.UUID], Decimal]:
    """What other warehouses are sending each rule's warehouse: the stock in its in-transit location
    (transfers shipped, not yet received) and the requested transfers to it (reserved or backordered at
    their source, which counts them there). Coming anyway, so not to be bought again."""
    out: dict[tuple[uuid.UUID, uuid.UUID], Decimal] = defaultdict(lambda: ZERO)
    for pid, wid, on_hand in uow.session.execute(
            select(StockBalance.product_id, StockBalance.warehouse_id, StockBalance.on_hand)
            .join(ReorderRule, (ReorderRule.product_id == StockBalance.product_id)
                  & (ReorderRule.warehouse_id == StockBalance.warehouse_id))
            .where(StockBalance.location_kind == LocationKind.IN_TRANSIT, StockBalance.on_hand != 0, *scope)):
        out[(pid, wid)] += on_hand
    for pid, wid, quantity in uow.session.execute(
            select(Transfer.product_id, Transfer.to_warehouse_id, Transfer.quantity)
            .join(ReorderRule, (ReorderRule.product_id == Transfer.product_id)
                  & (ReorderRule.warehouse_id == Transfer.to_warehouse_id))
            .where(Transfer.status == TransferStatus.REQUESTED, *scope)):
        out[(pid, wid)] += quantity
    return out


def _backorders_to_fill(uow: UnitOfWork, rules: list[ReorderRule], warehouse_id: uuid.UUID | None
                        ) -> dict[tuple[uuid.UUID, uuid.UUID], Decimal]:
    """Open backorders each rule's warehouse fills from what arrives there: those tied to it (a
    requested transfer leaving it), and the product's others at the first of its rule warehouses in
    allocation priority, so that a backorder is counted once, not at every warehouse."""
    asked = aliased(ReorderRule)  # not correlated with the rules read beside it
    products = select(asked.product_id).where(*_rules_scope(warehouse_id, asked))  # of the rules asked about
    rule_keys = {(r.product_id, r.warehouse_id) for r in rules}
    # Active warehouses only, as allocation ranks them: an inactive one receives nothing.
    rank = {wid: n for n, wid in enumerate(uow.session.scalars(
        select(Warehouse.id).where(Warehouse.active.is_(True)).order_by(Warehouse.priority, Warehouse.code)))}
    # The first among all the product's rule warehouses, not only those asked about (suggestions for
    # one warehouse): a backorder counts where it counts in the full list, wherever one looks.
    every_rule = select(ReorderRule.product_id, ReorderRule.warehouse_id)
    if warehouse_id is not None:
        every_rule = every_rule.where(ReorderRule.product_id.in_(products))
    first: dict[uuid.UUID, uuid.UUID] = {}
    for pid, wid in sorted(uow.session.execute(every_rule).all(), key=lambda k: rank.get(k[1], len(rank))):
        if wid in rank:
            first.setdefault(pid, wid)
    out: dict[tuple[uuid.UUID, uuid.UUID], Decimal] = defaultdict(lambda: ZERO)
    for pid, wid, quantity in uow.session.execute(
            select(StockDemand.product_id, StockDemand.warehouse_id, func.sum(StockDemand.backordered))
            .where(StockDemand.product_id.in_(products), StockDemand.status == "open",
                   StockDemand.backordered > 0)
            .group_by(StockDemand.product_id, StockDemand.warehouse_id)):
        target = first.get(pid) if wid is None else wid
        if target is not None and (pid, target) in rule_keys:
            out[(pid, target)] += quantity
    return out


def replenishment_suggestions(uow: UnitOfWork, warehouse_id: object | None = None,
                              usage_days: int = USAGE_DAYS) -> list[Suggestion]:
    """For every reorder rule whose projected stock (on hand − reserved + in transit to it from other
    warehouses + on order − the open backorders the warehouse will fill first), less what is expected to
    ship during the supplier's lead time, is at or below the reorder point: enough to be back at the
    order-up-to level (safety stock on top) when the order arrives, rounded up to the supplier's pack size
    and minimum, from the cheapest current supplier.
    The lead-time demand is the daily usage (shipments of the last `usage_days` days) times the lead time."""
    from entrepot.parties import service as parties

    if isinstance(usage_days, bool) or not isinstance(usage_days, int) or not 1 <= usage_days <= 3650:
        raise invalid("usage_days", "a whole number of days, 1 to 3,650", "range")
    wid = None if warehouse_id is None else as_uuid(warehouse_id, "warehouse_id")
    scope = _rules_scope(wid)
    # Not for an inactive warehouse: it receives nothing (its rules stay for when it opens again).
    rules = list(uow.session.scalars(select(ReorderRule).join(Warehouse, Warehouse.id == ReorderRule.warehouse_id)
                                     .where(Warehouse.active.is_(True), *scope)
                                     .order_by(ReorderRule.warehouse_id, ReorderRule.product_id)))
    if not rules:
        return []
    on_order = _on_order(uow, [r.product_id for r in rules])
    usage = _daily_usage(uow, scope, usage_days)
    owed = _backorders_to_fill(uow, rules, wid)
    available = _available_by_rule(uow, rules, scope)
    inbound = _inbound_by_rule(uow, scope)
    today = clock.today()
    items: dict[uuid.UUID, Any] = {}
    costs: dict[uuid.UUID, tuple[bool, Decimal]] = {}
    for item in parties.supplier_items_for(uow, [r.product_id for r in rules], on=today):
        cost = _functional_cost(uow, item, today)
        if item.product_id not in costs or cost < costs[item.product_id]:  # the cheapest per product
            items[item.product_id], costs[item.product_id] = item, cost
    out = []
    for rule in rules:
        key = (rule.product_id, rule.warehouse_id)
        projected = available[key] + inbound.get(key, ZERO) + on_order.get(key, ZERO) - owed.get(key, ZERO)
        item = items.get(rule.product_id)
        lead_time = int(item.lead_time_days or 0) if item is not None else 0
        daily = usage.get(key, ZERO)
        lead_demand = core.quantize_storage(daily * lead_time)
        if projected - lead_demand > rule.reorder_point:
            continue
        need = rule.order_up_to + rule.safety_stock + lead_demand - projected
        if need <= 0:
            continue
        if item is not None:
            pack = item.pack_size if item.pack_size and item.pack_size > 0 else Decimal(1)
            need = max(need, item.min_order_qty or ZERO)
            need = (need / pack).to_integral_value(rounding=ROUND_CEILING) * pack
        out.append(Suggestion(rule.product_id, rule.warehouse_id, item.supplier_id if item else None,
                              item.id if item else None, core.quantize_storage(need), projected, rule.reorder_point,
                              rule.order_up_to, lead_time, item.cost if item else None,
                              item.currency if item else None, core.quantize_storage(daily), lead_demand,
                              today + timedelta(days=lead_time), owed.get(key, ZERO), inbound.get(key, ZERO)))
    return out


def _functional_cost(uow: UnitOfWork, item: Any, on: date) -> tuple[bool, Decimal]:
    """A supplier item's cost, to compare suppliers buying in different currencies: in the functional
    currency at the rate in force `on`. Without a rate it cannot be compared: it ranks after every
    item that can (then by its own number)."""
    try:
        return False, item.cost * rate_on(uow, item.currency, on)
    except NoExchangeRate:
        return True, item.cost


def _on_order(uow: UnitOfWork, product_ids: list[uuid.UUID]) -> dict[tuple[uuid.UUID, uuid.UUID], Decimal]:
    """Open purchase quantities, when purchasing provides them (it sits above inventory, so it
    registers a provider instead of being imported)."""
    provider = ON_ORDER_PROVIDERS[0] if ON_ORDER_PROVIDERS else None
    return provider(uow, product_ids) if provider else {}


ON_ORDER_PROVIDERS: list[Any] = []


def register_on_order_provider(fn: Any) -> None:
    """Purchasing calls this with fn(uow, product_ids) -> {(product_id, warehouse_id): open quantity}."""
    ON_ORDER_PROVIDERS[:] = [fn]


__all__ = [name for name in dir() if not name.startswith("_") and name not in {"WAREHOUSE_KINDS"}]
