"""Inventory records created through the API of a given tenant."""

from __future__ import annotations

import uuid
from typing import Any

from tests.factories import example_body, factory
from tests.factories.catalog import create_product


def create_warehouse(api: Any, **overrides: Any) -> dict[str, Any]:
    body = {"code": f"WH-{uuid.uuid4().hex[:8]}", "name": "Main warehouse", **overrides}
    r = api.post("/warehouses", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def adjust(api: Any, warehouse_id: str, product_id: str, quantity: Any, **extra: Any) -> dict[str, Any]:
    r = api.post("/stock/adjustments", json={"warehouse_id": warehouse_id, "product_id": product_id,
                                             "quantity": str(quantity), "reason": "initial", **extra})
    assert r.status_code == 201, r.text
    return r.json()


@factory("warehouse_id")
def make_warehouse(api: Any) -> str:
    return create_warehouse(api)["id"]


@factory("transfer_id")
def make_transfer(api: Any) -> str:
    product = create_product(api)["id"]
    source, target = make_warehouse(api), make_warehouse(api)
    adjust(api, source, product, 5, unit_cost="2.00")
    r = api.post("/transfers", json={"product_id": product, "from_warehouse_id": source,
                                     "to_warehouse_id": target, "quantity": "2"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@factory("count_id")
def make_count(api: Any) -> str:
    r = api.post("/stock-counts", json={"warehouse_id": make_warehouse(api), "counter": "Ana"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@factory("lot_id")
def make_lot(api: Any) -> str:
    product = create_product(api, track_lots=True)["id"]
    r = api.post("/stock/receipts", json={"warehouse_id": make_warehouse(api), "product_id": product,
                                          "quantity": "3", "unit_cost": "1.50", "lot_code": "L-1",
                                          "expiry_date": "2099-01-01"})
    assert r.status_code == 201, r.text
    return r.json()["lot_id"]


@example_body("POST", "/api/v1/stock-counts/{count_id}/post")
def count_post_body(api: Any) -> dict[str, Any]:
    return {"lines": []}


@example_body("POST", "/api/v1/warehouses/{warehouse_id}/locations")
def location_body(api: Any) -> dict[str, Any]:
    return {"code": f"BIN-{uuid.uuid4().hex[:6]}", "name": "Aisle 1, bin 1"}
