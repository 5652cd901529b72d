"""Back-dated moves: exact moving-average correction without reposting later moves.

A move dated before later outflows (issues, losses) changes the average those
outflows should have left at. Rather than reposting each later move (the
wall other ERPs hit: tens of thousands of reposted entries), we:

1. replay the product × warehouse history in effective-date order in memory
   (one indexed SELECT of a few columns; inflows carry their own value, outflows
   are re-costed at the running average with the same rounding as `value_out`);
2. compare, per category (COGS, adjustment losses, losses of opening stock), the replayed total with
   what was posted so far (the moves' values plus earlier corrections);
3. post the difference once per category (one ledger entry each), record a
   `ValuationCorrection` row and set the warehouse's `ItemCost` to the replayed
   value.

Moves stay immutable; the correction rows explain the difference. The work is
O(moves of that product in that warehouse) arithmetic and O(1) writes.
Transfers out keep the value they carried to the other warehouse (re-costing
them would cascade into the destination); see docs/inventory.md. A FIFO tenant's
replay is `fifo.replay`: the same steps, with cost layers instead of an average.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import BigInteger, case, func, select, type_coerce

from entrepot.catalog.models import Product
from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.audit import audit
from entrepot.inventory.models import (
    INTERNAL_KINDS,
    OPENING_BALANCE,
    ZERO,
    Location,
    LocationKind,
    MoveKind,
    StockMove,
    ValuationCorrection,
)
from entrepot.inventory.services import core, fifo
from entrepot.kernel import clock
from entrepot.kernel.money import STORAGE_PLACES, STORAGE_QUANTUM, minor_unit, quantize_storage, round_money
from entrepot.ledger import posting


def needs_revalue(uow: UnitOfWork, product_id: uuid.UUID, warehouse_id: uuid.UUID, on: date, *,
                  outflow: bool = False) -> bool:
    """A move dated `on` (before today) changes the cost of later outflows: under the moving average
    when some left this warehouse after it; under FIFO always (it also changes which layer comes first,
    and an outflow dated in the past takes from the layers as they were then). A back-dated outflow was
    valued at today's average: it left at the average of its own date, which later inflows changed."""
    if on >= clock.today():
        return False
    return (core.valued_fifo(uow) or has_later_outflows(uow, product_id, warehouse_id, on)
            or (outflow and has_later_inflows(uow, product_id, warehouse_id, on)))


def has_later_outflows(uow: UnitOfWork, product_id: uuid.UUID, warehouse_id: uuid.UUID, on: date) -> bool:
    """True when moves dated after `on` left this warehouse (their cost depends on the new move)."""
    return uow.session.scalar(
        select(StockMove.id).where(StockMove.product_id == product_id, StockMove.from_warehouse_id == warehouse_id,
                                   StockMove.effective_date > on).limit(1)) is not None


def has_later_inflows(uow: UnitOfWork, product_id: uuid.UUID, warehouse_id: uuid.UUID, on: date) -> bool:
    """True when moves dated after `on` entered this warehouse (they changed its average since)."""
    return uow.session.scalar(
        select(StockMove.id).where(StockMove.product_id == product_id, StockMove.to_warehouse_id == warehouse_id,
                                   StockMove.effective_date > on).limit(1)) is not None


