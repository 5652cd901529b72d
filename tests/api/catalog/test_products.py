"""Products over HTTP: the contract's POST /products, lists, updates, archival."""

from __future__ import annotations

from decimal import Decimal

from tests.factories.catalog import create_product, product_body
from tests.factories.parties import create_customer


def test_create_product_returns_201_with_id_and_fields(api):
    # when
    r = api.post("/products", json=product_body(sku="BOLT-M8", list_price="12.5", gtin="4006381333931"))
    # then
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["id"]
    assert body["sku"] == "BOLT-M8"
    assert body["list_price"] == "12.50"
    assert body["currency"] == "USD"
    assert body["status"] == "active"
    assert body["unit"] == "each"
    assert body["gtin"] == "4006381333931"
    assert r.headers["etag"]


def test_list_price_accepts_numbers(api):
    r = api.post("/products", json=product_body(list_price=7.25))
    assert r.status_code == 201, r.text
    assert Decimal(r.json()["list_price"]) == Decimal("7.25")


def test_duplicate_sku_is_409_and_writes_nothing(api):
    # given
    create_product(api, sku="DUP-1")
    # when
    r = api.post("/products", json=product_body(sku="DUP-1", name="Other"))
    # then
    assert r.status_code == 409
    listed = api.get("/products", params={"sku": "DUP-1"}).json()["items"]
    assert [p["name"] for p in listed] == ["Hex bolt M8"]


def test_bad_input_is_422_naming_the_field(api):
    cases = {
        "currency": product_body(currency="XXY"),
        "list_price": product_body(list_price="-1"),
        "gtin": product_body(gtin="4006381333932"),
        "unit": product_body(unit="barrel"),
    }
    for field, body in cases.items():
        # when
        r = api.post("/products", json=body)
        # then
        assert r.status_code == 422, (field, r.text)
        assert field in [e["field"] for e in r.json()["errors"]], r.text
        assert r.headers["content-type"].startswith("application/problem+json")
    assert api.get("/products").json()["items"] == []


def test_missing_required_fields_are_422(api):
    r = api.post("/products", json={"sku": "X"})
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"name", "list_price", "currency"} <= fields


def test_search_by_sku_or_name_and_cursor_paging(api):
    # given
    for i in range(5):
        create_product(api, sku=f"WID-{i}", name=f"Widget {i}")
    create_product(api, sku="GAD-1", name="Gadget")
    # when
    first = api.get("/products", params={"q": "wid", "limit": 3}).json()
    second = api.get("/products", params={"q": "wid", "limit": 3, "cursor": first["next_cursor"]}).json()
    # then
    assert len(first["items"]) == 3 and first["next_cursor"]
    assert len(second["items"]) == 2 and second["next_cursor"] is None
    assert {p["sku"] for p in first["items"] + second["items"]} == {f"WID-{i}" for i in range(5)}
    assert [p["sku"] for p in api.get("/products", params={"q": "gadget"}).json()["items"]] == ["GAD-1"]


def test_search_treats_percent_and_underscore_as_text(api):
    # given: "_" and "%" are LIKE wildcards; a SKU may hold "_"
    create_product(api, sku="AB_1", name="Under score")
    create_product(api, sku="ABX1", name="Plain")
    create_product(api, sku="PCT-1", name="100% cotton")
    create_customer(api, code="C_1", name="Under")
    create_customer(api, code="CX1", name="Plain")

    def skus(q):
        return sorted(p["sku"] for p in api.get("/products", params={"q": q}).json()["items"])

    # then
    assert skus("b_1") == ["AB_1"]
    assert skus("_") == ["AB_1"]
    assert skus("%") == ["PCT-1"]
    assert skus("0% c") == ["PCT-1"]
    assert [c["code"] for c in api.get("/customers", params={"q": "c_"}).json()["items"]] == ["C_1"]


def test_patch_with_if_match_and_stale_etag_is_412(api):
    # given
    created = api.post("/products", json=product_body())
    etag = created.headers["etag"]
    pid = created.json()["id"]
    # when
    ok = api.patch(f"/products/{pid}", json={"list_price": "13.00"}, headers={"If-Match": etag})
    stale = api.patch(f"/products/{pid}", json={"list_price": "14.00"}, headers={"If-Match": etag})
    # then
    assert ok.status_code == 200, ok.text
    assert ok.json()["list_price"] == "13.00"
    assert stale.status_code == 412
    assert api.get(f"/products/{pid}").json()["list_price"] == "13.00"


def test_status_changes_follow_the_machine(api):
    pid = create_product(api)["id"]
    r = api.post(f"/products/{pid}/status", json={"action": "reactivate"})
    assert r.status_code == 409
    assert r.json()["allowed_actions"] == ["block", "discontinue"]
    r = api.post(f"/products/{pid}/status", json={"action": "discontinue"})
    assert r.status_code == 200 and r.json()["status"] == "discontinued"


