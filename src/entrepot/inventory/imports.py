"""Bulk import and export of stock on hand: a distributor's opening stock, loaded from its old system.

One CSV row per product × warehouse (× storage location × lot): `sku`, `warehouse` (code), `quantity`
(required), `location` (a stock location's code in that warehouse; default its main stock location),
`lot_code` and `expiry_date` (lot-tracked products), `unit_cost` (what stock added is valued at; default
the moving average, else the product's standard cost).

A row says what is on hand there, not what to add: the import posts the difference as an adjustment
with the reason `opening_balance` (Dr inventory / Cr opening balance equity, or the reverse), so loading
the same file twice changes nothing, and export → import changes nothing. Serial-tracked products are
not imported (each unit needs its serial: receive them over the API).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import IO, Any

from sqlalchemy import and_, select

from entrepot.catalog.csvio import ImportReport, Progress, read_rows, write_rows
from entrepot.catalog.models import Product
from entrepot.catalog.service import get_products_by_sku
from entrepot.db import in_lists
from entrepot.db.uow import UnitOfWork
from entrepot.inventory.models import (
    OPENING_BALANCE,
    ItemCost,
    Location,
    LocationKind,
    Lot,
    StockBalance,
    Warehouse,
)
from entrepot.inventory.services import core
from entrepot.inventory.services.stock import adjust_stock
from entrepot.kernel.errors import DomainError
from entrepot.kernel.money import ZERO, format_quantity, quantize_storage

STOCK_COLUMNS = ("sku", "warehouse", "location", "lot_code", "expiry_date", "quantity", "unit_cost")
REFERENCE = "stock import"
# a field the stock service names → the file's column (a refusal naming no field, such as stock that is
# reserved and cannot go, is on the quantity)
_COLUMN = {"product_id": "sku", "warehouse_id": "warehouse", "location_id": "location", "": "quantity"}


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def import_stock(uow: UnitOfWork, stream: IO[str], *, dry_run: bool = False,
                 progress: Progress | None = None) -> ImportReport:
    """Set on-hand stock to what each row says (the difference posted as an `opening_balance` adjustment).
    The caller commits when the report has no errors and it is not a dry run."""
    report = ImportReport("stock", dry_run=dry_run)
    rows = list(read_rows(stream, report, columns=STOCK_COLUMNS, required=("sku", "warehouse", "quantity")))
    products = get_products_by_sku(uow, {r["sku"] for _, r in rows if r.get("sku")})
    warehouses = {w.code: w for w in uow.session.scalars(select(Warehouse))}
    locations = {(loc.warehouse_id, loc.code): loc for loc in uow.session.scalars(
        select(Location).where(Location.kind == LocationKind.STOCK.value, Location.active.is_(True)))}
    main_stock: dict[uuid.UUID, Location] = {}
    seen: dict[tuple[Any, Any, Any, str], int] = {}
    todo: list[tuple[int, Product, Warehouse, Location, dict[str, str], Decimal, Decimal | None, date | None]] = []
    negative_allowed = core.negative_stock_allowed(uow)
    for line, row in rows:
        errors = len(report.errors)
        product = products.get(row.get("sku", ""))
        if product is None:
            report.add(line, "sku", f"no product {row.get('sku', '')!r}", "exists")
        elif product.track_serials:
            report.add(line, "sku", f"product {product.sku} is serial-tracked: receive it with its serials "
                                    "(POST /stock/receipts)", "serials")
        warehouse = warehouses.get(row.get("warehouse", ""))
        if warehouse is None:
            report.add(line, "warehouse", f"no warehouse {row.get('warehouse', '')!r}", "exists")
        location = None
        if warehouse is not None and row.get("location"):
            # as created (`BIN-1`) or in full, as export writes it (`W1/BIN-1`)
            location = (locations.get((warehouse.id, row["location"]))
                        or locations.get((warehouse.id, f"{warehouse.code}/{row['location']}")))
            if location is None:
                report.add(line, "location", f"no stock location {row['location']!r} in warehouse "
                                             f"{warehouse.code}", "exists")
        elif warehouse is not None:
            if warehouse.id not in main_stock:
                main_stock[warehouse.id] = core.location_of(uow, warehouse.id, LocationKind.STOCK)
            location = main_stock[warehouse.id]
        quantity = _decimal(row.get("quantity", ""))
        if quantity is None or (quantity < 0 and not negative_allowed):
            # a tenant that allows negative stock exports it so, and its export must load back
            report.add(line, "quantity", "a number, zero or more (what is on hand)", "non_negative")
        unit_cost = _decimal(row["unit_cost"]) if row.get("unit_cost") else None
        if row.get("unit_cost") and (unit_cost is None or unit_cost < 0):
            report.add(line, "unit_cost", "a number, zero or more", "non_negative")
        expiry = None
        if row.get("expiry_date"):
            try:
                expiry = date.fromisoformat(row["expiry_date"])
            except ValueError:
                report.add(line, "expiry_date", "a date (YYYY-MM-DD)", "date")
        # the stock the row names, as found (the main location left blank or named by its code is one place)
        key = (product.id if product else row.get("sku", ""), warehouse.id if warehouse else row.get("warehouse", ""),
               location.id if location else row.get("location", ""), row.get("lot_code", ""))
        if key in seen:
            report.add(line, "sku", f"the same stock as row {seen[key]} (sku, warehouse, location, lot)",
                       "unique")
        seen.setdefault(key, line)
        if (len(report.errors) == errors and product is not None and warehouse is not None and location is not None
                and quantity is not None):
            todo.append((line, product, warehouse, location, row, quantity, unit_cost, expiry))
    if progress:
        progress(len(rows))
    # the figures are read under the products' locks (PostgreSQL), so an order allocating or shipping
    # meanwhile cannot move them between the read and the adjustment that sets them
    core.lock_products(uow, [p.id for _, p, *_ in todo])
    held = _held(uow, [p.id for _, p, *_ in todo])
    expiries = _lot_expiries(uow, [p.id for _, p, *_ in todo])
    for line, product, warehouse, where, row, quantity, unit_cost, expiry in todo:
        lot_key = (product.id, row.get("lot_code", ""))
        if expiry is not None and expiries.get(lot_key, expiry) not in (None, expiry):
            # as an adjustment of the lot refuses it, also where the quantity is already right
            report.add(line, "expiry_date", f"lot {lot_key[1]} already expires on {expiries[lot_key]}", "mismatch")
            continue
        now, reserved = held.get((product.id, where.id, row.get("lot_code", "")), (ZERO, ZERO))
        if quantity == now:
            report.unchanged += 1
            continue
        if quantity < now and quantity < reserved:
            # as a count: whatever the negative stock setting, what is promised to orders stays
            report.add(line, "quantity", f"{product.sku}: {format_quantity(reserved)} reserved there, cannot set "
                                         f"{format_quantity(quantity)} on hand; release or ship the reservations "
                                         "first", "insufficient_stock")
            continue
        try:
            adjust_stock(uow, warehouse_id=warehouse.id, product_id=product.id, quantity=quantity - now,
                         reason=OPENING_BALANCE, unit_cost=unit_cost, lot_code=row.get("lot_code") or None,
                         expiry_date=expiry, reference=REFERENCE, location_id=where.id)
        except core.LocationLocked as exc:  # a count under way there: the row's place is the fault
            report.add(line, "location", exc.detail, exc.code)
            continue
        except DomainError as exc:
            report.add_refusal(line, exc, _COLUMN)
            continue
        # each adjustment is audited and evented (stock.adjusted.v1) as one made by hand
        if now == 0:
            report.created += 1
        else:
            report.updated += 1
    return report


def _held(uow: UnitOfWork, product_ids: Iterable[uuid.UUID],
          ) -> dict[tuple[uuid.UUID, uuid.UUID, str], tuple[Decimal, Decimal]]:
    """(On hand, reserved) per (product, stock location, lot code) of these products."""
    found: dict[tuple[uuid.UUID, uuid.UUID, str], tuple[Decimal, Decimal]] = {}
    for ids in in_lists.slices(product_ids):
        for product_id, location_id, lot_code, on_hand, reserved in uow.session.execute(
                select(StockBalance.product_id, StockBalance.location_id, Lot.code, StockBalance.on_hand,
                       StockBalance.reserved)
                .outerjoin(Lot, Lot.id == StockBalance.lot_id)
                .where(StockBalance.product_id.in_(ids),
                       StockBalance.location_kind == LocationKind.STOCK.value)):
            found[(product_id, location_id, lot_code or "")] = (on_hand, reserved)
    return found


def _lot_expiries(uow: UnitOfWork, product_ids: Iterable[uuid.UUID]) -> dict[tuple[uuid.UUID, str], date | None]:
    """The expiry date of each lot of these products, by (product, lot code)."""
    found: dict[tuple[uuid.UUID, str], date | None] = {}
    for ids in in_lists.slices(product_ids):
        for product_id, code, expiry in uow.session.execute(
                select(Lot.product_id, Lot.code, Lot.expiry_date).where(Lot.product_id.in_(ids))):
            found[(product_id, code)] = expiry
    return found


def export_stock(uow: UnitOfWork, stream: IO[str]) -> int:
    """Stock on hand in the import's columns (`unit_cost` is the average there, what a unit added without a
    cost is valued at): only what is on hand, ordered by sku, warehouse, location and lot."""
    rows = uow.session.execute(
        select(Product.sku, Warehouse.code, Location.code, Lot.code, Lot.expiry_date, StockBalance.on_hand,
               ItemCost.quantity, ItemCost.value, ItemCost.unit_cost, Product.standard_cost)
        .join(Product, Product.id == StockBalance.product_id)
        .join(Warehouse, Warehouse.id == StockBalance.warehouse_id)
        .join(Location, Location.id == StockBalance.location_id)
        .outerjoin(Lot, Lot.id == StockBalance.lot_id)
        .outerjoin(ItemCost, and_(ItemCost.product_id == StockBalance.product_id,
                                  ItemCost.warehouse_id == StockBalance.warehouse_id))
        .where(StockBalance.location_kind == LocationKind.STOCK.value, StockBalance.on_hand != 0)
        .order_by(Product.sku, Warehouse.code, Location.code, Lot.code))

    def as_row(r: Any) -> dict[str, Any]:
        sku, warehouse, location, lot, expiry, quantity, valued, value, last_cost, standard_cost = r
        # as `core.current_unit_cost`: under FIFO the item cost's unit_cost is the last layer's, not the average
        cost = quantize_storage(value / valued) if valued is not None and valued > 0 else (
            last_cost or standard_cost)
        # numbers and dates as values, not text: the CSV writer guards text against formulas ('-3)
        return {"sku": sku, "warehouse": warehouse, "location": location, "lot_code": lot, "expiry_date": expiry,
                "quantity": Decimal(quantity), "unit_cost": Decimal(cost) if cost is not None else None}

    return write_rows(stream, STOCK_COLUMNS, (as_row(r) for r in rows))
