"""Customers, suppliers and supplier items created through the API of a given tenant."""

from __future__ import annotations

import uuid
from typing import Any

from tests.factories import example_body, factory
from tests.factories.catalog import make_product


def customer_body(**overrides: Any) -> dict[str, Any]:
    body = {"code": f"C-{uuid.uuid4().hex[:10]}", "name": "Acme Hardware", "currency": "USD"}
    body.update(overrides)
    return body


def create_customer(api: Any, **overrides: Any) -> dict[str, Any]:
    r = api.post("/customers", json=customer_body(**overrides))
    assert r.status_code == 201, r.text
    return r.json()


def create_supplier(api: Any, **overrides: Any) -> dict[str, Any]:
    body = {"code": f"S-{uuid.uuid4().hex[:10]}", "name": "Bolt Works", "currency": "USD", **overrides}
    r = api.post("/suppliers", json=body)
    assert r.status_code == 201, r.text
    return r.json()


ADDRESS = {"kind": "ship_to", "line1": "1 Dock Road", "city": "Rotterdam", "postal_code": "3011", "country": "NL"}


@factory("customer_id")
def make_customer(api: Any) -> str:
    return create_customer(api)["id"]


@factory("supplier_id")
def make_supplier(api: Any) -> str:
    return create_supplier(api)["id"]


@factory("supplier_item_id")
def make_supplier_item(api: Any) -> str:
    r = api.post("/supplier-items", json={"supplier_id": make_supplier(api), "product_id": make_product(api),
                                          "cost": "4.10", "currency": "USD", "lead_time_days": 5})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@example_body("PATCH", "/api/v1/customers/{customer_id}")
def _customer_patch(api: Any) -> dict[str, Any]:
    return {"name": "Renamed"}


@example_body("POST", "/api/v1/customers/{customer_id}/status")
def _customer_status(api: Any) -> dict[str, Any]:
    return {"action": "hold"}


@example_body("POST", "/api/v1/customers/{customer_id}/addresses")
def _customer_address(api: Any) -> dict[str, Any]:
    return dict(ADDRESS)


@example_body("PATCH", "/api/v1/suppliers/{supplier_id}")
def _supplier_patch(api: Any) -> dict[str, Any]:
    return {"name": "Renamed"}


@example_body("POST", "/api/v1/suppliers/{supplier_id}/addresses")
def _supplier_address(api: Any) -> dict[str, Any]:
    return dict(ADDRESS)


@example_body("PATCH", "/api/v1/supplier-items/{supplier_item_id}")
def _supplier_item_patch(api: Any) -> dict[str, Any]:
    return {"cost": "4.20"}
