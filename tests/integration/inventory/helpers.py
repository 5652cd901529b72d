"""Set-up for inventory service tests: products and warehouses straight through the services."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from entrepot.catalog import service as catalog
from entrepot.inventory import service as inventory


def product(tenant: Any, **overrides: Any) -> uuid.UUID:
    with tenant.uow() as uow:
        p = catalog.create_product(uow, {"sku": f"SKU-{uuid.uuid4().hex[:10]}", "name": "Widget",
                                         "list_price": "10.00", "currency": "USD", **overrides})
        uow.commit()
        return p.id


def warehouse(tenant: Any, code: str | None = None, **extra: Any) -> uuid.UUID:
    with tenant.uow() as uow:
        w = inventory.create_warehouse(uow, {"code": code or f"W{uuid.uuid4().hex[:6]}", "name": "Warehouse",
                                             **extra})
        uow.commit()
        return w.id


def stock(tenant: Any, warehouse_id: uuid.UUID, product_id: uuid.UUID, quantity: Any, unit_cost: Any = "1.00",
          **extra: Any) -> None:
    with tenant.uow() as uow:
        inventory.adjust_stock(uow, warehouse_id=warehouse_id, product_id=product_id, quantity=quantity,
                               reason="initial", unit_cost=unit_cost, **extra)
        uow.commit()


def levels(tenant: Any, product_id: uuid.UUID) -> dict[uuid.UUID, inventory.WarehouseStock]:
    with tenant.uow(readonly=True) as uow:
        return {s.warehouse_id: s for s in inventory.stock_levels(uow, product_id)}


def demand(product_id: uuid.UUID, quantity: Any, **extra: Any) -> inventory.Demand:
    return inventory.Demand("sales_order_line", uuid.uuid4(), product_id, Decimal(str(quantity)), **extra)