def revalue(uow: UnitOfWork, product: Product, warehouse_id: uuid.UUID, trigger: StockMove) -> dict[str, Decimal]:
    """Replay the product's moving average in this warehouse and post the corrections."""
    session = uow.session
    session.flush()
    # Classify in SQL, so the replay reads four small columns per move and no ids. The locations are
    # selected there too, not listed: a warehouse can have more bins than a statement takes parameters.
    # (The query runs on the connection, without the session's tenant criteria: stated here.)
    internal = sorted(k.value for k in INTERNAL_KINDS)
    locations = select(Location.id).where(Location.tenant_id == uow.tenant_id)
    valued_here = locations.where(Location.warehouse_id == warehouse_id, Location.kind.in_(internal))
    valued_elsewhere = locations.where(Location.warehouse_id != warehouse_id, Location.kind.in_(internal))
    customer = locations.where(Location.kind == LocationKind.CUSTOMER)
    inbound = case((StockMove.to_location_id.in_(valued_here), 1), else_=0)
    outbound = case((StockMove.from_location_id.in_(valued_here), 1), else_=0)
    # A loss of opening stock (reason `opening_balance`) was posted against opening balance equity, not the
    # period's inventory adjustments: its correction goes there too.
    opening = (StockMove.kind == MoveKind.ADJUSTMENT) & (StockMove.reason == OPENING_BALANCE)
    category = case((StockMove.to_location_id.in_(customer), "cogs"),
                    (StockMove.to_location_id.in_(valued_elsewhere), "transfer"),
                    (opening, "opening"),
                    else_="adjustment")
    sqlite = session.get_bind().dialect.name == "sqlite"
    # On SQLite read the stored scaled integers and scale them here (cheaper than the column type per row).
    qty_col = type_coerce(StockMove.quantity, BigInteger) if sqlite else StockMove.quantity
    value_col = type_coerce(StockMove.value, BigInteger) if sqlite else StockMove.value
    by_layers = core.valued_fifo(uow)
    columns = (inbound, outbound, category, qty_col, value_col, *((StockMove.effective_date,) if by_layers else ()))
    query = (select(*columns)
             .where(StockMove.product_id == product.id,
                    (StockMove.from_warehouse_id == warehouse_id) | (StockMove.to_warehouse_id == warehouse_id),
                    # Read on the session's connection (no ORM row machinery for what can be 10^5 rows);
                    # that path skips the session's automatic tenant criteria, so it is stated here.
                    StockMove.tenant_id == uow.tenant_id)
             .order_by(StockMove.effective_date, StockMove.created_at, StockMove.id))
    result = session.connection().execute(query)
    # The driver's own tuples: the selected columns need no type processing (ints, a short string, and
    # Decimals or, on SQLite, scaled integers), and building 10^5 result Row objects costs as much as the replay.
    rows = result.cursor.fetchall()
    result.close()
    if by_layers:
        replayed, posted, value, next_unit = fifo.replay(uow, product.id, warehouse_id, rows,
                                                         product.standard_cost or ZERO, core.functional_currency(uow),
                                                         sqlite)
    else:
        replayed, posted, value, next_unit = _replay(rows, product.standard_cost or ZERO,
                                                     core.functional_currency(uow), sqlite)
    for category, amount in session.execute(
            select(ValuationCorrection.category, func.sum(ValuationCorrection.amount))
            .where(ValuationCorrection.product_id == product.id, ValuationCorrection.warehouse_id == warehouse_id)
            .group_by(ValuationCorrection.category)):
        posted[category] += amount or ZERO
    deltas = {c: replayed[c] - posted[c] for c in replayed}
    today = clock.today()
    for category, delta in deltas.items():
        if not delta:
            continue
        session.add(ValuationCorrection(product_id=product.id, warehouse_id=warehouse_id, category=category,
                                        amount=delta, trigger_move_id=trigger.id, moves_replayed=len(rows)))
        if category == "cogs":
            posting.post_shipment_cost(uow, source_id=trigger.id, on=today, amount=delta)
        elif category == "opening":
            posting.post_opening_stock(uow, source_id=trigger.id, on=today, amount=-delta)
        else:
            posting.post_stock_adjustment(uow, source_id=trigger.id, on=today, amount=-delta)
    cost = core.item_cost(uow, product.id, warehouse_id)
    cost.value = value
    # Without stock, the next outflow is costed at `unit_cost`: it must be the replayed one, not the
    # one the moves left when they were posted in another order.
    cost.unit_cost = quantize_storage(cost.value / cost.quantity) if cost.quantity > 0 else next_unit
    session.flush()
    if any(deltas.values()):
        audit(uow, "stock.revalue", "stock_move", trigger.id,
              after={"warehouse_id": str(warehouse_id), "replayed_moves": len(rows),
                     **{f"{c}_correction": str(d) for c, d in deltas.items()}})
    return deltas


def _replay(rows: Sequence[Any], standard_cost: Decimal, currency: str,
            scaled: bool) -> tuple[dict[str, Decimal], dict[str, Decimal], Decimal, Decimal]:
    """The moving average over the rows (inbound, outbound, category, quantity, value) in date order.

    Returns the replayed and the posted outflow values per category, the final value, and the unit
    cost an outflow beyond the stock would take next (`ItemCost.unit_cost`: 0 until stock was held). The
    arithmetic is exactly `core.take_value`'s (same operations, same roundings); it is written out
    inline with local names because it runs once per move (280,000 times for a long history).
    `last_unit` (the average to cost an outflow taken while at or below zero) is only computed when
    such an outflow happens: it is the average of the last state with a positive quantity."""
    money = Decimal(1).scaleb(-minor_unit(currency))
    storage = STORAGE_QUANTUM
    places = -STORAGE_PLACES
    half_up = ROUND_HALF_UP
    quantity = ZERO
    value = ZERO
    last_q: Decimal | None = None
    last_v = ZERO
    replayed = {"cogs": ZERO, "adjustment": ZERO, "opening": ZERO}
    posted = {"cogs": ZERO, "adjustment": ZERO, "opening": ZERO}
    for is_in, is_out, kind, qty, stored in rows:
        if is_in == is_out:
            continue  # within the warehouse (in transit → stock), or not valued here
        if scaled:
            qty, stored = Decimal(qty).scaleb(places), Decimal(stored).scaleb(places)
        if is_in:
            quantity += qty
            value += stored
            if quantity > 0:
                last_q, last_v = quantity, value
            continue
        if quantity > 0:
            last_q, last_v = quantity, value
        if kind == "transfer":
            out = stored  # a transfer keeps the value it carried
        else:
            if quantity > 0 and qty <= quantity:
                out = value if qty == quantity else (value * qty / quantity).quantize(money, rounding=half_up)
            elif quantity > 0:
                unit = (value / quantity).quantize(storage, rounding=half_up)
                out = value + ((qty - quantity) * unit).quantize(money, rounding=half_up)
            else:
                unit = (last_v / last_q).quantize(storage, rounding=half_up) if last_q is not None else ZERO
                out = (qty * (unit or standard_cost)).quantize(money, rounding=half_up)
            replayed[kind] += out
            posted[kind] += stored
        quantity -= qty
        value -= out
    next_unit = (last_v / last_q).quantize(storage, rounding=half_up) if last_q is not None else ZERO
    return replayed, posted, value, next_unit


def _cost_out(quantity: Decimal, value: Decimal, qty: Decimal, last_unit: Decimal, currency: str) -> Decimal:
    """The same arithmetic as `core.value_out`, on the replayed state."""
    if quantity > 0 and qty <= quantity:
        return value if qty == quantity else round_money(value * qty / quantity, currency)
    if quantity > 0:
        unit = quantize_storage(value / quantity)
        return value + round_money((qty - quantity) * unit, currency)
    return round_money(qty * last_unit, currency)
