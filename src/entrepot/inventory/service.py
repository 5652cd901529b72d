"""The inventory's public service interface: what other domains call.

Order-to-cash: `allocate`, `release`, `reserved_quantity`, `backordered_quantity`,
`issue_reserved`, `issue_reserved_many`, `receive_return`. Purchasing: `receive_stock`,
`register_on_order_provider`. Everything else is used by this package's
routes and CLI.
"""

from __future__ import annotations

from entrepot.inventory.services import picking as picking  # pick lists: picking.pick_plan
from entrepot.inventory.services.allocation import (
    AllocationResult,
    Demand,
    IssueResult,
    LotIssue,
    ReservationInfo,
    allocate,
    backordered_quantity,
    fill_backorders,
    issue_reserved,
    issue_reserved_many,
    release,
    reserved_quantity,
)
from entrepot.inventory.services.core import (
    ExpiredLot,
    InsufficientStock,
    LocationLocked,
    NotReserved,
    SerialInStock,
    get_warehouse,
    stock_available,
)
from entrepot.inventory.services.reports import (
    Discrepancy,
    ExpiringLot,
    LocationStock,
    LotTrace,
    Suggestion,
    Valuation,
    ValuationLine,
    WarehouseStock,
    announce_expiring_lots_everywhere,
    check_balances,
    get_lot,
    move_query,
    register_on_order_provider,
    replenishment_suggestions,
    report_expiring_lots,
    set_reorder_rule,
    stock_at,
    stock_by_location,
    stock_levels,
    trace_lot,
    valuation,
)
from entrepot.inventory.services.stock import (
    adjust_stock,
    cancel_count,
    create_transfer,
    get_count,
    get_transfer,
    post_count,
    receive_return,
    receive_stock,
    receive_transfer,
    scrap_stock,
    start_count,
)
from entrepot.inventory.services.warehouses import (
    create_location,
    create_warehouse,
    ensure_virtual_locations,
    list_locations,
    update_warehouse,
)

__all__ = [
    "AllocationResult", "Demand", "Discrepancy", "ExpiredLot", "ExpiringLot", "InsufficientStock", "IssueResult",
    "LocationLocked",
    "LocationStock", "LotIssue", "LotTrace", "NotReserved", "ReservationInfo", "SerialInStock", "Suggestion",
    "Valuation", "ValuationLine", "WarehouseStock", "adjust_stock", "allocate",
    "announce_expiring_lots_everywhere", "backordered_quantity",
    "cancel_count", "check_balances", "create_location", "create_transfer", "create_warehouse",
    "ensure_virtual_locations",
    "fill_backorders", "get_count", "get_lot", "get_transfer", "get_warehouse", "issue_reserved", "issue_reserved_many",
    "list_locations",
    "move_query", "post_count", "receive_return", "receive_stock", "receive_transfer", "register_on_order_provider",
    "release", "replenishment_suggestions", "report_expiring_lots", "reserved_quantity", "scrap_stock",
    "set_reorder_rule", "start_count", "stock_at", "stock_available", "stock_by_location", "stock_levels",
    "trace_lot", "update_warehouse", "valuation",
]
