"""Suppliers and supplier items over HTTP."""

from __future__ import annotations

from tests.factories.catalog import create_product
from tests.factories.parties import create_supplier


def test_supplier_crud(api):
    s = create_supplier(api, code="BW", payment_terms_days=45)
    assert s["payment_terms_days"] == 45
    assert api.post("/suppliers", json={"code": "BW", "name": "x", "currency": "USD"}).status_code == 409
    assert api.patch(f"/suppliers/{s['id']}", json={"name": "Bolt Works BV"}).json()["name"] == "Bolt Works BV"
    assert [x["code"] for x in api.get("/suppliers", params={"q": "bolt"}).json()["items"]] == ["BW"]
    assert api.post(f"/suppliers/{s['id']}/archive").json()["archived_at"]


def test_the_supplier_list_filters_by_currency(api):
    create_supplier(api, code="US-S")
    create_supplier(api, code="EU-S", currency="EUR")
    assert [s["code"] for s in api.get("/suppliers", params={"currency": "EUR"}).json()["items"]] == ["EU-S"]
    assert [s["code"] for s in api.get("/suppliers", params={"currency": "USD"}).json()["items"]] == ["US-S"]


def test_supplier_item_rules(api):
    sid = create_supplier(api)["id"]
    pid = create_product(api)["id"]
    base = {"supplier_id": sid, "product_id": pid, "cost": "3.10", "currency": "EUR", "pack_size": 12,
            "min_order_qty": 24, "lead_time_days": 10, "supplier_sku": "BW-77",
            "valid_from": "2026-01-01", "valid_to": "2026-12-31"}
    r = api.post("/supplier-items", json=base)
    assert r.status_code == 201, r.text
    assert r.json()["pack_size"] == "12" and r.json()["cost"] == "3.10"
    bad = {
        "cost": {**base, "cost": "-1"},
        "pack_size": {**base, "pack_size": 0},
        "valid_to": {**base, "valid_to": "2025-01-01"},
        "currency": {**base, "currency": "ZZZ"},
        "product_id": {**base, "product_id": sid},  # an id, but no product's: 404 naming the field
    }
    for field, body in bad.items():
        r = api.post("/supplier-items", json=body)
        assert r.status_code == (404 if field == "product_id" else 422), (field, r.text)
        assert field in [e["field"] for e in r.json()["errors"]]
    assert len(api.get("/supplier-items", params={"product_id": pid}).json()["items"]) == 1


def test_a_supplier_item_is_known_by_supplier_product_and_start_an_open_start_included(api):
    # given an item with no start date and one from 2027-01-01
    sid, pid = create_supplier(api)["id"], create_product(api)["id"]
    base = {"supplier_id": sid, "product_id": pid, "cost": "3.10", "currency": "EUR"}
    first = api.post("/supplier-items", json=base).json()
    dated = api.post("/supplier-items", json={**base, "valid_from": "2027-01-01", "cost": "3.30"}).json()
    # then a second one with the same start, open or dated, or a change onto another's start: 409 on valid_from
    for r in (api.post("/supplier-items", json={**base, "cost": "2.90"}),
              api.post("/supplier-items", json={**base, "valid_from": "2027-01-01"}),
              api.patch(f"/supplier-items/{dated['id']}", json={"valid_from": None})):
        assert r.status_code == 409, r.text
        assert r.json()["field"] == "valid_from" and (first["id"] in r.text or dated["id"] in r.text), r.text
    # so the export reads back as it was
    exported = api.get("/exports/supplier-items")
    assert exported.status_code == 200 and exported.text.count("\n") == 3, exported.text
    again = api.client.post("/api/v1/imports/supplier-items", headers=api.headers,
                            files={"file": ("items.csv", exported.text.encode(), "text/csv")})
    assert again.status_code == 200 and again.json()["unchanged"] == 2, again.text
