"""Events the inventory emits. Quantities and amounts are decimal strings."""

from __future__ import annotations

from entrepot.kernel.events import EventData, event_type


@event_type("warehouse.created.v1")
class WarehouseCreated(EventData):
    """A warehouse (with its locations) was created."""

    warehouse_id: str
    code: str
    name: str


@event_type("warehouse.updated.v1")
class WarehouseUpdated(EventData):
    """A warehouse's details changed."""

    warehouse_id: str
    code: str
    changed: list[str]


@event_type("stock.adjusted.v1")
class StockAdjusted(EventData):
    """On-hand stock was adjusted (manual adjustment, count variance or scrap)."""

    move_id: str
    product_id: str
    warehouse_id: str
    quantity: str
    reason: str
    on_hand: str
    value: str


@event_type("stock.received.v1")
class StockReceived(EventData):
    """Stock was received into a warehouse (purchase receipt, return, transfer arrival)."""

    move_id: str
    product_id: str
    warehouse_id: str
    quantity: str
    unit_cost: str
    reference: str
    lot_id: str | None = None


@event_type("stock.issued.v1")
class StockIssued(EventData):
    """Reserved stock left the warehouse for a customer."""

    demand_type: str
    demand_id: str
    product_id: str
    warehouse_id: str
    quantity: str
    cost: str
    reference: str


@event_type("stock.reserved.v1")
class StockReserved(EventData):
    """Stock was reserved for a demand line; the rest (if any) is backordered."""

    demand_type: str
    demand_id: str
    product_id: str
    requested: str
    reserved: str
    backordered: str


@event_type("stock.released.v1")
class StockReleased(EventData):
    """A demand line's reservations were released and its backorder cancelled."""

    demand_type: str
    demand_id: str
    product_id: str
    released: str


@event_type("stock.backorder_allocated.v1")
class BackorderAllocated(EventData):
    """Arriving stock was allocated to a backordered demand line (oldest promise first)."""

    demand_type: str
    demand_id: str
    product_id: str
    warehouse_id: str
    quantity: str
    still_backordered: str


@event_type("stock.low.v1")
class StockLow(EventData):
    """Available stock of a product in a warehouse fell below its reorder point."""

    product_id: str
    warehouse_id: str
    available: str
    reorder_point: str


@event_type("stock.transferred.v1")
class StockTransferred(EventData):
    """A transfer between warehouses was requested (stock reserved, nothing moved), shipped, received or
    cancelled: `status` says which."""

    transfer_id: str
    status: str
    product_id: str
    from_warehouse_id: str
    to_warehouse_id: str
    quantity: str


@event_type("stock.counted.v1")
class StockCounted(EventData):
    """A cycle count was posted; variances became adjustments."""

    count_id: str
    warehouse_id: str
    location_id: str
    counter: str
    lines: int
    variances: int


@event_type("lot.expiring.v1")
class LotExpiring(EventData):
    """A lot with stock on hand expires within the warning window, or has expired already: `expired` is
    true when its expiry date was past when it was announced (absent on events from before the field)."""

    lot_id: str
    product_id: str
    code: str
    expiry_date: str
    on_hand: str
    expired: bool | None = None
