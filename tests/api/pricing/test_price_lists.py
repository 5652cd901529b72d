"""Price list and contract price management: the 422 rules and the 409s."""

from __future__ import annotations

from decimal import Decimal

from tests.factories.catalog import create_product
from tests.factories.parties import create_customer
from tests.factories.pricing import create_price_list


def test_overlapping_tiers_are_refused_and_nothing_is_written(api):
    p = create_product(api)["id"]
    # when tiers overlap inside one request
    r = api.post("/price-lists", json={"code": "PL", "name": "x", "currency": "USD", "entries": [
        {"product_id": p, "value": "10", "min_quantity": 0, "max_quantity": 10},
        {"product_id": p, "value": "9", "min_quantity": 5}]})
    # then
    assert r.status_code == 422
    assert r.json()["errors"][0]["rule"] == "overlap"
    assert r.json()["errors"][0]["field"] == "entries[1].min_quantity"
    assert api.get("/price-lists").json()["items"] == []
    # and against existing tiers
    pl = create_price_list(api, entries=[{"product_id": p, "value": "10", "min_quantity": 10}])["id"]
    r = api.post(f"/price-lists/{pl}/entries", json={"entries": [{"product_id": p, "value": "8",
                                                                  "min_quantity": 50}]})
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "overlap"
    r = api.post(f"/price-lists/{pl}/entries", json={"entries": [{"product_id": p, "value": "11",
                                                                  "min_quantity": 0, "max_quantity": 10}]})
    assert r.status_code == 201, r.text
    assert len(api.get(f"/price-lists/{pl}/entries").json()["items"]) == 2


