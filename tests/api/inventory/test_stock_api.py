"""The inventory's fixed surface: warehouses, adjustments and stock levels over HTTP."""

from __future__ import annotations

import uuid
from datetime import timedelta

from entrepot.kernel import clock
from tests.factories.catalog import create_product
from tests.factories.inventory import adjust, create_warehouse
from tests.factories.parties import create_supplier


def test_creating_a_warehouse_returns_201_with_id_and_its_locations(api):
    # when
    r = api.post("/warehouses", json={"code": "MAIN", "name": "Main warehouse"})
    # then
    assert r.status_code == 201, r.text
    body = r.json()
    assert uuid.UUID(body["id"]) and body["code"] == "MAIN" and body["active"] is True
    kinds = {loc["kind"] for loc in api.get(f"/warehouses/{body['id']}/locations").json()["items"]}
    assert kinds == {"receiving", "stock", "shipping", "in_transit", "scrap"}
    assert api.get(f"/warehouses/{body['id']}").json()["name"] == "Main warehouse"
    assert body["id"] in [w["id"] for w in api.get("/warehouses").json()["items"]]


def test_a_duplicate_warehouse_code_is_409_and_a_missing_name_422(api):
    create_warehouse(api, code="DUP")
    assert api.post("/warehouses", json={"code": "DUP", "name": "Again"}).status_code == 409
    r = api.post("/warehouses", json={"code": "X1"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "name"


def test_updating_a_warehouse_needs_the_current_etag(api):
    # given
    wh = create_warehouse(api)
    etag = api.get(f"/warehouses/{wh['id']}").headers["etag"]
    # when
    ok = api.patch(f"/warehouses/{wh['id']}", json={"priority": 5}, headers={"If-Match": etag})
    stale = api.patch(f"/warehouses/{wh['id']}", json={"priority": 7}, headers={"If-Match": etag})
    # then
    assert ok.status_code == 200 and ok.json()["priority"] == 5
    assert stale.status_code == 412
    assert api.get(f"/warehouses/{wh['id']}").json()["priority"] == 5


def test_adjustments_show_in_stock_per_warehouse_as_decimal_strings(api):
    # given
    product = create_product(api)["id"]
    a, b = create_warehouse(api, code="A"), create_warehouse(api, code="B")
    # when
    adjust(api, a["id"], product, 10, unit_cost="3.00")
    adjust(api, a["id"], product, "-2.5")
    adjust(api, b["id"], product, 4)
    r = api.get(f"/stock?product_id={product}")
    # then
    assert r.status_code == 200
    body = r.json()
    assert body["next_cursor"] is None
    rows = {i["warehouse_code"]: i for i in body["items"]}
    # quantities as everywhere in the API: no trailing zeros
    assert (rows["A"]["on_hand"], rows["A"]["reserved"], rows["A"]["available"]) == ("7.5", "0", "7.5")
    assert rows["A"]["warehouse_id"] == a["id"] and rows["A"]["product_id"] == product
    assert float(rows["B"]["on_hand"]) == 4
    # a warehouse that never held it has no row
    create_warehouse(api, code="C")
    assert {i["warehouse_code"] for i in api.get(f"/stock?product_id={product}").json()["items"]} == {"A", "B"}


def test_stock_of_a_product_never_stocked_is_empty_and_of_an_unknown_one_404(api, other_api):
    # given a product with no stock, and another tenant's product that has stock
    product = create_product(api)["id"]
    theirs = create_product(other_api)["id"]
    adjust(other_api, create_warehouse(other_api)["id"], theirs, 5)
    # then the first has an empty list, and the other tenant's product is not found, like an unknown one
    assert api.get(f"/stock?product_id={product}").json() == {"items": [], "next_cursor": None}
    for unknown in (theirs, str(uuid.uuid4())):
        for path in (f"/stock?product_id={unknown}", f"/stock/locations?product_id={unknown}",
                     f"/stock/as-of?product_id={unknown}&on=2026-01-01"):
            r = api.get(path)
            assert r.status_code == 404, (path, r.text)
            assert r.headers["content-type"].startswith("application/problem+json")
    # the same views of a known product with no stock are empty, not 404
    assert api.get(f"/stock/locations?product_id={product}").json()["items"] == []
    assert api.get(f"/stock/as-of?product_id={product}&on=2026-01-01").json()["items"] == []
    # and with a warehouse: one of this tenant's that never held it is an empty list, even when
    # the product is stocked elsewhere; another tenant's warehouse, or an unknown one, is 404
    adjust(api, create_warehouse(api, code="FULL")["id"], product, 3)
    empty = create_warehouse(api, code="EMPTY")["id"]
    r = api.get(f"/stock?product_id={product}&warehouse_id={empty}")
    assert (r.status_code, r.json()["items"]) == (200, [])
    their_warehouse = create_warehouse(other_api, code="THEIRS")["id"]
    for unknown in (their_warehouse, str(uuid.uuid4())):
        assert api.get(f"/stock?product_id={product}&warehouse_id={unknown}").status_code == 404


def test_negative_stock_is_refused_and_nothing_is_written(api):
    # given
    product = create_product(api)["id"]
    wh = create_warehouse(api)["id"]
    adjust(api, wh, product, 3)
    # when
    r = api.post("/stock/adjustments", json={"warehouse_id": wh, "product_id": product, "quantity": "-5",
                                             "reason": "damage"})
    # then
    assert r.status_code == 409 and r.json()["code"] == "insufficient_stock"
    assert float(api.get(f"/stock?product_id={product}").json()["items"][0]["on_hand"]) == 3
    moves = api.get(f"/stock/moves?product_id={product}").json()["items"]
    assert len(moves) == 1


def test_bad_adjustments_are_422_naming_the_field(api):
    product = create_product(api)["id"]
    wh = create_warehouse(api)["id"]
    cases = [
        ({"warehouse_id": wh, "product_id": product, "quantity": "0", "reason": "x"}, 422, "quantity"),
        ({"warehouse_id": wh, "product_id": product, "quantity": "abc", "reason": "x"}, 422, "quantity"),
        ({"warehouse_id": wh, "product_id": product, "quantity": "1.00001", "reason": "x"}, 422, "quantity"),
        ({"warehouse_id": wh, "product_id": product, "quantity": "1", "reason": ""}, 422, "reason"),
        ({"warehouse_id": wh, "product_id": "nope", "quantity": "1", "reason": "x"}, 422, "product_id"),
        # an id this tenant has no record for is a 404, as in a path, still naming the field
        ({"warehouse_id": str(uuid.uuid4()), "product_id": product, "quantity": "1", "reason": "x"}, 404,
         "warehouse_id"),
        ({"warehouse_id": wh, "product_id": str(uuid.uuid4()), "quantity": "1", "reason": "x"}, 404, "product_id"),
        # a lot for a product kept without lots is refused, not dropped
        ({"warehouse_id": wh, "product_id": product, "quantity": "1", "reason": "x", "lot_id": str(uuid.uuid4())},
         422, "lot_id"),
    ]
    for body, status, field in cases:
        r = api.post("/stock/adjustments", json=body)
        assert r.status_code == status, (body, r.text)
        assert field in [e["field"] for e in r.json()["errors"]], (body, r.text)
    assert api.get(f"/stock?product_id={product}").json()["items"] == []
    assert api.get(f"/stock/moves?product_id={product}").json()["items"] == []


def test_a_boolean_is_not_a_quantity_or_a_price_and_a_wrong_type_names_the_field(api):
    # inputs take strings or numbers; a JSON boolean was read as 1 or 0 (true adjusted stock by one unit),
    # and a list or an object was refused on `quantity.str`, `quantity.int`, `quantity.float` (the union's
    # members), not on the field; so was an id that is not a string (`product_id.uuid`, `product_id.str`)
    product = create_product(api)["id"]
    wh = create_warehouse(api)["id"]
    other = create_warehouse(api)["id"]
    refused = [
        ("/stock/adjustments", {"warehouse_id": wh, "product_id": product, "quantity": True, "reason": "x"},
         "quantity"),
        ("/stock/adjustments", {"warehouse_id": wh, "product_id": product, "quantity": "2", "reason": "x",
                                "unit_cost": True}, "unit_cost"),
        ("/stock/receipts", {"warehouse_id": wh, "product_id": product, "quantity": True, "unit_cost": "1"},
         "quantity"),
        ("/transfers", {"product_id": product, "from_warehouse_id": wh, "to_warehouse_id": other,
                        "quantity": True}, "quantity"),
        ("/products", {"sku": f"B-{uuid.uuid4().hex[:8]}", "name": "n", "list_price": True, "currency": "USD"},
         "list_price"),
        ("/products", {"sku": f"B-{uuid.uuid4().hex[:8]}", "name": "n", "list_price": "1", "currency": "USD",
                       "standard_cost": False}, "standard_cost"),
        ("/stock/adjustments", {"warehouse_id": wh, "product_id": product, "quantity": [], "reason": "x"},
         "quantity"),
        ("/products", {"sku": f"B-{uuid.uuid4().hex[:8]}", "name": "n", "list_price": {}, "currency": "USD"},
         "list_price"),
        ("/stock/adjustments", {"warehouse_id": wh, "product_id": {"id": product}, "quantity": "1", "reason": "x"},
         "product_id"),
        ("/transfers", {"product_id": product, "from_warehouse_id": wh, "to_warehouse_id": None, "quantity": 1},
         "to_warehouse_id"),
    ]
    for path, body, field in refused:
        r = api.post(path, json=body)
        assert r.status_code == 422, (path, body, r.text)
        assert [e["field"] for e in r.json()["errors"]] == [field], (path, body, r.text)
    assert api.get(f"/stock/moves?product_id={product}").json()["items"] == []
    # numbers and strings still work
    for quantity in (2, 2.5, "2"):
        r = api.post("/stock/adjustments", json={"warehouse_id": wh, "product_id": product, "quantity": quantity,
                                                 "reason": "x", "unit_cost": 1})
        assert r.status_code == 201, (quantity, r.text)



def test_another_tenants_warehouse_or_product_cannot_be_adjusted(api, other_api):
    # given this tenant's product and warehouse, and the other tenant's
    product, wh = create_product(api)["id"], create_warehouse(api)["id"]
    their_product, their_wh = create_product(other_api)["id"], create_warehouse(other_api)["id"]
    for body, field in [({"warehouse_id": their_wh, "product_id": product}, "warehouse_id"),
                        ({"warehouse_id": wh, "product_id": their_product}, "product_id")]:
        # when an adjustment names one of theirs
        r = api.post("/stock/adjustments", json=body | {"quantity": "1", "reason": "x"})
        # then it is not found, as an unknown id is, and nothing moves on either side
        assert r.status_code == 404, r.text
        assert r.json()["code"] == "not_found" and [e["field"] for e in r.json()["errors"]] == [field]
    assert api.get(f"/stock/moves?product_id={product}").json()["items"] == []
    assert other_api.get(f"/stock/moves?product_id={their_product}").json()["items"] == []


def test_valuation_report_follows_moving_average(api):
    # given
    product = create_product(api)["id"]
    wh = create_warehouse(api)["id"]
    adjust(api, wh, product, 10, unit_cost="2.00")
    adjust(api, wh, product, 10, unit_cost="4.00")
    # when
    adjust(api, wh, product, -5)
    report = api.get("/inventory/valuation").json()
    # then: average 3.00; 15 units left worth 45.00
    line = next(i for i in report["items"] if i["product_id"] == product)
    assert float(line["quantity"]) == 15 and float(line["value"]) == 45 and float(line["unit_cost"]) == 3
    assert float(report["total_value"]) == 45


def test_lot_tracked_receipts_trace_and_expired_lots(api):
    # given
    product = create_product(api, track_lots=True)["id"]
    wh = create_warehouse(api)["id"]
    # when a receipt lacks its lot
    r = api.post("/stock/receipts", json={"warehouse_id": wh, "product_id": product, "quantity": "2",
                                          "unit_cost": "1"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lot_code"
    # and one has it
    r = api.post("/stock/receipts", json={"warehouse_id": wh, "product_id": product, "quantity": "2",
                                          "unit_cost": "1", "lot_code": "L7", "expiry_date": "2099-12-31"})
    assert r.status_code == 201, r.text
    lot_id = r.json()["lot_id"]
    trace = api.get(f"/lots/{lot_id}/trace").json()
    # then
    assert trace["lot"]["code"] == "L7" and len(trace["received"]) == 1 and trace["shipped"] == []
    detail = api.get(f"/stock/locations?product_id={product}").json()["items"]
    assert detail[0]["lot_code"] == "L7"


def test_a_lot_trace_names_the_locations_that_hold_the_lot(api):
    # given a lot received into a warehouse's main stock and into one of its bins
    product = create_product(api, track_lots=True)["id"]
    wh = create_warehouse(api)
    bin_ = api.post(f"/warehouses/{wh['id']}/locations", json={"code": "A-01", "name": "Aisle A"}).json()
    for location in (None, bin_["id"]):
        r = api.post("/stock/receipts", json={"warehouse_id": wh["id"], "product_id": product, "quantity": "2",
                                              "unit_cost": "1", "lot_code": "R-9", "expiry_date": "2099-12-31",
                                              **({"location_id": location} if location else {})})
        assert r.status_code == 201, r.text
    # when a recall traces it
    trace = api.get(f"/lots/{r.json()['lot_id']}/trace")
    # then each place holding it is named, as the per-location stock names it
    assert trace.status_code == 200, trace.text
    where = {(h["location_id"], h["location_code"], h["on_hand"]) for h in trace.json()["on_hand"]}
    detail = {(d["location_id"], d["location_code"], d["on_hand"])
              for d in api.get(f"/stock/locations?product_id={product}").json()["items"]}
    assert where == detail and {code for _, code, _ in where} == {f"{wh['code']}/STOCK", f"{wh['code']}/A-01"}


def test_lots_are_found_by_code_product_or_expiry(api):
    # given the same lot code on two products (a supplier's recall names the code), and a third lot
    one, two = (create_product(api, track_lots=True)["id"] for _ in range(2))
    wh = create_warehouse(api)["id"]

    def receive(product, code, expiry):
        r = api.post("/stock/receipts", json={"warehouse_id": wh, "product_id": product, "quantity": "1",
                                              "unit_cost": "1", "lot_code": code, "expiry_date": expiry})
        assert r.status_code == 201, r.text
        return r.json()["lot_id"]
    recalled = [receive(one, "R-117", "2099-01-31"), receive(two, "R-117", "2099-06-30")]
    other = receive(one, "R-200", "2100-01-01")

    def found(**params):
        r = api.get("/lots", params=params)
        assert r.status_code == 200, r.text
        return [lot["id"] for lot in r.json()["items"]]
    # then
    assert found(code="R-117") == recalled
    assert found(product_id=one) == [recalled[0], other]
    assert found(expires_before="2099-06-30") == recalled and found(expires_before="2099-01-30") == []
    assert found(code="R-117", product_id=two) == [recalled[1]] and found(limit=1) == [recalled[0]]


def test_transfer_goes_through_in_transit(api):
    product = create_product(api)["id"]
    a, b = create_warehouse(api, code="TA")["id"], create_warehouse(api, code="TB")["id"]
    adjust(api, a, product, 5, unit_cost="2")
    same = api.post("/transfers", json={"product_id": product, "from_warehouse_id": a, "to_warehouse_id": a,
                                        "quantity": "1"})
    assert same.status_code == 422
    r = api.post("/transfers", json={"product_id": product, "from_warehouse_id": a, "to_warehouse_id": b,
                                     "quantity": "2"})
    assert r.status_code == 201, r.text
    stock = {i["warehouse_code"]: i for i in api.get(f"/stock?product_id={product}").json()["items"]}
    assert float(stock["TA"]["on_hand"]) == 3 and float(stock["TB"]["in_transit"]) == 2
    # a transfer is received whole: a quantity is refused, not read as all of it, and nothing is received
    partial = api.post(f"/transfers/{r.json()['id']}/receive", json={"quantity": "1"})
    assert partial.status_code == 422, partial.text
    assert [e["field"] for e in partial.json()["errors"]] == ["quantity"]
    assert api.get(f"/transfers/{r.json()['id']}").json()["status"] == "in_transit"
    done = api.post(f"/transfers/{r.json()['id']}/receive")
    assert done.status_code == 200 and done.json()["status"] == "received"
    again = api.post(f"/transfers/{r.json()['id']}/receive")
    assert again.status_code == 409
    stock = {i["warehouse_code"]: i for i in api.get(f"/stock?product_id={product}").json()["items"]}
    assert float(stock["TB"]["on_hand"]) == 2 and float(stock["TB"]["in_transit"]) == 0


def test_cycle_count_posts_variances_with_the_counter(api):
    product = create_product(api)["id"]
    wh = create_warehouse(api)["id"]
    adjust(api, wh, product, 10)
    count = api.post("/stock-counts", json={"warehouse_id": wh, "counter": "Ana"}).json()
    assert count["lines"] == [{"product_id": product, "lot_id": None, "expected": "10", "counted": None,
                               "variance": None, "move_id": None, "serials_missing": None, "serials_found": None}]
    assert api.post("/stock-counts", json={"warehouse_id": wh, "counter": "Bo"}).status_code == 409
    r = api.post(f"/stock-counts/{count['id']}/post", json={"lines": [{"product_id": product,
                                                                        "counted_quantity": "8"}]})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "posted"
    posted = r.json()["lines"][0]
    assert (posted["expected"], posted["counted"], posted["variance"]) == ("10", "8", "-2")  # as quantities read
    assert float(api.get(f"/stock?product_id={product}").json()["items"][0]["on_hand"]) == 8
    moves = api.get(f"/stock/moves?product_id={product}").json()["items"]
    assert moves[-1]["reason"] == "cycle_count" and "Ana" in moves[-1]["reference"]
    assert api.get("/stock/check").json()["items"] == []
    # and the counts are listed, by status and warehouse (an open one is what locks a location)
    other = api.post("/stock-counts", json={"warehouse_id": wh, "counter": "Bo"}).json()

    def listed(**params):
        page = api.get("/stock-counts", params=params)
        assert page.status_code == 200, page.text
        return [c["id"] for c in page.json()["items"]]
    assert listed() == [count["id"], other["id"]]
    assert listed(status="open") == [other["id"]] and listed(status="posted") == [count["id"]]
    assert listed(warehouse_id=create_warehouse(api)["id"]) == []
    assert listed(limit=1) == [count["id"]]
    assert api.get("/stock-counts", params={"status": "done"}).status_code == 422


def test_a_posted_count_keeps_the_lines_of_its_sheet_that_were_not_counted(api):
    # given a location holding two products, and a count sheet listing both
    counted_one, skipped = create_product(api)["id"], create_product(api)["id"]
    found = create_product(api)["id"]
    wh = create_warehouse(api)["id"]
    adjust(api, wh, counted_one, 10)
    adjust(api, wh, skipped, 4)
    count = api.post("/stock-counts", json={"warehouse_id": wh, "counter": "Ana"}).json()
    assert {ln["product_id"] for ln in count["lines"]} == {counted_one, skipped}
    # when the counter posts one of them, and a product that was not on the sheet
    r = api.post(f"/stock-counts/{count['id']}/post", json={"lines": [
        {"product_id": counted_one, "counted_quantity": "9"}, {"product_id": found, "counted_quantity": "2"}]})
    # then the posted count still shows what was expected of the one not counted, with nothing posted for it
    assert r.status_code == 200, r.text
    lines = {ln["product_id"]: ln for ln in r.json()["lines"]}
    assert (lines[counted_one]["expected"], lines[counted_one]["counted"], lines[counted_one]["variance"]) == \
        ("10", "9", "-1")
    assert lines[skipped] == {"product_id": skipped, "lot_id": None, "expected": "4", "counted": None,
                              "variance": None, "move_id": None, "serials_missing": None, "serials_found": None}
    assert (lines[found]["expected"], lines[found]["variance"]) == ("0", "2")
    assert api.get(f"/stock-counts/{count['id']}").json()["lines"] == r.json()["lines"]
    assert api.get(f"/stock?product_id={skipped}").json()["items"][0]["on_hand"] == "4"


def test_a_count_below_what_is_reserved_is_refused_as_insufficient_stock(api):
    from tests.factories.sales import act, create_order, order_desk

    desk = order_desk(api, stock=10)
    act(api, f"/sales-orders/{create_order(api, desk, 6)['id']}/confirm")  # 6 of the 10 reserved
    count = act(api, "/stock-counts", 201, {"warehouse_id": desk.warehouse_id, "counter": "Ana"})
    r = api.post(f"/stock-counts/{count['id']}/post", json={"lines": [{"product_id": desk.product_id,
                                                                        "counted_quantity": "5"}]})
    assert r.status_code == 409, r.text
    assert (r.json()["code"], r.json()["counted"], r.json()["reserved"]) == ("insufficient_stock", "5", "6")
    assert api.get(f"/stock-counts/{count['id']}").json()["status"] == "open"


def test_an_expired_lot_is_refused_and_an_unknown_lot_named(api):
    product = create_product(api, track_lots=True)["id"]
    wh = create_warehouse(api)["id"]
    r = api.post("/stock/receipts", json={"warehouse_id": wh, "product_id": product, "quantity": "1",
                                          "unit_cost": "1", "lot_code": "OLD", "expiry_date": "2001-01-01"})
    assert r.status_code == 409 and r.json()["code"] == "expired_lot"
    r = api.post("/stock/scrap", json={"warehouse_id": wh, "product_id": product, "quantity": "1",
                                       "reason": "x", "lot_code": "NOPE"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lot_code"
    assert api.get(f"/stock/moves?product_id={product}").json()["items"] == []


def test_replenishment_suggestions_use_supplier_pack_sizes(api):
    product = create_product(api)["id"]
    wh = create_warehouse(api)["id"]
    adjust(api, wh, product, 2)
    r = api.post("/reorder-rules", json={"product_id": product, "warehouse_id": wh, "reorder_point": "5",
                                         "order_up_to": "20"})
    assert r.status_code == 201, r.text
    body = api.get("/replenishment/suggestions").json()
    [group] = body["items"]
    [line] = group["lines"]
    assert line["product_id"] == product and float(line["quantity"]) == 18 and group["supplier_id"] is None
    # when a supplier sells it in packs of 12 with a 7-day lead time
    supplier = create_supplier(api)["id"]
    r = api.post("/supplier-items", json={"supplier_id": supplier, "product_id": product, "cost": "1.10",
                                          "currency": "USD", "pack_size": "12", "lead_time_days": 7})
    assert r.status_code == 201, r.text
    [group] = api.get("/replenishment/suggestions").json()["items"]
    # then 18 rounds up to two packs, proposed to that supplier
    assert group["supplier_id"] == supplier
    assert float(group["lines"][0]["quantity"]) == 24 and group["lines"][0]["lead_time_days"] == 7


def test_replenishment_covers_what_ships_while_the_order_is_on_its_way(api):
    from datetime import timedelta

    from entrepot.kernel import clock
    from tests.factories.sales import order_desk, shipped_order

    # given a product with 40 in stock, of which 27 shipped to customers (9 a month over the last 90 days)
    desk = order_desk(api, stock=40)
    for _ in range(3):
        shipped_order(api, 9, desk)
    rule = {"product_id": desk.product_id, "warehouse_id": desk.warehouse_id, "reorder_point": "5",
            "order_up_to": "20"}
    assert api.post("/reorder-rules", json=rule).status_code == 201
    # then with no supplier lead time, 13 left is above the reorder point: nothing to order
    assert api.get("/replenishment/suggestions").json()["items"] == []
    # when the supplier takes 30 days to deliver: 27 / 90 × 30 = 9 will ship meanwhile, leaving 4 < 5
    supplier = create_supplier(api)["id"]
    r = api.post("/supplier-items", json={"supplier_id": supplier, "product_id": desk.product_id, "cost": "5",
                                          "currency": "USD", "lead_time_days": 30})
    assert r.status_code == 201, r.text
    [group] = api.get("/replenishment/suggestions").json()["items"]
    [line] = group["lines"]
    # then the order brings it back to 20 on arrival: 20 + 9 − 13 = 16
    assert (line["daily_usage"], line["lead_time_demand"], line["quantity"]) == ("0.3", "9", "16")
    assert line["expected_on"] == (clock.today() + timedelta(days=30)).isoformat()
    # and over a usage window of the last 360 days the usage is a quarter: 2.25 ships meanwhile, 10.75 > 5
    assert api.get("/replenishment/suggestions", params={"usage_days": 360}).json()["items"] == []
    assert api.get("/replenishment/suggestions", params={"usage_days": 0}).status_code == 422


def test_replenishment_orders_enough_for_the_backorders_too(api):
    from tests.factories.sales import create_order, order_desk

    # given 5 in stock, an order for 35 confirmed (5 reserved, 30 backordered), and a rule 10 / 50
    desk = order_desk(api, stock=5)
    order = create_order(api, desk, 35)
    assert api.post(f"/sales-orders/{order['id']}/confirm").status_code == 200
    # and a second warehouse with a rule for the product too, further down the allocation priority
    other = create_warehouse(api, priority=200)["id"]
    for wh in (desk.warehouse_id, other):
        assert api.post("/reorder-rules", json={"product_id": desk.product_id, "warehouse_id": wh,
                                                "reorder_point": "10", "order_up_to": "50"}).status_code == 201
    lines = {ln["warehouse_id"]: ln for g in api.get("/replenishment/suggestions").json()["items"]
             for ln in g["lines"]}
    # then the first warehouse orders its 50 plus the 30 owed, and the backorder is counted there only
    first = lines[desk.warehouse_id]
    assert (first["backordered"], first["projected"], first["quantity"]) == ("30", "-30", "80")
    assert (lines[other]["backordered"], lines[other]["quantity"]) == ("0", "50")
    # and asking about the second warehouse alone does not count it there either
    [group] = api.get("/replenishment/suggestions", params={"warehouse_id": other}).json()["items"]
    assert (group["lines"][0]["backordered"], group["lines"][0]["quantity"]) == ("0", "50")


def test_replenishment_counts_stock_on_its_way_from_another_warehouse(api):
    # given a branch with a rule 20 / 60 and nothing on hand, and a central warehouse holding 100
    product = create_product(api)["id"]
    central, branch = create_warehouse(api)["id"], create_warehouse(api)["id"]
    adjust(api, central, product, 100)
    assert api.post("/reorder-rules", json={"product_id": product, "warehouse_id": branch, "reorder_point": "20",
                                            "order_up_to": "60"}).status_code == 201

    def branch_line():
        lines = [ln for g in api.get("/replenishment/suggestions", params={"warehouse_id": branch}).json()["items"]
                 for ln in g["lines"]]
        return lines[0] if lines else None
    assert branch_line()["quantity"] == "60"
    # when central ships 50 to the branch (in transit)
    sent = api.post("/transfers", json={"product_id": product, "from_warehouse_id": central,
                                        "to_warehouse_id": branch, "quantity": "50"})
    assert sent.status_code == 201, sent.text
    # then the branch is above its reorder point once they arrive: nothing to buy
    assert branch_line() is None
    # and with a rule of 60 / 80, it buys only what the 50 on their way leave short
    assert api.post("/reorder-rules", json={"product_id": product, "warehouse_id": branch, "reorder_point": "60",
                                            "order_up_to": "80"}).status_code == 201
    line = branch_line()
    assert (line["in_transit"], line["projected"], line["quantity"]) == ("50", "50", "30")
    # when 20 more are requested from central (reserved there, not shipped yet), they count as coming too
    requested = api.post("/transfers", json={"product_id": product, "from_warehouse_id": central,
                                             "to_warehouse_id": branch, "quantity": "20", "ship": False})
    assert requested.status_code == 201, requested.text
    assert branch_line() is None
    # and once all of it is received, it is on hand instead, counted once
    for transfer in (sent, requested):
        if transfer is requested:
            assert api.post(f"/transfers/{transfer.json()['id']}/ship").status_code == 200
        assert api.post(f"/transfers/{transfer.json()['id']}/receive").status_code == 200
    assert branch_line() is None
    assert api.post("/reorder-rules", json={"product_id": product, "warehouse_id": branch, "reorder_point": "70",
                                            "order_up_to": "90"}).status_code == 201
    line = branch_line()
    assert (line["in_transit"], line["projected"], line["quantity"]) == ("0", "70", "20")


def test_quantities_may_be_json_numbers(api):
    product = create_product(api)["id"]
    wh = create_warehouse(api)["id"]
    for quantity in (5, -1.5):
        r = api.post("/stock/adjustments", json={"warehouse_id": wh, "product_id": product, "quantity": quantity,
                                                 "reason": "count"})
        assert r.status_code == 201, r.text
    assert float(api.get(f"/stock?product_id={product}").json()["items"][0]["on_hand"]) == 3.5


def test_bins_hold_stock_that_is_allocated_and_shipped_from_them(api):
    # given a warehouse with a bin holding 4 units and the main location holding 1
    product = create_product(api)["id"]
    wh = create_warehouse(api)["id"]
    r = api.post(f"/warehouses/{wh}/locations", json={"code": "A-01", "name": "Aisle A, bin 1"})
    assert r.status_code == 201, r.text
    bin_id = r.json()["id"]
    adjust(api, wh, product, 4, location_id=bin_id)
    adjust(api, wh, product, 1)
    # then the warehouse shows 5 and the detail shows each location
    assert float(api.get(f"/stock?product_id={product}").json()["items"][0]["on_hand"]) == 5
    located = api.get(f"/stock/locations?product_id={product}").json()["items"]
    detail = {d["location_id"]: float(d["on_hand"]) for d in located}
    assert detail[bin_id] == 4
    # a bin of another warehouse is refused
    other = create_warehouse(api)["id"]
    r = api.post("/stock/adjustments", json={"warehouse_id": other, "product_id": product, "quantity": "1",
                                             "reason": "x", "location_id": bin_id})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "location_id"


def test_a_transfer_shipped_at_once_leaves_the_bin_named(api):
    # given a warehouse whose stock of a product is all in one bin (GET /stock: 6 available)
    product = create_product(api)["id"]
    source, target = create_warehouse(api), create_warehouse(api)["id"]
    bin_ = api.post(f"/warehouses/{source['id']}/locations", json={"code": "B-02", "name": "Bin"}).json()
    adjust(api, source["id"], product, 6, location_id=bin_["id"])
    body = {"product_id": product, "from_warehouse_id": source["id"], "to_warehouse_id": target, "quantity": "4"}
    # when a transfer names no bin, the main stock location is empty: the refusal says where it looked
    r = api.post("/transfers", json=body)
    assert r.status_code == 409 and f"0 available at {source['code']}/STOCK" in r.json()["detail"]
    # when it names the bin, the stock leaves from there
    r = api.post("/transfers", json={**body, "location_id": bin_["id"]})
    assert r.status_code == 201, r.text
    [left] = [m for m in api.get(f"/stock/moves?product_id={product}").json()["items"] if m["kind"] == "transfer_out"]
    assert left["from_location_id"] == bin_["id"] and left["quantity"] == "4"
    held = {d["location_code"]: d["on_hand"] for d in api.get(f"/stock/locations?product_id={product}").json()["items"]}
    assert held[f"{source['code']}/B-02"] == "2"
    # and a bin of another warehouse, or a bin on a requested transfer (reserved from every bin), is a 422
    other = api.post(f"/warehouses/{target}/locations", json={"code": "B-09", "name": "Bin"}).json()
    r = api.post("/transfers", json={**body, "location_id": other["id"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "location_id"
    r = api.post("/transfers", json={**body, "location_id": bin_["id"], "ship": False})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "location_id"
    assert api.get("/stock/check").json()["items"] == []


def _stock(api, product):
    return {i["warehouse_code"]: i for i in api.get(f"/stock?product_id={product}").json()["items"]}


def test_a_requested_transfer_reserves_at_the_source_waits_for_stock_then_ships_each_lot(api):
    # given a lot-tracked product with 3 units in two lots at the source
    product = create_product(api, track_lots=True)["id"]
    a, b = create_warehouse(api, code="RA")["id"], create_warehouse(api, code="RB")["id"]
    for lot, expiry, qty in (("LATE", "2099-12-31", 2), ("SOON", "2098-01-31", 1)):
        r = api.post("/stock/receipts", json={"warehouse_id": a, "product_id": product, "quantity": str(qty),
                                              "unit_cost": "2", "lot_code": lot, "expiry_date": expiry})
        assert r.status_code == 201, r.text
    body = {"product_id": product, "from_warehouse_id": a, "to_warehouse_id": b, "quantity": "5", "ship": False}
    # a requested transfer names no lot: it reserves by expiry
    assert api.post("/transfers", json={**body, "lot_code": "LATE"}).status_code == 422
    # when 5 are requested
    r = api.post("/transfers", json=body)
    assert r.status_code == 201, r.text
    transfer = r.json()
    # then the 3 there are reserved, 2 backordered, nothing has moved
    assert (transfer["status"], transfer["reserved"], transfer["backordered"]) == ("requested", "3", "2")
    assert transfer["shipped_at"] is None
    assert (_stock(api, product)["RA"]["reserved"], _stock(api, product)["RA"]["available"]) == ("3", "0")
    # and it cannot ship short
    short = api.post(f"/transfers/{transfer['id']}/ship")
    assert short.status_code == 409 and short.json()["code"] == "insufficient_stock"
    assert "3 of 5 reserved" in short.json()["detail"]
    assert api.post(f"/transfers/{transfer['id']}/receive").json()["allowed_actions"] == ["cancel", "ship"]
    # when the rest arrives at the source, the backorder takes it
    r = api.post("/stock/receipts", json={"warehouse_id": a, "product_id": product, "quantity": "2",
                                          "unit_cost": "5", "lot_code": "NEW", "expiry_date": "2099-06-30"})
    assert r.status_code == 201, r.text
    read = api.get(f"/transfers/{transfer['id']}").json()
    assert (read["reserved"], read["backordered"]) == ("5", "0")
    # and it ships: every lot leaves as reserved, at the source's average cost (3 × 2 + 2 × 5 = 16)
    shipped = api.post(f"/transfers/{transfer['id']}/ship")
    assert shipped.status_code == 200, shipped.text
    assert shipped.json()["status"] == "in_transit" and shipped.json()["shipped_at"]
    stock = _stock(api, product)
    assert (stock["RA"]["on_hand"], stock["RA"]["reserved"], stock["RB"]["in_transit"]) == ("0", "0", "5")
    # then it is received lot by lot
    received = api.post(f"/transfers/{transfer['id']}/receive")
    assert received.status_code == 200 and received.json()["status"] == "received"
    at_b = {i["lot_code"]: i["on_hand"] for i in api.get(f"/stock/locations?product_id={product}").json()["items"]
            if i["warehouse_id"] == b}
    assert at_b == {"SOON": "1", "LATE": "2", "NEW": "2"}
    valuation = {line["warehouse_id"]: line for line in api.get("/inventory/valuation").json()["items"]
                 if line["product_id"] == product}
    assert valuation[b]["value"] == "16.00" and valuation[b]["quantity"] == "5"


def test_a_cancelled_requested_transfer_frees_its_stock(api):
    product = create_product(api)["id"]
    a, b = create_warehouse(api, code="CA")["id"], create_warehouse(api, code="CB")["id"]
    adjust(api, a, product, 4, unit_cost="2")
    r = api.post("/transfers", json={"product_id": product, "from_warehouse_id": a, "to_warehouse_id": b,
                                     "quantity": "3", "ship": False})
    assert r.status_code == 201 and r.json()["reserved"] == "3"
    # the reserved units are not there for anyone else
    other = api.post("/transfers", json={"product_id": product, "from_warehouse_id": a, "to_warehouse_id": b,
                                         "quantity": "2"})
    assert other.status_code == 409
    # when it is cancelled
    cancelled = api.post(f"/transfers/{r.json()['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    # then the stock is free again and the transfer takes no more actions
    assert _stock(api, product)["CA"]["available"] == "4"
    assert api.post(f"/transfers/{r.json()['id']}/ship").json()["allowed_actions"] == []
    listed = api.get("/transfers", params={"status": "cancelled"}).json()["items"]
    assert [t["id"] for t in listed] == [r.json()["id"]]


def test_a_requested_transfer_of_serials_moves_the_reserved_lots_serials_and_whole_units_only(api):
    from tests.factories.parties import create_customer
    from tests.factories.sales import Desk, act, create_order

    product = create_product(api, track_serials=True, track_lots=True)["id"]
    a, b = create_warehouse(api)["id"], create_warehouse(api)["id"]
    # given lot LATE received first (older serials), then lot SOON, which expires first
    serials_of = {}
    for lot, expiry, serials in (("LATE", "2099-12-31", ["L1", "L2"]), ("SOON", "2098-01-31", ["S1", "S2"])):
        r = api.post("/stock/receipts", json={"warehouse_id": a, "product_id": product, "quantity": "2",
                                              "unit_cost": "2", "lot_code": lot, "expiry_date": expiry,
                                              "serials": serials})
        assert r.status_code == 201, r.text
        serials_of[r.json()["lot_id"]] = serials
    body = {"product_id": product, "from_warehouse_id": a, "to_warehouse_id": b, "ship": False}
    # a fraction of a serial-tracked unit is refused when requested, not only when shipped
    fraction = api.post("/transfers", json={**body, "quantity": "1.5"})
    assert fraction.status_code == 422 and fraction.json()["errors"][0]["field"] == "quantity"
    # when 2 are requested (FEFO reserves lot SOON), shipped and received
    transfer = api.post("/transfers", json={**body, "quantity": "2"}).json()
    assert api.post(f"/transfers/{transfer['id']}/ship").status_code == 200
    assert api.post(f"/transfers/{transfer['id']}/receive").status_code == 200
    # then lot SOON's serials travelled with it, and lot LATE's stayed: every move's serials are its lot's
    moves = api.get("/stock/moves", params={"product_id": product}).json()["items"]
    travelled = sorted(s for m in moves if m["kind"] in ("transfer_out", "transfer_in") for s in m["serials"])
    assert travelled == ["S1", "S1", "S2", "S2"]
    order = create_order(api, Desk(product, a, create_customer(api)["id"]), 2)
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    shipped = api.post(f"/shipments/{shipment['id']}/ship", json={"carrier": "UPS", "tracking_number": "1"})
    assert shipped.status_code == 200, shipped.text
    moves = api.get("/stock/moves", params={"product_id": product}).json()["items"]
    assert [m["kind"] for m in moves].count("issue") == 1
    for m in moves:
        assert sorted(m["serials"]) == serials_of[m["lot_id"]], m


def test_stock_as_of_a_day_shows_what_was_in_transit_as_get_stock_does(api):
    # given 10 in A, 4 of them shipped to B and not yet received
    a = create_warehouse(api, code="A")["id"]
    b = create_warehouse(api, code="B")["id"]
    product = create_product(api)["id"]
    adjust(api, a, product, 10)
    transfer = api.post("/transfers", json={"product_id": product, "from_warehouse_id": a, "to_warehouse_id": b,
                                            "quantity": "4"})
    assert transfer.status_code == 201, transfer.text
    today = api.get(f"/stock?product_id={product}").json()["items"]
    # when
    as_of = api.get("/stock/as-of", params={"product_id": product, "on": transfer.json()["shipped_at"][:10]})
    # then
    assert as_of.status_code == 200, as_of.text

    def levels(items):
        return {i["warehouse_id"]: (i["on_hand"], i["in_transit"]) for i in items}

    assert levels(as_of.json()["items"]) == levels(today) == {a: ("6", "0"), b: ("0", "4")}


def test_the_buyer_keeps_the_reorder_rules_the_suggestions_come_from(api):
    from tests.api.conftest import Api, key_for

    # given a buyer's key and a stocked product
    buyer = Api(api.client, api.tenant, key_for(api.tenant, "purchasing"))
    product, warehouse = create_product(api)["id"], create_warehouse(api)["id"]
    adjust(api, warehouse, product, 3)
    # when the buyer sets its reorder point and order-up-to level
    rule = {"product_id": product, "warehouse_id": warehouse, "reorder_point": "5", "order_up_to": "20"}
    r = buyer.post("/reorder-rules", json=rule)
    # then it is kept, and the buyer reads what to order from it
    assert r.status_code == 201, r.text
    [group] = buyer.get("/replenishment/suggestions").json()["items"]
    assert group["lines"][0]["quantity"] == "17"
    # a negative reorder point is refused as such (zero is allowed)
    r = buyer.post("/reorder-rules", json={**rule, "reorder_point": "-1"})
    assert (r.status_code, r.json()["errors"][0]["message"]) == (422, "must not be negative")


def test_stock_as_of_a_day_to_come_is_refused(api):
    product = create_product(api)["id"]
    adjust(api, create_warehouse(api)["id"], product, 3)
    tomorrow = (clock.today() + timedelta(days=1)).isoformat()
    r = api.get("/stock/as-of", params={"product_id": product, "on": tomorrow})
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "on"
    assert api.get("/stock/as-of", params={"product_id": product, "on": clock.today().isoformat()}).json()[
        "items"][0]["on_hand"] == "3"


def test_opening_stock_is_brought_in_as_equity_not_as_the_periods_profit(api):
    # given stock brought onto the books at go-live: 10 at 4.00
    product, warehouse = create_product(api)["id"], create_warehouse(api)["id"]
    adjust(api, warehouse, product, 10, reason="opening_balance", unit_cost="4.00")

    def balances() -> dict[str, str]:
        lines = api.get("/ledger/trial-balance").json()["lines"]
        return {ln["account_code"]: (ln["debit"], ln["credit"]) for ln in lines if ln["account_code"] in (
            "1200", "3900", "5100")}

    # then inventory stands against opening balance equity, and the period shows no gain
    assert balances() == {"1200": ("40.00", "0.00"), "3900": ("0.00", "40.00")}
    assert api.get("/ledger/profit-and-loss").json()["net_income"] == "0.00"
    # a correction of the opening stock goes the same way back
    adjust(api, warehouse, product, -2, reason="opening_balance")
    assert balances() == {"1200": ("32.00", "0.00"), "3900": ("0.00", "32.00")}
    # while units found later are the period's: against inventory adjustments
    adjust(api, warehouse, product, 1, reason="found", unit_cost="4.00")
    assert balances() == {"1200": ("36.00", "0.00"), "3900": ("0.00", "32.00"), "5100": ("0.00", "4.00")}
    assert api.get("/ledger/profit-and-loss").json()["net_income"] == "4.00"


def test_a_count_of_serial_numbered_goods_says_which_units_were_found_and_which_not(api):
    # given X1 and X2 on the shelf by the books
    product = create_product(api, track_serials=True)["id"]
    wh = create_warehouse(api)["id"]
    r = api.post("/stock/receipts", json={"warehouse_id": wh, "product_id": product, "quantity": "2",
                                          "unit_cost": "3", "serials": ["X1", "X2"]})
    assert r.status_code == 201, r.text
    count = api.post("/stock-counts", json={"warehouse_id": wh, "counter": "Ana"}).json()
    # a variance without the serials found is refused: the books would guess which unit went
    r = api.post(f"/stock-counts/{count['id']}/post", json={"lines": [
        {"product_id": product, "counted_quantity": "1"}]})
    assert (r.status_code, [e["field"] for e in r.json()["errors"]]) == (422, ["lines[0].serials"]), r.text
    # as are serials that are not one per unit counted
    r = api.post(f"/stock-counts/{count['id']}/post", json={"lines": [
        {"product_id": product, "counted_quantity": "3", "serials": ["X1", "X3"]}]})
    assert (r.status_code, [e["field"] for e in r.json()["errors"]]) == (422, ["lines[0].serials"]), r.text
    # when the counter finds X1, X3 (not on the books) and X4, and not X2
    r = api.post(f"/stock-counts/{count['id']}/post", json={"lines": [
        {"product_id": product, "counted_quantity": "3", "serials": ["X1", "X3", "X4"]}]})
    assert r.status_code == 200, r.text
    [line] = r.json()["lines"]
    # then X2 is written off and X3, X4 taken in: 3 on hand, as counted
    assert (line["variance"], line["serials_missing"], line["serials_found"]) == ("1", ["X2"], ["X3", "X4"])
    assert api.get(f"/stock?product_id={product}").json()["items"][0]["on_hand"] == "3"
    moves = [m for m in api.get(f"/stock/moves?product_id={product}").json()["items"] if m["kind"] == "count"]
    assert sorted((m["quantity"], m["to_warehouse_id"] == wh, m["serials"]) for m in moves) == [
        ("1", False, ["X2"]), ("2", True, ["X3", "X4"])]
    # and X2, no longer on the shelf, cannot be written off twice: it may come back in as found
    again = api.post("/stock-counts", json={"warehouse_id": wh, "counter": "Bo"}).json()
    r = api.post(f"/stock-counts/{again['id']}/post", json={"lines": [
        {"product_id": product, "counted_quantity": "4", "serials": ["X1", "X2", "X3", "X4"]}]})
    assert r.status_code == 200 and r.json()["lines"][0]["serials_found"] == ["X2"], r.text


def test_scrap_and_losses_take_exactly_the_serials_named_one_per_unit(api):
    # given S1, S2, S3 on the shelf
    product = create_product(api, track_serials=True)["id"]
    wh = create_warehouse(api)["id"]
    r = api.post("/stock/receipts", json={"warehouse_id": wh, "product_id": product, "quantity": "3",
                                          "unit_cost": "3", "serials": ["S1", "S2", "S3"]})
    assert r.status_code == 201, r.text
    scrap = {"warehouse_id": wh, "product_id": product, "reason": "broken"}
    loss = {"warehouse_id": wh, "product_id": product, "reason": "lost"}
    # when a scrap or a loss names serials that are not one per unit, or names one twice
    refused = [api.post("/stock/scrap", json={**scrap, "quantity": "1", "serials": ["S3", "S2"]}),
               api.post("/stock/scrap", json={**scrap, "quantity": "2", "serials": ["S3", "S3"]}),
               api.post("/stock/adjustments", json={**loss, "quantity": "-1", "serials": ["S3", "S1"]})]
    # then each is a 422 on serials (not one of the units named, picked by the books), and nothing left
    for r in refused:
        assert (r.status_code, [e["field"] for e in r.json()["errors"]]) == (422, ["serials"]), r.text
    assert [m["kind"] for m in api.get("/stock/moves", params={"product_id": product}).json()["items"]] == [
        "receipt"]
    # and serials for a product that has none are refused on the way out as on the way in
    plain = create_product(api)["id"]
    adjust(api, wh, plain, 5)
    r = api.post("/stock/scrap", json={**scrap, "product_id": plain, "quantity": "1", "serials": ["X"]})
    assert (r.status_code, [e["field"] for e in r.json()["errors"]]) == (422, ["serials"]), r.text
    # and a serial that is not on the shelf is named in the refusal
    r = api.post("/stock/scrap", json={**scrap, "quantity": "2", "serials": ["S3", "S9"]})
    assert (r.status_code, r.json()["code"], r.json()["serials"]) == (409, "insufficient_stock", ["S9"]), r.text
    assert "serial S9 not at" in r.json()["detail"], r.text
    # while one serial per unit scraps exactly those
    r = api.post("/stock/scrap", json={**scrap, "quantity": "2", "serials": ["S3", "S2"]})
    assert r.status_code == 201 and sorted(r.json()["serials"]) == ["S2", "S3"], r.text


def test_replenishment_proposes_only_suppliers_that_may_be_bought_from(api):
    # given a rule 5 / 20 with 3 on hand, a cheap supplier and a dearer one
    product = create_product(api)["id"]
    wh = create_warehouse(api)["id"]
    adjust(api, wh, product, 3)
    assert api.post("/reorder-rules", json={"product_id": product, "warehouse_id": wh, "reorder_point": "5",
                                            "order_up_to": "20"}).status_code == 201
    cheap, dear = create_supplier(api)["id"], create_supplier(api)["id"]
    for supplier, cost in ((cheap, "1.00"), (dear, "2.00")):
        r = api.post("/supplier-items", json={"supplier_id": supplier, "product_id": product, "cost": cost,
                                              "currency": "USD", "pack_size": "5"})
        assert r.status_code == 201, r.text

    def proposed():
        return [(g["supplier_id"], ln["quantity"]) for g in api.get("/replenishment/suggestions").json()["items"]
                for ln in g["lines"]]
    assert proposed() == [(cheap, "20")]
    # when the cheap supplier is blocked (not to be bought from)
    etag = api.get(f"/suppliers/{cheap}").headers["etag"]
    assert api.patch(f"/suppliers/{cheap}", json={"status": "blocked"}, headers={"If-Match": etag}).status_code == 200
    # then the order goes to the other one
    assert proposed() == [(dear, "20")]
    # and when that one is archived too, nobody is proposed: the line stands without a supplier
    assert api.post(f"/suppliers/{dear}/archive").status_code == 200
    assert proposed() == [(None, "17")]


def test_replenishment_does_not_count_expired_lots_as_stock(api):
    # given a rule 5 / 20 and 10 units of a lot that expires tomorrow
    product = create_product(api, track_lots=True)["id"]
    wh = create_warehouse(api)["id"]
    r = api.post("/stock/receipts", json={"warehouse_id": wh, "product_id": product, "quantity": "10",
                                          "unit_cost": "1", "lot_code": "SHORT",
                                          "expiry_date": (clock.today() + timedelta(days=1)).isoformat()})
    assert r.status_code == 201, r.text
    assert api.post("/reorder-rules", json={"product_id": product, "warehouse_id": wh, "reorder_point": "5",
                                            "order_up_to": "20"}).status_code == 201
    assert api.get("/replenishment/suggestions").json()["items"] == []
    # when the lot has expired (it will never be allocated nor shipped)
    with clock.frozen_at(clock.now() + timedelta(days=3)):
        [group] = api.get("/replenishment/suggestions").json()["items"]
    # then nothing sellable is left: the whole order-up-to level is proposed
    [line] = group["lines"]
    assert (line["projected"], line["quantity"]) == ("0", "20")


def test_replenishment_buys_nothing_for_an_inactive_warehouse(api):
    # given an order for 30 backordered (nothing in stock), and rules 10 / 50 at a first and a second warehouse
    from tests.factories.sales import create_order, order_desk

    desk = order_desk(api, stock=0)
    assert api.post(f"/sales-orders/{create_order(api, desk, 30)['id']}/confirm").status_code == 200
    second = create_warehouse(api, priority=200)["id"]
    for wh in (desk.warehouse_id, second):
        assert api.post("/reorder-rules", json={"product_id": desk.product_id, "warehouse_id": wh,
                                                "reorder_point": "10", "order_up_to": "50"}).status_code == 201
    # when the first warehouse is closed (inactive: it receives nothing, and nothing is allocated from it)
    etag = api.get(f"/warehouses/{desk.warehouse_id}").headers["etag"]
    r = api.patch(f"/warehouses/{desk.warehouse_id}", json={"active": False}, headers={"If-Match": etag})
    assert r.status_code == 200, r.text
    # then nothing is proposed for it, and the backorder is bought for the warehouse still open
    lines = [ln for g in api.get("/replenishment/suggestions").json()["items"] for ln in g["lines"]]
    assert [(ln["warehouse_id"], ln["backordered"], ln["quantity"]) for ln in lines] == [(second, "30", "80")]


def test_scrapping_more_than_is_available_says_the_quantities_as_an_adjustment_does(api):
    # given 3 on hand, of which none reserved
    product = create_product(api)["id"]
    wh = create_warehouse(api)["id"]
    adjust(api, wh, product, 3)
    # when 5 are scrapped, and 5 written off
    scrap = api.post("/stock/scrap", json={"warehouse_id": wh, "product_id": product, "quantity": "5",
                                           "reason": "broken"})
    loss = api.post("/stock/adjustments", json={"warehouse_id": wh, "product_id": product, "quantity": "-5",
                                                "reason": "damage"})
    # then both refusals say what is available as quantities read everywhere else ("3", not "3.0000")
    for r in (scrap, loss):
        assert (r.status_code, r.json()["code"], r.json()["available"]) == (409, "insufficient_stock", "3"), r.text
    assert "3 available" in scrap.json()["detail"] and "cannot scrap 5" in scrap.json()["detail"]


def test_replenishment_compares_supplier_costs_in_one_currency(api):
    # given a rule 5 / 20 with nothing on hand; a supplier at 2.00 USD and one at 150 JPY (about 1.01 USD)
    product = create_product(api)["id"]
    wh = create_warehouse(api)["id"]
    assert api.post("/reorder-rules", json={"product_id": product, "warehouse_id": wh, "reorder_point": "5",
                                            "order_up_to": "20"}).status_code == 201
    r = api.post("/ledger/exchange-rates", json={"currency": "JPY", "date": clock.today().isoformat(),
                                                 "rate": "0.0067"})
    assert r.status_code == 201, r.text
    dollars, yen, unknown = (create_supplier(api, currency=c)["id"] for c in ("USD", "JPY", "EUR"))
    for supplier, cost, currency in ((dollars, "2.00", "USD"), (yen, "150", "JPY"), (unknown, "0.50", "EUR")):
        r = api.post("/supplier-items", json={"supplier_id": supplier, "product_id": product, "cost": cost,
                                              "currency": currency})
        assert r.status_code == 201, r.text
    # when the suggestions are asked for
    [group] = api.get("/replenishment/suggestions").json()["items"]
    # then the yen supplier is the cheaper one (150 JPY = 1.005 USD < 2.00 USD); the euro one, whose cost
    # cannot be converted (no rate), is not taken for cheaper on its bare number
    assert (group["supplier_id"], float(group["lines"][0]["unit_cost"]), group["lines"][0]["currency"]) == (
        yen, 150, "JPY")


def test_a_count_that_finds_stock_under_another_lot_is_not_stock_running_low(api):
    # given 10 of lot A on the books, a reorder point of 10 (available is at it, not below)
    product = create_product(api, track_lots=True)["id"]
    wh = create_warehouse(api)["id"]
    r = api.post("/stock/receipts", json={"warehouse_id": wh, "product_id": product, "quantity": "10",
                                          "unit_cost": "1", "lot_code": "A", "expiry_date": "2099-01-01"})
    assert r.status_code == 201, r.text
    assert api.post("/reorder-rules", json={"product_id": product, "warehouse_id": wh, "reorder_point": "10",
                                            "order_up_to": "30"}).status_code == 201
    count = api.post("/stock-counts", json={"warehouse_id": wh, "counter": "Ana"}).json()
    # when the counter finds 5 of lot A and 5 of lot B (labelled differently, the same 10 units)
    r = api.post(f"/stock-counts/{count['id']}/post", json={"lines": [
        {"product_id": product, "lot_code": "A", "counted_quantity": "5"},
        {"product_id": product, "lot_code": "B", "counted_quantity": "5"}]})
    assert r.status_code == 200, r.text
    # then 10 are still available, and no stock.low.v1 says otherwise
    assert api.get(f"/stock?product_id={product}").json()["items"][0]["available"] == "10"
    low = [e for e in api.get("/events").json()["items"] if e["type"] == "stock.low.v1"]
    assert low == []
    # while a count that does take it below the point says so once, with what is left
    count = api.post("/stock-counts", json={"warehouse_id": wh, "counter": "Ana"}).json()
    r = api.post(f"/stock-counts/{count['id']}/post", json={"lines": [
        {"product_id": product, "lot_code": "A", "counted_quantity": "2"},
        {"product_id": product, "lot_code": "B", "counted_quantity": "6"}]})
    assert r.status_code == 200, r.text
    low = [e["data"] for e in api.get("/events").json()["items"] if e["type"] == "stock.low.v1"]
    assert [(d["available"], d["reorder_point"]) for d in low] == [("8", "10")]