def test_archive_hides_from_list_but_keeps_record(api):
    pid = create_product(api)["id"]
    r = api.post(f"/products/{pid}/archive")
    assert r.status_code == 200 and r.json()["archived_at"]
    assert api.get("/products").json()["items"] == []
    assert api.get(f"/products/{pid}").status_code == 200
    assert len(api.get("/products", params={"include_archived": True}).json()["items"]) == 1
    assert api.patch(f"/products/{pid}", json={"name": "x"}).status_code == 409


def test_product_events_are_recorded(api):
    from sqlalchemy import select

    from entrepot.integration.models import OutboxEvent

    pid = create_product(api)["id"]
    api.patch(f"/products/{pid}", json={"name": "New name"})
    api.post(f"/products/{pid}/archive")
    # read the outbox itself: the /events feed may hold back rows while any transaction on the
    # server is in flight, which other test processes can cause
    with api.tenant.uow(readonly=True) as uow:
        types = list(uow.session.scalars(select(OutboxEvent.type).where(OutboxEvent.subject == f"product/{pid}")
                                         .order_by(OutboxEvent.seq)))
    assert types == ["product.created.v1", "product.updated.v1", "product.archived.v1"]
    audit = api.get("/audit-entries", params={"entity_type": "product", "entity_id": pid}).json()["items"]
    assert [a["action"] for a in audit] == ["product.create", "product.update", "product.archive"]
    assert audit[1]["after"] == {"name": "New name"}


def test_unit_conversions(api):
    pid = create_product(api)["id"]
    r = api.put(f"/products/{pid}/unit-conversions", json={"unit": "box", "factor": 12})
    assert r.status_code == 200, r.text
    assert api.put(f"/products/{pid}/unit-conversions", json={"unit": "crate", "factor": 3}).status_code == 422
    assert api.put(f"/products/{pid}/unit-conversions", json={"unit": "box", "factor": 0}).status_code == 422
    assert api.get(f"/products/{pid}/unit-conversions").json()["items"] == [{"unit": "box", "factor": "12"}]


def test_a_unit_the_product_converts_cannot_become_its_base_unit(api):
    # given a product sold by the each, with a box of 12
    pid = create_product(api)["id"]
    assert api.put(f"/products/{pid}/unit-conversions", json={"unit": "box", "factor": 12}).status_code == 200
    # when its base unit is changed to the box
    r = api.patch(f"/products/{pid}", json={"unit": "box"})
    # then it is refused as setting a box conversion on a box product is (a box would hold 12 boxes)
    assert r.status_code == 422, r.text
    assert [(e["field"], e["rule"]) for e in r.json()["errors"]] == [("unit", "base_unit")]
    assert api.get(f"/products/{pid}").json()["unit"] == "each"
    # another unit may become the base unit
    assert api.patch(f"/products/{pid}", json={"unit": "case"}).json()["unit"] == "case"


def test_idempotency_key_replays_the_first_response(api):
    body = product_body()
    first = api.post("/products", json=body, headers={"Idempotency-Key": "k-1"})
    again = api.post("/products", json=body, headers={"Idempotency-Key": "k-1"})
    other = api.post("/products", json=product_body(), headers={"Idempotency-Key": "k-1"})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert other.status_code == 422
    assert len(api.get("/products").json()["items"]) == 1


def test_malformed_input_never_500(api):
    for body in ({"sku": ["x"], "name": 1, "list_price": {}, "currency": None}, {"list_price": "1e999999"},
                 {"sku": "A", "name": "A", "list_price": "NaN", "currency": "USD"},
                 {"sku": "A", "name": "A", "list_price": "1", "currency": "USD", "category_id": "not-a-uuid"},
                 {"sku": "A" * 300, "name": "A", "list_price": "1", "currency": "USD"}):
        r = api.post("/products", json=body)
        assert r.status_code == 422, (body, r.status_code, r.text)
    assert api.get("/products/not-a-uuid").status_code in (404, 422)


def test_an_archived_category_takes_no_new_product_or_subcategory(api):
    # given a category with a product in it, archived
    tools = api.post("/categories", json={"code": "TOOLS", "name": "Tools"}).json()
    kept = create_product(api, category_id=tools["id"])
    assert api.post(f"/categories/{tools['id']}/archive").status_code == 200
    # then a new product, a product moved into it, or a new subcategory: 422 naming the field
    for r in (api.post("/products", json=product_body(category_id=tools["id"])),
              api.patch(f"/products/{create_product(api)['id']}", json={"category_id": tools["id"]}),
              api.post("/categories", json={"code": "SAWS", "name": "Saws", "parent_id": tools["id"]})):
        assert r.status_code == 422, r.text
        assert [(e["field"], e["rule"]) for e in r.json()["errors"]] in ([("category_id", "archived")],
                                                                         [("parent_id", "archived")])
    # a product already in it stays there, and is still changed and re-imported as before
    r = api.patch(f"/products/{kept['id']}", json={"name": "Kept", "category_id": tools["id"]})
    assert r.status_code == 200 and r.json()["category_id"] == tools["id"]
    exported = api.get("/exports/products")
    assert exported.status_code == 200
    again = api.client.post("/api/v1/imports/products", headers=api.headers,
                            files={"file": ("products.csv", exported.text.encode(), "text/csv")})
    assert again.status_code == 200 and again.json()["updated"] == 0, again.text


