"""A request body naming another tenant's record, by id, is a 404, as the same id in a path is
(API-CONTRACT: "Another tenant's record: 404"). An unknown id answers the same, so nobody learns
whether another tenant has it, and `errors` names the field at fault. Nothing is written.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import FACTORIES, load_all
from tests.factories.sales import order_desk

load_all()

# call, the body (given this tenant's desk `m` and a dict `x` of the other tenant's ids by kind),
# and the field the answer must name. Each body is valid but for the one foreign id.
CASES: list[tuple[str, Any, str]] = [
    ("/sales-orders", lambda m, x: {"customer_id": x["customer_id"],
                                    "lines": [{"product_id": m.product_id, "quantity": "1"}]}, "customer_id"),
    ("/sales-orders", lambda m, x: {"customer_id": m.customer_id,
                                    "lines": [{"product_id": x["product_id"], "quantity": "1"}]},
     "lines[0].product_id"),
    ("/quotes", lambda m, x: {"customer_id": x["customer_id"],
                              "lines": [{"product_id": m.product_id, "quantity": "1"}]}, "customer_id"),
    ("/quotes", lambda m, x: {"customer_id": m.customer_id,
                              "lines": [{"product_id": x["product_id"], "quantity": "1"}]}, "lines[0].product_id"),
    ("/prices/quote", lambda m, x: {"customer_id": m.customer_id,
                                    "lines": [{"product_id": x["product_id"], "quantity": "1"}]},
     "lines[0].product_id"),
    ("/shipments", lambda m, x: {"sales_order_id": x["sales_order_id"]}, "sales_order_id"),
    ("/invoicing-runs", lambda m, x: {"customer_id": x["customer_id"]}, "customer_id"),
    ("/returns", lambda m, x: {"sales_order_id": x["sales_order_id"],
                               "lines": [{"sales_order_line_id": m.customer_id, "quantity": "1"}]}, "sales_order_id"),
    ("/payments", lambda m, x: {"customer_id": x["customer_id"], "amount": "1.00", "currency": "USD"},
     "customer_id"),
    ("/payments", lambda m, x: {"customer_id": m.customer_id, "amount": "1.00", "currency": "USD",
                                "allocations": [{"invoice_id": x["invoice_id"], "amount": "1.00"}]},
     "allocations[0].invoice_id"),
    ("/stock/adjustments", lambda m, x: {"warehouse_id": m.warehouse_id, "product_id": x["product_id"],
                                         "quantity": "1", "reason": "count"}, "product_id"),
    ("/stock/adjustments", lambda m, x: {"warehouse_id": x["warehouse_id"], "product_id": m.product_id,
                                         "quantity": "1", "reason": "count"}, "warehouse_id"),
    ("/stock/receipts", lambda m, x: {"warehouse_id": m.warehouse_id, "product_id": x["product_id"],
                                      "quantity": "1", "unit_cost": "1.00"}, "product_id"),
    ("/stock/scrap", lambda m, x: {"warehouse_id": x["warehouse_id"], "product_id": m.product_id,
                                   "quantity": "1", "reason": "damaged"}, "warehouse_id"),
    ("/transfers", lambda m, x: {"product_id": m.product_id, "from_warehouse_id": m.warehouse_id,
                                 "to_warehouse_id": x["warehouse_id"], "quantity": "1"}, "to_warehouse_id"),
    ("/stock-counts", lambda m, x: {"warehouse_id": x["warehouse_id"], "counter": "kim"}, "warehouse_id"),
    ("/supplier-items", lambda m, x: {"supplier_id": m.supplier_id, "product_id": x["product_id"],
                                      "cost": "1.00", "currency": "USD"}, "product_id"),
    ("/supplier-items", lambda m, x: {"supplier_id": x["supplier_id"], "product_id": m.product_id,
                                      "cost": "1.00", "currency": "USD"}, "supplier_id"),
    ("/contract-prices", lambda m, x: {"customer_id": x["customer_id"], "product_id": m.product_id,
                                       "unit_price": "9.00", "currency": "USD"}, "customer_id"),
    ("/contract-prices", lambda m, x: {"customer_id": m.customer_id, "product_id": x["product_id"],
                                       "unit_price": "9.00"}, "product_id"),
    ("/channel-listings", lambda m, x: {"channel": "web", "product_id": x["product_id"]}, "product_id"),
    ("/products", lambda m, x: {"sku": "REF-1", "name": "Bracket", "list_price": "1.00", "currency": "USD",
                                "category_id": x["category_id"]}, "category_id"),
    ("/ledger/journal-entries", lambda m, x: {
        "date": m.today, "description": "x",
        "lines": [{"account_id": x["account_id"], "debit": "1.00"}, {"account_code": "1000", "credit": "1.00"}]},
     "lines[0].account_id"),
    ("/ledger/journal-entries", lambda m, x: {
        "date": m.today, "description": "x",
        "lines": [{"account_code": "1000", "debit": "1.00", "party_id": x["customer_id"]},
                  {"account_code": "3000", "credit": "1.00"}]}, "lines[0].party_id"),
    ("/ledger/journal-entries", lambda m, x: {
        "date": m.today, "description": "x",
        "lines": [{"account_code": "1000", "debit": "1.00"},
                  {"account_code": "3000", "credit": "1.00", "product_id": x["product_id"]}]}, "lines[1].product_id"),
]


class Mine:
    def __init__(self, api: Any) -> None:
        from entrepot.kernel import clock
        from tests.factories.parties import create_supplier

        desk = order_desk(api, stock=5)
        self.product_id, self.warehouse_id, self.customer_id = desk.product_id, desk.warehouse_id, desk.customer_id
        self.supplier_id = create_supplier(api)["id"]
        self.today = clock.today().isoformat()


@pytest.fixture
def foreign(other_api: Any) -> dict[str, str]:
    kinds = ["customer_id", "product_id", "warehouse_id", "invoice_id", "category_id", "account_id",
             "sales_order_id", "supplier_id"]
    return {kind: FACTORIES[kind](other_api) for kind in kinds}


def _events(api: Any) -> list[dict[str, Any]]:
    """Every event of the tenant, page after page."""
    events: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        r = api.get("/events", params=params)
        assert r.status_code == 200, r.text
        events += r.json()["items"]
        if not r.json()["next_cursor"]:
            return events
        params["after"] = r.json()["next_cursor"]


def test_a_body_naming_another_tenants_record_is_404(api, other_api, foreign):
    # given this tenant's own records, and records of every kind in the other tenant
    mine = Mine(api)
    events_before = _events(api)
    wrong = []
    for path, body_of, field in CASES:
        # when this tenant names one of theirs in a body
        r = api.post(path, json=body_of(mine, foreign))
        # then it is not found, naming the field
        fields = [e.get("field") for e in r.json().get("errors", [])] if r.status_code == 404 else []
        if r.status_code != 404 or field not in fields:
            wrong.append(f"POST {path} {field}: {r.status_code} {r.text[:200]}")
    assert wrong == [], "\n".join(wrong)
    # and nothing was written
    assert _events(api) == events_before


def test_an_unknown_id_in_a_body_answers_as_another_tenants_does(api, other_api, foreign):
    # An id no tenant has gets the same answer as another tenant's, so it tells nothing.
    import uuid

    mine = Mine(api)
    for path, body_of, field in CASES:
        theirs = api.post(path, json=body_of(mine, foreign))
        nobodys = api.post(path, json=body_of(mine, {k: str(uuid.uuid4()) for k in foreign}))
        assert (nobodys.status_code, nobodys.json()["code"]) == (theirs.status_code, theirs.json()["code"]), path
        assert field in [e["field"] for e in nobodys.json().get("errors", [])], (path, nobodys.text)
