"""Catalog records created through the API of a given tenant."""

from __future__ import annotations

import uuid
from typing import Any

from tests.factories import example_body, factory


def product_body(**overrides: Any) -> dict[str, Any]:
    body = {"sku": f"SKU-{uuid.uuid4().hex[:10]}", "name": "Hex bolt M8", "list_price": "12.50",
            "currency": "USD"}
    body.update(overrides)
    return body


def create_product(api: Any, **overrides: Any) -> dict[str, Any]:
    r = api.post("/products", json=product_body(**overrides))
    assert r.status_code == 201, r.text
    return r.json()


@factory("product_id")
def make_product(api: Any) -> str:
    return create_product(api)["id"]


@factory("category_id")
def make_category(api: Any) -> str:
    r = api.post("/categories", json={"code": f"C-{uuid.uuid4().hex[:8]}", "name": "Fasteners"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@factory("channel_listing_id")
def make_channel_listing(api: Any) -> str:
    r = api.post("/channel-listings", json={"channel": "web", "product_id": make_product(api)})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@example_body("PATCH", "/api/v1/products/{product_id}")
def _product_patch(api: Any) -> dict[str, Any]:
    return {"name": "Renamed"}


@example_body("POST", "/api/v1/products/{product_id}/status")
def _product_status(api: Any) -> dict[str, Any]:
    return {"action": "discontinue"}


@example_body("PUT", "/api/v1/products/{product_id}/unit-conversions")
def _unit_conversion(api: Any) -> dict[str, Any]:
    return {"unit": "box", "factor": "12"}


@example_body("PATCH", "/api/v1/categories/{category_id}")
def _category_patch(api: Any) -> dict[str, Any]:
    return {"name": "Renamed"}
