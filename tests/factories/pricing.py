"""Price lists, entries and contract prices created through the API of a given tenant."""

from __future__ import annotations

import uuid
from typing import Any

from tests.factories import example_body, factory
from tests.factories.catalog import make_product
from tests.factories.parties import make_customer


def create_price_list(api: Any, **overrides: Any) -> dict[str, Any]:
    body = {"code": f"PL-{uuid.uuid4().hex[:8]}", "name": "Trade prices", "currency": "USD", **overrides}
    r = api.post("/price-lists", json=body)
    assert r.status_code == 201, r.text
    return r.json()


@factory("price_list_id")
def make_price_list(api: Any) -> str:
    return create_price_list(api)["id"]


@factory("price_list_entry_id")
def make_price_list_entry(api: Any) -> str:
    pl = make_price_list(api)
    r = api.post(f"/price-lists/{pl}/entries", json={"entries": [{"product_id": make_product(api), "value": "9"}]})
    assert r.status_code == 201, r.text
    return r.json()[0]["id"]


@factory("contract_price_id")
def make_contract_price(api: Any) -> str:
    r = api.post("/contract-prices", json={"customer_id": make_customer(api), "product_id": make_product(api),
                                           "unit_price": "8.00"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@example_body("PATCH", "/api/v1/price-lists/{price_list_id}")
def _price_list_patch(api: Any) -> dict[str, Any]:
    return {"priority": 5}


@example_body("POST", "/api/v1/price-lists/{price_list_id}/entries")
def _entries(api: Any) -> dict[str, Any]:
    return {"entries": [{"product_id": make_product(api), "value": "9"}]}