def test_a_price_lists_entries_are_read_a_page_at_a_time(api):
    # given a price list with an entry for each of five products
    products = [create_product(api)["id"] for _ in range(5)]
    pl = create_price_list(api, entries=[{"product_id": p, "value": "7"} for p in products])["id"]
    # when its entries are read two at a time
    pages, cursor = [], None
    while True:
        r = api.get(f"/price-lists/{pl}/entries", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        pages.append([e["product_id"] for e in r.json()["items"]])
        cursor = r.json()["next_cursor"]
        if cursor is None:
            break
    # then every entry comes once, in three pages
    assert [len(page) for page in pages] == [2, 2, 1]
    assert sorted(pid for page in pages for pid in page) == sorted(products)
    assert api.get(f"/price-lists/{pl}/entries", params={"limit": 201}).status_code == 422


def test_price_list_rules(api):
    p = create_product(api)["id"]
    cases = {
        "currency": {"currency": "US"},
        "customer_group": {"scope": "customer_group"},
        "valid_to": {"kind": "promotion", "valid_from": "2026-01-01"},
        "entries[0].value": {"entries": [{"product_id": p, "value": "-1"}]},
        "entries[0].product_id": {"entries": [{"value": "1"}]},
    }
    for field, extra in cases.items():
        r = api.post("/price-lists", json={"code": "X", "name": "x", "currency": "USD", **extra})
        assert r.status_code == 422, (field, r.text)
        assert field in [e["field"] for e in r.json()["errors"]], (field, r.text)
    create_price_list(api, code="DUP")
    assert api.post("/price-lists", json={"code": "DUP", "name": "x", "currency": "USD"}).status_code == 409


def test_contract_prices_may_not_overlap(api):
    p = create_product(api)["id"]
    c = create_customer(api)["id"]
    body = {"customer_id": c, "product_id": p, "unit_price": "9", "valid_from": "2026-01-01",
            "valid_to": "2026-06-30"}
    assert api.post("/contract-prices", json=body).status_code == 201
    r = api.post("/contract-prices", json={**body, "valid_from": "2026-06-01", "valid_to": None})
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "overlap"
    assert api.post("/contract-prices", json={**body, "valid_from": "2026-07-01", "valid_to": None}).status_code == 201
    r = api.post("/contract-prices", json={**body, "currency": "EUR", "valid_from": "2027-07-01"})
    assert r.status_code == 422


def test_price_list_update_archive_and_audit(api):
    pl = api.post("/price-lists", json={"code": "A", "name": "A", "currency": "USD"})
    pid, etag = pl.json()["id"], pl.headers["etag"]
    assert api.patch(f"/price-lists/{pid}", json={"priority": 3}, headers={"If-Match": etag}).json()["priority"] == 3
    assert api.patch(f"/price-lists/{pid}", json={"priority": 4}, headers={"If-Match": etag}).status_code == 412
    assert api.post(f"/price-lists/{pid}/archive").json()["archived_at"]
    audit = api.get("/audit-entries", params={"entity_type": "price_list", "entity_id": pid}).json()["items"]
    assert [a["action"] for a in audit] == ["price_list.create", "price_list.update", "price_list.archive"]


def test_customer_price_lists(api):
    c = create_customer(api, customer_group="dealers")["id"]
    other = create_customer(api)["id"]
    create_price_list(api, code="ALL")
    create_price_list(api, code="GROUP", scope="customer_group", customer_group="dealers", priority=3)
    create_price_list(api, code="MINE", scope="customer", customer_id=c, priority=5)
    create_price_list(api, code="THEIRS", scope="customer", customer_id=other)
    create_price_list(api, code="EUR", currency="EUR")
    codes = [pl["code"] for pl in api.get(f"/customers/{c}/price-lists").json()["items"]]
    assert codes == ["MINE", "GROUP", "ALL"]


def test_a_list_moved_to_a_customer_of_another_currency_is_refused_as_on_create(api):
    # given a USD list and a customer buying in EUR
    euro_buyer = create_customer(api, currency="EUR")["id"]
    pl = create_price_list(api, code="USD-LIST")
    # when the list is put on that customer, on create or afterwards
    created = api.post("/price-lists", json={"code": "NEW", "name": "x", "currency": "USD", "scope": "customer",
                                             "customer_id": euro_buyer})
    moved = api.patch(f"/price-lists/{pl['id']}", json={"scope": "customer", "customer_id": euro_buyer})
    # then both are refused (the list could never price that customer), and the list is as it was
    assert created.status_code == 422 and created.json()["errors"][0]["rule"] == "currency"
    assert moved.status_code == 422, moved.text
    assert moved.json()["errors"] == [{"field": "customer_id", "rule": "currency",
                                       "message": "the customer buys in EUR, the list is in USD"}]
    assert api.get(f"/price-lists/{pl['id']}").json()["scope"] == "all"
    # a customer of the list's currency is taken
    usd_buyer = create_customer(api)["id"]
    ok = api.patch(f"/price-lists/{pl['id']}", json={"scope": "customer", "customer_id": usd_buyer})
    assert ok.status_code == 200 and ok.json()["customer_id"] == usd_buyer


def test_the_audit_trail_says_which_prices_a_list_had_and_has(api):
    # given a price list made with a price of 10 for a product
    p = create_product(api)["id"]
    pl = create_price_list(api, entries=[{"product_id": p, "value": "10"}])["id"]
    # when its entries are replaced by a price of 8, then another tier is added
    r = api.post(f"/price-lists/{pl}/entries", json={"replace": True, "entries": [
        {"product_id": p, "value": "8", "max_quantity": 50}]})
    assert r.status_code == 201, r.text
    r = api.post(f"/price-lists/{pl}/entries", json={"entries": [{"product_id": p, "value": "7", "min_quantity": 50}]})
    assert r.status_code == 201, r.text
    # then the trail says each price set and each price replaced, not only how many
    audit = api.get("/audit-entries", params={"entity_type": "price_list", "entity_id": pl}).json()["items"]
    created, replaced, added = audit

    def prices(entries):  # type: ignore[no-untyped-def]
        return [(e["product_id"], Decimal(e["value"]), Decimal(e["min_quantity"])) for e in entries]

    assert created["action"] == "price_list.create"
    assert prices(created["after"]["entries"]) == [(p, Decimal(10), 0)]
    assert replaced["action"] == "price_list.entries.replace"
    assert prices(replaced["before"]["entries"]) == [(p, Decimal(10), 0)]
    assert prices(replaced["after"]["entries"]) == [(p, Decimal(8), 0)]
    assert added["action"] == "price_list.entries.add"
    assert added["before"] is None
    assert prices(added["after"]["entries"]) == [(p, Decimal(7), 50)]


def test_two_overlapping_contract_prices_created_at_once_the_second_is_refused(api):
    from entrepot.pricing import service
    from tests.concurrency import together

    # given a customer and a product
    p = create_product(api)["id"]
    c = create_customer(api)["id"]
    body = {"customer_id": c, "product_id": p, "unit_price": "9", "valid_from": "2026-01-01"}
    # when two contracts for them, open-ended and overlapping, are created at once (on PostgreSQL, each
    # would find no other)
    first, second = together(api.tenant, lambda uow: service.create_contract_price(uow, body).id,
                             lambda uow: service.create_contract_price(uow, {**body, "unit_price": "8",
                                                                              "valid_from": "2026-06-01"}).id)
    # then the second waited for the first and was refused: one contract prices the customer
    assert not isinstance(first, BaseException), first
    assert [(e.field, e.rule) for e in getattr(second, "errors", [])] == [("valid_from", "overlap")], second
    listed = api.get("/contract-prices", params={"customer_id": c, "product_id": p}).json()["items"]
    assert [x["unit_price"] for x in listed] == ["9.00"]
