"""Inventory HTTP API: warehouses, stock, adjustments, receipts, transfers, counts, lots,
valuation and replenishment. Thin: parse, call a service, commit, render."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request, Response
from sqlalchemy import select

from entrepot.api.csv_routes import add_csv_routes
from entrepot.api.deps import Requires, RequiresActor
from entrepot.api.etag import check_if_match, set_etag
from entrepot.api.pagination import Page, paginate
from entrepot.api.reads import read_row
from entrepot.db.uow import UnitOfWork
from entrepot.inventory import imports, service
from entrepot.inventory import permissions as perms
from entrepot.inventory.models import Lot, ReorderRule, StockCount, StockMove, Transfer, Warehouse
from entrepot.inventory.schemas import (
    AdjustmentCreate,
    CountCreate,
    CountPost,
    CountRead,
    DiscrepancyRead,
    LocationCreate,
    LocationRead,
    LocationStockRead,
    LotRead,
    LotTraceRead,
    ReceiptCreate,
    ReorderRuleIn,
    ReorderRuleRead,
    ScrapCreate,
    StockAtRead,
    StockMoveRead,
    SuggestionRead,
    SupplierSuggestions,
    TransferCreate,
    TransferRead,
    TransferReceive,
    ValuationLineRead,
    ValuationRead,
    WarehouseCreate,
    WarehouseRead,
    WarehouseStockRead,
    WarehouseUpdate,
)
from entrepot.inventory.states import CountStatus, TransferStatus
from entrepot.kernel.context import Actor
from entrepot.kernel.text import stripped_or_none

router = APIRouter(tags=["inventory"])
Limit = Annotated[int, Query(ge=1, le=200)]


# ------------------------------------------------------------------ warehouses


@router.post("/warehouses", response_model=WarehouseRead, status_code=201,
             summary="Add a warehouse (with its receiving, stock, shipping, in-transit and scrap locations)")
def create_warehouse(body: WarehouseCreate, response: Response,
                     uow: Annotated[UnitOfWork, Requires(perms.WAREHOUSE_MANAGE)]) -> WarehouseRead:
    warehouse = service.create_warehouse(uow, body.model_dump(exclude_none=True))
    uow.commit()
    set_etag(response, warehouse)
    return WarehouseRead.model_validate(warehouse)


@router.get("/warehouses", response_model=Page[WarehouseRead])
def list_warehouses(uow: Annotated[UnitOfWork, Requires(perms.WAREHOUSE_READ)], cursor: str | None = None,
                    limit: Limit = 50, active: bool | None = None) -> Page[WarehouseRead]:
    query = select(Warehouse)
    if active is not None:
        query = query.where(Warehouse.active.is_(active))
    rows, next_cursor = paginate(uow, query, Warehouse.id, cursor=cursor, limit=limit)
    return Page(items=[WarehouseRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/warehouses/{warehouse_id}", response_model=WarehouseRead)
async def read_warehouse(warehouse_id: uuid.UUID,
                        actor: Annotated[Actor, RequiresActor(perms.WAREHOUSE_READ)]) -> Response:
    # at most one worker-thread hop (none on PostgreSQL), one cached statement, pre-serialised (api/reads.py)
    return await read_row(actor, Warehouse, warehouse_id, WarehouseRead, "warehouse")


@router.patch("/warehouses/{warehouse_id}", response_model=WarehouseRead, summary="Change a warehouse (If-Match)")
def update_warehouse(warehouse_id: uuid.UUID, body: WarehouseUpdate, request: Request, response: Response,
                     uow: Annotated[UnitOfWork, Requires(perms.WAREHOUSE_MANAGE)]) -> WarehouseRead:
    warehouse = service.get_warehouse(uow, warehouse_id)
    check_if_match(request, warehouse)
    warehouse = service.update_warehouse(uow, warehouse, body.model_dump(exclude_unset=True))
    uow.commit()
    set_etag(response, warehouse)
    return WarehouseRead.model_validate(warehouse)


@router.post("/warehouses/{warehouse_id}/locations", response_model=LocationRead, status_code=201,
             summary="Add a storage bin to a warehouse")
def create_location(warehouse_id: uuid.UUID, body: LocationCreate,
                    uow: Annotated[UnitOfWork, Requires(perms.WAREHOUSE_MANAGE)]) -> LocationRead:
    location = service.create_location(uow, warehouse_id, body.model_dump())
    uow.commit()
    return LocationRead.model_validate(location)


@router.get("/warehouses/{warehouse_id}/locations", response_model=Page[LocationRead])
def list_locations(warehouse_id: uuid.UUID,
                   uow: Annotated[UnitOfWork, Requires(perms.WAREHOUSE_READ)]) -> Page[LocationRead]:
    return Page(items=[LocationRead.model_validate(loc) for loc in service.list_locations(uow, warehouse_id)])


# ------------------------------------------------------------------ stock


@router.get("/stock", response_model=Page[WarehouseStockRead], summary="Stock of a product per warehouse")
def read_stock(product_id: uuid.UUID, uow: Annotated[UnitOfWork, Requires(perms.STOCK_READ)],
               warehouse_id: uuid.UUID | None = None) -> Page[WarehouseStockRead]:
    levels = service.stock_levels(uow, product_id, warehouse_id)
    return Page(items=[WarehouseStockRead.model_validate(level) for level in levels], next_cursor=None)


@router.get("/stock/locations", response_model=Page[LocationStockRead],
            summary="Stock of a product per location and lot")
def read_stock_by_location(product_id: uuid.UUID,
                           uow: Annotated[UnitOfWork, Requires(perms.STOCK_READ)]) -> Page[LocationStockRead]:
    return Page(items=[LocationStockRead.model_validate(s) for s in service.stock_by_location(uow, product_id)])


@router.get("/stock/as-of", response_model=StockAtRead, summary="On hand per warehouse at the end of a past day")
def read_stock_at(product_id: uuid.UUID, on: date,
                  uow: Annotated[UnitOfWork, Requires(perms.STOCK_READ)]) -> StockAtRead:
    items = service.stock_at(uow, product_id, on)
    return StockAtRead(product_id=product_id, on=on, items=[WarehouseStockRead.model_validate(i) for i in items])


@router.get("/stock/moves", response_model=Page[StockMoveRead], summary="Move history of a product")
def list_moves(product_id: uuid.UUID, uow: Annotated[UnitOfWork, Requires(perms.STOCK_READ)],
               warehouse_id: uuid.UUID | None = None, lot_id: uuid.UUID | None = None, cursor: str | None = None,
               limit: Limit = 50) -> Page[StockMoveRead]:
    rows, next_cursor = paginate(uow, service.move_query(product_id, warehouse_id, lot_id), StockMove.id,
                                 cursor=cursor, limit=limit)
    return Page(items=[StockMoveRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post("/stock/adjustments", response_model=StockMoveRead, status_code=201,
             summary="Adjust stock (signed quantity, reason code)")
def create_adjustment(body: AdjustmentCreate,
                      uow: Annotated[UnitOfWork, Requires(perms.STOCK_ADJUST)]) -> StockMoveRead:
    move = service.adjust_stock(uow, **body.model_dump(exclude_none=True))
    uow.commit()
    return StockMoveRead.model_validate(move)


@router.post("/stock/receipts", response_model=StockMoveRead, status_code=201,
             summary="Receive goods into a warehouse (lot/expiry or serials for tracked products)")
def create_receipt(body: ReceiptCreate,
                   uow: Annotated[UnitOfWork, Requires(perms.STOCK_RECEIVE)]) -> StockMoveRead:
    data = body.model_dump(exclude_none=True)
    data["expiry"] = data.pop("expiry_date", None)
    move = service.receive_stock(uow, **data)
    uow.commit()
    return StockMoveRead.model_validate(move)


@router.post("/stock/scrap", response_model=StockMoveRead, status_code=201, summary="Scrap stock")
def create_scrap(body: ScrapCreate, uow: Annotated[UnitOfWork, Requires(perms.STOCK_ADJUST)]) -> StockMoveRead:
    move = service.scrap_stock(uow, **body.model_dump(exclude_none=True))
    uow.commit()
    return StockMoveRead.model_validate(move)


@router.get("/stock/check", response_model=Page[DiscrepancyRead],
            summary="Recompute balances from the stock ledger and list differences (empty = consistent)")
def check_stock(uow: Annotated[UnitOfWork, Requires(perms.STOCK_READ)]) -> Page[DiscrepancyRead]:
    return Page(items=[DiscrepancyRead.model_validate(d) for d in service.check_balances(uow)])


# ------------------------------------------------------------------ transfers


def _transfer_read(uow: UnitOfWork, transfer: Any) -> TransferRead:
    return TransferRead.of(transfer, service.transfer_reservation(uow, [transfer]).get(transfer.id))


@router.post("/transfers", response_model=TransferRead, status_code=201,
             summary="Ship stock to another warehouse (via in-transit), or request it (reserved at the source)")
def create_transfer(body: TransferCreate, response: Response,
                    uow: Annotated[UnitOfWork, Requires(perms.TRANSFER_MANAGE)]) -> TransferRead:
    transfer = service.create_transfer(uow, **body.model_dump(exclude_none=True))
    read = _transfer_read(uow, transfer)
    uow.commit()
    set_etag(response, transfer)
    return read


@router.get("/transfers", response_model=Page[TransferRead])
def list_transfers(uow: Annotated[UnitOfWork, Requires(perms.TRANSFER_READ)], status: TransferStatus | None = None,
                   cursor: str | None = None, limit: Limit = 50) -> Page[TransferRead]:
    query = select(Transfer)
    if status:
        query = query.where(Transfer.status == status)
    rows, next_cursor = paginate(uow, query, Transfer.id, cursor=cursor, limit=limit)
    held = service.transfer_reservation(uow, rows)
    return Page(items=[TransferRead.of(r, held.get(r.id)) for r in rows], next_cursor=next_cursor)


@router.get("/transfers/{transfer_id}", response_model=TransferRead)
def read_transfer(transfer_id: uuid.UUID, response: Response,
                  uow: Annotated[UnitOfWork, Requires(perms.TRANSFER_READ)]) -> TransferRead:
    transfer = service.get_transfer(uow, transfer_id)
    set_etag(response, transfer)
    return _transfer_read(uow, transfer)


@router.post("/transfers/{transfer_id}/ship", response_model=TransferRead,
             summary="Ship a requested transfer: its reserved stock leaves for the destination's in-transit")
def ship_transfer(transfer_id: uuid.UUID, response: Response,
                  uow: Annotated[UnitOfWork, Requires(perms.TRANSFER_MANAGE)]) -> TransferRead:
    transfer = service.ship_transfer(uow, transfer_id)
    uow.commit()
    set_etag(response, transfer)
    return TransferRead.of(transfer)


@router.post("/transfers/{transfer_id}/cancel", response_model=TransferRead,
             summary="Cancel a requested transfer: its reservation is released")
def cancel_transfer(transfer_id: uuid.UUID, response: Response,
                    uow: Annotated[UnitOfWork, Requires(perms.TRANSFER_MANAGE)]) -> TransferRead:
    transfer = service.cancel_transfer(uow, transfer_id)
    uow.commit()
    set_etag(response, transfer)
    return TransferRead.of(transfer)


@router.post("/transfers/{transfer_id}/receive", response_model=TransferRead,
             summary="Receive a transfer at its destination")
def receive_transfer(transfer_id: uuid.UUID, response: Response,
                     uow: Annotated[UnitOfWork, Requires(perms.TRANSFER_MANAGE)],
                     _body: Annotated[TransferReceive | None, Body()] = None) -> TransferRead:
    transfer = service.receive_transfer(uow, transfer_id)
    uow.commit()
    set_etag(response, transfer)
    return TransferRead.model_validate(transfer)


# ------------------------------------------------------------------ cycle counts


@router.post("/stock-counts", response_model=CountRead, status_code=201,
             summary="Start a cycle count of a warehouse's stock location (locks it)")
def start_count(body: CountCreate, uow: Annotated[UnitOfWork, Requires(perms.STOCK_COUNT)]) -> CountRead:
    count = service.start_count(uow, warehouse_id=body.warehouse_id, counter=body.counter,
                                location_id=body.location_id)
    uow.commit()
    return CountRead.model_validate(count)


@router.get("/stock-counts", response_model=Page[CountRead])
def list_counts(uow: Annotated[UnitOfWork, Requires(perms.STOCK_READ)], status: CountStatus | None = None,
                warehouse_id: uuid.UUID | None = None, location_id: uuid.UUID | None = None,
                cursor: str | None = None, limit: Limit = 50) -> Page[CountRead]:
    """Cycle counts, oldest first; by status (an open one locks its location), warehouse or location."""
    query = select(StockCount)
    if status:
        query = query.where(StockCount.status == status)
    if warehouse_id:
        query = query.where(StockCount.warehouse_id == warehouse_id)
    if location_id:
        query = query.where(StockCount.location_id == location_id)
    rows, next_cursor = paginate(uow, query, StockCount.id, cursor=cursor, limit=limit)
    return Page(items=[CountRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/stock-counts/{count_id}", response_model=CountRead)
def read_count(count_id: uuid.UUID, uow: Annotated[UnitOfWork, Requires(perms.STOCK_READ)]) -> CountRead:
    return CountRead.model_validate(service.get_count(uow, count_id))


@router.post("/stock-counts/{count_id}/post", response_model=CountRead,
             summary="Post counted quantities: variances become adjustments")
def post_count(count_id: uuid.UUID, body: CountPost,
               uow: Annotated[UnitOfWork, Requires(perms.STOCK_COUNT)]) -> CountRead:
    count = service.post_count(uow, count_id, [line.model_dump() for line in body.lines])
    uow.commit()
    return CountRead.model_validate(count)


@router.post("/stock-counts/{count_id}/cancel", response_model=CountRead)
def cancel_count(count_id: uuid.UUID, uow: Annotated[UnitOfWork, Requires(perms.STOCK_COUNT)]) -> CountRead:
    count = service.cancel_count(uow, count_id)
    uow.commit()
    return CountRead.model_validate(count)


# ------------------------------------------------------------------ lots


@router.get("/lots", response_model=Page[LotRead])
def list_lots(uow: Annotated[UnitOfWork, Requires(perms.LOT_READ)], product_id: uuid.UUID | None = None,
              code: str | None = None, expires_before: date | None = None,
              cursor: str | None = None, limit: Limit = 50) -> Page[LotRead]:
    """Lots, oldest first: of a product, by code (a supplier's recall names a lot code, which several
    products may carry), or expiring on or before a day."""
    query = select(Lot)
    if product_id:
        query = query.where(Lot.product_id == product_id)
    if lot_code := stripped_or_none(code):
        query = query.where(Lot.code == lot_code)
    if expires_before:
        query = query.where(Lot.expiry_date <= expires_before)
    rows, next_cursor = paginate(uow, query, Lot.id, cursor=cursor, limit=limit)
    return Page(items=[LotRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/lots/{lot_id}", response_model=LotRead)
def read_lot(lot_id: uuid.UUID, uow: Annotated[UnitOfWork, Requires(perms.LOT_READ)]) -> LotRead:
    return LotRead.model_validate(service.get_lot(uow, lot_id))


@router.get("/lots/{lot_id}/trace", response_model=LotTraceRead,
            summary="Where a lot came from and every customer shipment it went to")
def trace_lot(lot_id: uuid.UUID, uow: Annotated[UnitOfWork, Requires(perms.LOT_READ)]) -> LotTraceRead:
    trace = service.trace_lot(uow, lot_id)
    return LotTraceRead(
        lot=LotRead.model_validate(trace.lot),
        received=[StockMoveRead.model_validate(m) for m in trace.received],
        shipped=[StockMoveRead.model_validate(m) for m in trace.shipped],
        on_hand=[LocationStockRead.model_validate(s) for s in trace.on_hand],
    )


# ------------------------------------------------------------------ valuation


@router.get("/inventory/valuation", response_model=ValuationRead,
            summary="Inventory value per product and warehouse (moving average)")
def read_valuation(uow: Annotated[UnitOfWork, Requires(perms.VALUATION_READ)],
                   warehouse_id: uuid.UUID | None = None) -> ValuationRead:
    report = service.valuation(uow, warehouse_id)
    return ValuationRead(currency=report.currency, total_value=report.total_value,
                         items=[ValuationLineRead.model_validate(line) for line in report.lines])


# ------------------------------------------------------------------ replenishment


@router.post("/reorder-rules", response_model=ReorderRuleRead, status_code=201,
             summary="Set the reorder point and order-up-to level of a product in a warehouse")
def set_reorder_rule(body: ReorderRuleIn,
                     uow: Annotated[UnitOfWork, Requires(perms.REPLENISHMENT_MANAGE)]) -> ReorderRuleRead:
    rule = service.set_reorder_rule(uow, **body.model_dump())
    uow.commit()
    return ReorderRuleRead.model_validate(rule)


@router.get("/reorder-rules", response_model=Page[ReorderRuleRead])
def list_reorder_rules(uow: Annotated[UnitOfWork, Requires(perms.REPLENISHMENT_READ)],
                       warehouse_id: uuid.UUID | None = None, cursor: str | None = None,
                       limit: Limit = 50) -> Page[ReorderRuleRead]:
    query = select(ReorderRule)
    if warehouse_id:
        query = query.where(ReorderRule.warehouse_id == warehouse_id)
    rows, next_cursor = paginate(uow, query, ReorderRule.id, cursor=cursor, limit=limit)
    return Page(items=[ReorderRuleRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/replenishment/suggestions", response_model=Page[SupplierSuggestions],
            summary="Proposed purchase quantities per supplier (from reorder rules)")
def replenishment_suggestions(
        uow: Annotated[UnitOfWork, Requires(perms.REPLENISHMENT_READ)], warehouse_id: uuid.UUID | None = None,
        usage_days: Annotated[int, Query(ge=1, le=3650, description="Days of past shipments the daily usage "
                                         "is averaged over")] = 90) -> Page[SupplierSuggestions]:
    grouped: dict[uuid.UUID | None, list[SuggestionRead]] = defaultdict(list)
    for s in service.replenishment_suggestions(uow, warehouse_id, usage_days):
        grouped[s.supplier_id].append(SuggestionRead.model_validate(s))
    items = [SupplierSuggestions(supplier_id=k, lines=v) for k, v in
             sorted(grouped.items(), key=lambda kv: (kv[0] is None, str(kv[0])))]
    return Page(items=items, next_cursor=None)


# ---------------------------------------------------------------- CSV import / export


add_csv_routes(router, "stock", run_import=imports.import_stock, run_export=imports.export_stock,
               import_permission=perms.STOCK_ADJUST, read_permission=perms.STOCK_READ,
               import_summary="Load stock on hand from a CSV upload (opening stock: each row sets what is on "
                              "hand; all or nothing)",
               export_summary="Stock on hand as CSV (the import's columns)")