def test_a_product_put_in_a_category_being_archived_waits_and_is_refused(api):
    import uuid

    from entrepot.catalog import service
    from tests.concurrency import together

    # given a category
    tools = api.post("/categories", json={"code": "TOOLS", "name": "Tools"}).json()
    # when it is archived and, before that commits, a product is created in it
    archived, created = together(
        api.tenant, lambda uow: service.archive_category(uow, uuid.UUID(tools["id"])).archived_at,
        lambda uow: service.create_product(uow, product_body(category_id=tools["id"])).id)
    # then the product waited for the archive and was refused
    assert archived is not None
    assert [(e.field, e.rule) for e in getattr(created, "errors", [])] == [("category_id", "archived")], created
    assert api.get("/products", params={"category_id": tools["id"]}).json()["items"] == []


def test_a_barcode_names_one_product_and_finds_it(api):
    from tests.api.catalog.test_import_upload import _upload

    # given a product carrying a barcode
    first = create_product(api, sku="SCAN-1", gtin="4006381333931")
    # then a second product with that barcode is refused, by create, by change and by import
    r = api.post("/products", json=product_body(sku="SCAN-2", gtin="4006381333931"))
    assert (r.status_code, r.json()["field"]) == (409, "gtin"), r.text
    second = create_product(api, sku="SCAN-2")
    r = api.patch(f"/products/{second['id']}", json={"gtin": "4006381333931"})
    assert (r.status_code, r.json()["field"]) == (409, "gtin"), r.text
    r = _upload(api, "/imports/products", "sku,name,list_price,currency,gtin\n"
                "SCAN-3,Three,1,USD,4006381333931\nSCAN-4,Four,1,USD,96385074\nSCAN-5,Five,1,USD,96385074\n")
    assert r.status_code == 422, r.text
    assert [(e["row"], e["field"]) for e in r.json()["errors"]] == [(2, "gtin"), (4, "gtin")]
    # and the scanned barcode finds its product, and only it
    assert [p["sku"] for p in api.get("/products", params={"gtin": "4006381333931"}).json()["items"]] == ["SCAN-1"]
    assert [p["sku"] for p in api.get("/products", params={"gtin": "400-6381-333931"}).json()["items"]] == ["SCAN-1"]
    assert api.get("/products", params={"gtin": "96385074"}).json()["items"] == []
    # the product keeps its own barcode through a change, and gives it up when archived
    assert api.patch(f"/products/{first['id']}", json={"gtin": "4006381333931", "name": "x"}).status_code == 200
    assert api.post(f"/products/{first['id']}/archive").status_code == 200
    assert api.patch(f"/products/{second['id']}", json={"gtin": "4006381333931"}).status_code == 200


def test_two_products_created_at_once_with_one_barcode_the_second_is_refused(api):
    from entrepot.catalog import service
    from entrepot.kernel.errors import Conflict
    from tests.concurrency import together

    # when two products with one barcode are created at once (on PostgreSQL, each would find it free)
    first, second = together(
        api.tenant, lambda uow: service.create_product(uow, product_body(sku="AT-1", gtin="4006381333931")).id,
        lambda uow: service.create_product(uow, product_body(sku="AT-2", gtin="4006381333931")).id)
    # then the second waited for the first and was refused
    assert not isinstance(first, BaseException), first
    assert isinstance(second, Conflict) and second.extra.get("field") == "gtin", second
    assert [p["sku"] for p in api.get("/products", params={"gtin": "4006381333931"}).json()["items"]] == ["AT-1"]


def test_prices_read_in_the_places_of_their_own_currency(api):
    # given a product priced in yen, a customer in Kuwaiti dinars with a credit limit, and a contract
    # price in yen
    product = create_product(api, list_price="1500", currency="JPY", standard_cost="900")
    assert (product["list_price"], product["standard_cost"]) == ("1500", "900")
    customer = create_customer(api, currency="KWD", credit_limit="1000.1")
    assert customer["credit_limit"] == "1000.100"
    # then every read says them so, as the events do, and a price with more places keeps them
    assert api.get(f"/products/{product['id']}").json()["list_price"] == "1500"
    created = next(e for e in api.get("/events").json()["items"] if e["type"] == "product.created.v1")
    assert created["data"]["list_price"] == "1500"
    assert api.get(f"/customers/{customer['id']}").json()["credit_limit"] == "1000.100"
    costly = create_product(api, list_price="12.125", currency="USD")
    assert costly["list_price"] == "12.125"
    assert create_product(api, list_price="12.5", currency="USD")["list_price"] == "12.50"
