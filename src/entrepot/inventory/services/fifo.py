"""FIFO valuation: cost layers beside the moving average's `ItemCost`.

With the tenant setting `valuation_method` = `fifo`, every inflow into a
warehouse's valuation adds a layer (its quantity and value, dated by the move),
and every outflow takes from the oldest layers first: a whole layer gives its
whole remaining value, part of one gives its share rounded to the currency's
minor unit, and the rest stays with the layer. So the layers always add up
exactly to the warehouse's `ItemCost` (quantity and value), which stays the one
figure the inventory account, the valuation report and `inventory check` read.

Negative stock (when the tenant allows it): what leaves beyond the layers is
costed at the last layer's unit cost (with no layer, as the moving average
would: its last unit cost, else the product's standard cost); the warehouse's
value goes below zero with no layer, and the next inflow's layer is what is
left once that deficit is covered, so the sum holds again.

Back-dated moves re-cost the later outflows by replaying the warehouse's moves
in date order (`replay`), as for the moving average: one correction per
category, and the layers rebuilt from the replay. Transfers out keep the value
they carried (re-costing them would cascade into the destination); the
difference stays in the source's oldest layer.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Protocol

from sqlalchemy import delete, insert, select, text, tuple_

from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.tenant_settings import guard_setting
from entrepot.inventory.models import ZERO, CostLayer, StockMove
from entrepot.kernel import clock
from entrepot.kernel.errors import Conflict
from entrepot.kernel.ids import new_id
from entrepot.kernel.money import STORAGE_PLACES, STORAGE_QUANTUM, minor_unit, quantize_storage, round_money


class _Valued(Protocol):
    """An `ItemCost`, or the issue path's stand-in for one."""

    quantity: Decimal
    value: Decimal
    unit_cost: Decimal


_BATCH = 32


def _oldest_first(uow: UnitOfWork, product_id: uuid.UUID, warehouse_id: uuid.UUID) -> Iterator[CostLayer]:
    """The warehouse's layers of the product, oldest first, read a few at a time (an outflow usually
    needs one or two of what can be thousands). The caller holds the product's lock."""
    after: tuple[date, uuid.UUID] | None = None
    while True:
        query = select(CostLayer).where(CostLayer.product_id == product_id, CostLayer.warehouse_id == warehouse_id)
        if after is not None:
            query = query.where(tuple_(CostLayer.effective_date, CostLayer.id) > after)
        batch = list(uow.session.scalars(query.order_by(CostLayer.effective_date, CostLayer.id).limit(_BATCH)))
        yield from batch
        if len(batch) < _BATCH:
            return
        after = (batch[-1].effective_date, batch[-1].id)


def add(uow: UnitOfWork, cost: _Valued, product_id: uuid.UUID, warehouse_id: uuid.UUID, quantity: Decimal,
        value: Decimal, on: date | None) -> None:
    """After an inflow of `quantity` worth `value` was added to `cost`: its layer.

    While the warehouse held stock, its layers added up to `cost`, so the layer is the inflow itself.
    From zero or below there are no layers, and the layer is the whole of `cost` once it is above zero
    (what is left of the inflow once the deficit, or a residue, is covered)."""
    held_before = cost.quantity - quantity
    if held_before > 0:
        layer_qty, layer_value = quantity, value
    elif cost.quantity > 0:
        layer_qty, layer_value = cost.quantity, cost.value
    else:
        return  # still short after the inflow (negative stock): no layer yet
    uow.session.add(CostLayer(product_id=product_id, warehouse_id=warehouse_id, effective_date=on or clock.today(),
                              quantity=layer_qty, value=layer_value))


def take(uow: UnitOfWork, cost: _Valued, product_id: uuid.UUID, warehouse_id: uuid.UUID,
         standard_cost: Decimal | None, quantity: Decimal, currency: str) -> Decimal:
    """`quantity` leaves the warehouse: its value from the oldest layers; `cost` updated as `take_value` does.

    Beyond the layers, the rest is costed at the last layer's unit cost, which `cost.unit_cost` then keeps
    for later outflows while the stock is at or below zero (`replay` does the same)."""
    value = ZERO
    left = quantity
    if cost.quantity > 0:
        for layer in _oldest_first(uow, product_id, warehouse_id):
            cost.unit_cost = quantize_storage(layer.value / layer.quantity)
            if left >= layer.quantity:
                value += layer.value
                left -= layer.quantity
                uow.session.delete(layer)
            else:
                part = round_money(layer.value * left / layer.quantity, currency)
                value += part
                layer.quantity -= left
                layer.value -= part
                left = ZERO
            if left <= 0:
                break
    if left > 0:  # beyond the layers: negative stock, allowed by the tenant
        value += round_money(left * (cost.unit_cost or standard_cost or ZERO), currency)
    cost.quantity -= quantity
    cost.value -= value
    return value


