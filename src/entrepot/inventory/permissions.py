"""Inventory permissions (`domain.noun.verb`)."""

from __future__ import annotations

WAREHOUSE_READ = "inventory.warehouse.read"
WAREHOUSE_MANAGE = "inventory.warehouse.manage"
STOCK_READ = "inventory.stock.read"
STOCK_ADJUST = "inventory.stock.adjust"
STOCK_RECEIVE = "inventory.stock.receive"
STOCK_COUNT = "inventory.stock.count"
TRANSFER_READ = "inventory.transfer.read"
TRANSFER_MANAGE = "inventory.transfer.manage"
VALUATION_READ = "inventory.valuation.read"
REPLENISHMENT_READ = "inventory.replenishment.read"
REPLENISHMENT_MANAGE = "inventory.replenishment.manage"
LOT_READ = "inventory.lot.read"
