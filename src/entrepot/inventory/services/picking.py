"""Pick lists: where in the warehouse to take what is reserved for demand lines.

A read, changing nothing. For each demand line it walks the line's open
reservations in the order an issue takes them (`issue_reserved_many`: earliest
lot expiry first, then oldest reservation), so the picker is sent to the very
location and lot the shipment will be issued from.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy import select

from entrepot.catalog import service as catalog
from entrepot.db.uow import UnitOfWork
from entrepot.inventory.models import Location, Lot, Reservation, SerialNumber, Warehouse

ZERO = Decimal(0)


@dataclass(frozen=True)
class PickItem:
    """One demand line to pick: `quantity` of it, after `skip` units that earlier documents
    (another open shipment of the same line) will take from the same reservations."""

    demand_id: uuid.UUID
    quantity: Decimal
    skip: Decimal = ZERO
    warehouse_id: uuid.UUID | None = None  # only what is reserved there (a shipment from one warehouse)


@dataclass
class Pick:
    """Take `quantity` from one location (and lot). `serials`: for serial-tracked products, the
    serial numbers an issue would take now; serials are not reserved one by one, so a shipment
    shipped earlier from the same place may take them first."""

    warehouse_id: uuid.UUID
    warehouse_code: str
    location_id: uuid.UUID
    location_code: str
    lot_id: uuid.UUID | None
    lot_code: str | None
    expiry_date: date | None
    quantity: Decimal
    serials: list[str] = field(default_factory=list)
    being_counted: bool = False  # the location's count is open: shipping it is refused until it is posted


@dataclass
class PickPlan:
    demand_id: uuid.UUID
    quantity: Decimal
    picks: list[Pick]
    short: Decimal  # asked for but not (or no longer) reserved: nothing to pick for it


def pick_plan(uow: UnitOfWork, *, demand_type: str, items: Sequence[PickItem]) -> list[PickPlan]:
    """Where to pick each item, one plan per item in order. A fixed number of queries."""
    session = uow.session
    ids = list({item.demand_id for item in items})
    rows = session.execute(
        select(Reservation, Location.code, Warehouse.code, Lot.code, Lot.expiry_date, Location.count_locked)
        .join(Location, Location.id == Reservation.location_id)
        .join(Warehouse, Warehouse.id == Reservation.warehouse_id)
        .outerjoin(Lot, Lot.id == Reservation.lot_id)
        .where(Reservation.demand_type == demand_type, Reservation.demand_id.in_(ids),
               Reservation.status == "open", Reservation.quantity > 0)
    ).all() if ids else []
    far = date.max
    # the order: earliest expiry first (no lot or no expiry last), then oldest reservation
    rows.sort(key=lambda r: (r[4] or far, r[0].created_at, r[0].id))
    by_demand: dict[uuid.UUID, list[tuple[Reservation, str, str, str | None, date | None, bool]]] = defaultdict(list)
    for r in rows:
        by_demand[r[0].demand_id].append(tuple(r))  # type: ignore[arg-type]
    products = catalog.get_products(uow, {r[0].product_id for r in rows}) if rows else {}
    # units of each (product, location, lot) already spoken for, earlier in this walk: the next serials
    taken: dict[tuple[uuid.UUID, uuid.UUID, uuid.UUID | None], int] = defaultdict(int)
    used: dict[uuid.UUID, Decimal] = defaultdict(lambda: ZERO)  # per reservation, by earlier items
    plans: list[PickPlan] = []
    serial_wanted: list[tuple[Pick, uuid.UUID, int, int]] = []
    for item in items:
        skip, remaining = item.skip, item.quantity
        picks: list[Pick] = []
        for res, location_code, warehouse_code, lot_code, expiry, counted in by_demand.get(item.demand_id, []):
            if remaining <= 0:
                break
            if item.warehouse_id is not None and res.warehouse_id != item.warehouse_id:
                continue
            free = res.quantity - used[res.id]
            passed = min(free, skip)
            skip -= passed
            free -= passed
            take = min(free, remaining)
            used[res.id] += passed + take
            product = products.get(res.product_id)
            tracked = bool(getattr(product, "track_serials", False))
            place = (res.product_id, res.location_id, res.lot_id)
            if tracked:
                taken[place] += int(passed)
            if take <= 0:
                continue
            pick = Pick(res.warehouse_id, warehouse_code, res.location_id, location_code, res.lot_id, lot_code,
                        expiry, take, being_counted=bool(counted))
            picks.append(pick)
            if tracked:
                serial_wanted.append((pick, res.product_id, taken[place], int(take)))
                taken[place] += int(take)
            remaining -= take
        plans.append(PickPlan(item.demand_id, item.quantity, picks, max(remaining, ZERO)))
    if serial_wanted:
        _suggest_serials(uow, serial_wanted, taken)
    return plans


def _suggest_serials(uow: UnitOfWork, wanted: list[tuple[Pick, uuid.UUID, int, int]],
                     taken: dict[tuple[uuid.UUID, uuid.UUID, uuid.UUID | None], int]) -> None:
    """The serials at each place in the order the issue takes them (oldest first), one query per place."""
    for product_id, location_id, lot_id in {(pid, pick.location_id, pick.lot_id) for pick, pid, _, _ in wanted}:
        query = select(SerialNumber.serial).where(SerialNumber.product_id == product_id,
                                                  SerialNumber.location_id == location_id)
        if lot_id is not None:
            query = query.where(SerialNumber.lot_id == lot_id)
        serials = list(uow.session.scalars(query.order_by(SerialNumber.created_at, SerialNumber.serial)
                                           .limit(taken[(product_id, location_id, lot_id)])))
        for pick, pid, offset, count in wanted:
            if (pid, pick.location_id, pick.lot_id) == (product_id, location_id, lot_id):
                pick.serials = serials[offset:offset + count]