def replay(uow: UnitOfWork, product_id: uuid.UUID, warehouse_id: uuid.UUID, rows: Sequence[Any],
           standard_cost: Decimal, currency: str,
           scaled: bool) -> tuple[dict[str, Decimal], dict[str, Decimal], Decimal, Decimal]:
    """FIFO over the rows (inbound, outbound, category, quantity, value, effective date) in date order, as
    `valuation._replay` does for the moving average, with `add` and `take`'s arithmetic; the warehouse's
    layers are replaced by those left. Returns the replayed and the posted outflow values per category,
    the final value, and the unit cost an outflow beyond the layers would take next (`take`'s
    `cost.unit_cost`)."""
    money = Decimal(1).scaleb(-minor_unit(currency))
    places = -STORAGE_PLACES
    half_up = ROUND_HALF_UP
    layers: deque[list[Any]] = deque()  # [quantity, value, effective date], oldest first
    quantity = ZERO
    value = ZERO
    last_unit = ZERO  # as `cost.unit_cost` in `take`: the last layer's unit cost, 0 before any
    replayed = {"cogs": ZERO, "adjustment": ZERO, "opening": ZERO}
    posted = {"cogs": ZERO, "adjustment": ZERO, "opening": ZERO}
    for is_in, is_out, kind, qty, stored, on in rows:
        if is_in == is_out:
            continue  # within the warehouse, or not valued here
        if scaled:  # SQLite's stored forms: scaled integers and ISO dates
            qty, stored = Decimal(qty).scaleb(places), Decimal(stored).scaleb(places)
        if is_in:
            if scaled and isinstance(on, str):
                on = date.fromisoformat(on)
            if quantity > 0:
                layers.append([qty, stored, on])
            elif quantity + qty > 0:
                layers.append([quantity + qty, value + stored, on])
            quantity += qty
            value += stored
            continue
        out = ZERO
        left = qty
        if quantity > 0:
            while left > 0 and layers:
                layer = layers[0]
                last_unit = (layer[1] / layer[0]).quantize(STORAGE_QUANTUM, rounding=half_up)
                if left >= layer[0]:
                    out += layer[1]
                    left -= layer[0]
                    layers.popleft()
                else:
                    part = (layer[1] * left / layer[0]).quantize(money, rounding=half_up)
                    out += part
                    layer[0] -= left
                    layer[1] -= part
                    left = ZERO
        if left > 0:
            out += (left * (last_unit or standard_cost)).quantize(money, rounding=half_up)
        if kind == "transfer":
            if layers:
                layers[0][1] += out - stored  # it keeps the value it carried; the difference stays here
            out = stored
        else:
            replayed[kind] += out
            posted[kind] += stored
        quantity -= qty
        value -= out
    uow.session.execute(delete(CostLayer).where(CostLayer.product_id == product_id,
                                                CostLayer.warehouse_id == warehouse_id))
    if layers:
        # Core executemany (a long history can leave tens of thousands of layers: ORM objects would cost
        # seconds); rows carry their tenant, as the ORM's flush would stamp it.
        uow.session.execute(insert(CostLayer.__table__), [
            {"id": new_id(), "tenant_id": uow.tenant_id, "product_id": product_id, "warehouse_id": warehouse_id,
             "effective_date": on, "quantity": layer_qty, "value": layer_value}
            for layer_qty, layer_value, on in layers])
    return replayed, posted, value, last_unit


def valuation_key(tenant_id: uuid.UUID) -> int:
    """The tenant's valuation lock (PostgreSQL advisory): every stock change holds it shared
    (`core.lock_products`), a change of valuation method exclusively."""
    digest = hashlib.blake2b(tenant_id.bytes + b"valuation_method", digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def _refuse_change_after_first_move(uow: UnitOfWork, name: str, old: Any, new: Any) -> None:
    # A tenant that has moved stock is refused at once, without queueing for the lock below (which
    # would hold up every new stock change of the tenant behind the longest one in flight).
    _refuse_if_moved(uow, name, old, new)
    if uow.session.get_bind().dialect.name == "postgresql":
        # Wait for the stock changes in flight, and hold off new ones until this commits: a move
        # committed just after the check would be valued by the old method. (SQLite: writers are
        # serialised already.)
        uow.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": valuation_key(uow.tenant_id)})
        _refuse_if_moved(uow, name, old, new)


def _refuse_if_moved(uow: UnitOfWork, name: str, old: Any, new: Any) -> None:
    if uow.session.scalar(select(StockMove.id).limit(1)) is not None:
        raise Conflict(f"{name} cannot change from {old} to {new}: stock has already moved and is valued by "
                       f"{old}")


guard_setting("valuation_method", _refuse_change_after_first_move)
