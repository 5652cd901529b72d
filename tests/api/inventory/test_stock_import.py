"""Opening stock loaded from a CSV file: each row sets what is on hand, so a file loads once however often
it is sent, and the books follow (inventory against opening balance equity)."""

from __future__ import annotations

from decimal import Decimal as D

from tests.factories.catalog import create_product
from tests.factories.inventory import adjust, create_warehouse
from tests.factories.sales import act, create_order, order_desk


def _upload(api, text, **params):
    return api.client.post("/api/v1/imports/stock", headers=api.headers, params=params,
                           files={"file": ("stock.csv", text.encode(), "text/csv")})


def _on_hand(api, product_id):
    return {row["warehouse_code"]: D(row["on_hand"])
            for row in api.get("/stock", params={"product_id": product_id}).json()["items"]}


def _balance(api, code):
    accounts = api.get("/ledger/trial-balance").json()["lines"]
    return sum((D(a["debit"]) - D(a["credit"]) for a in accounts if a["account_code"] == code), D(0))


def test_opening_stock_loads_once_and_the_books_follow(api):
    # given two products, one lot-tracked, and two warehouses
    bolt = create_product(api, sku="BOLT-10", standard_cost="0.40")
    glue = create_product(api, sku="GLUE-1", track_lots=True, standard_cost="3.00")
    main, north = create_warehouse(api, code="MAIN"), create_warehouse(api, code="NORTH")
    text = ("sku,warehouse,quantity,unit_cost,lot_code,expiry_date\n"
            "BOLT-10,MAIN,1000,0.40,,\n"
            "BOLT-10,NORTH,250,,,\n"  # valued at the standard cost
            "GLUE-1,MAIN,12,3.10,G-7,2027-06-30\n")
    # a dry run says what would happen and writes nothing
    r = _upload(api, text, dry_run="true")
    assert r.status_code == 200 and (r.json()["created"], r.json()["dry_run"]) == (3, True), r.text
    assert _on_hand(api, bolt["id"]) in ({}, {"MAIN": 0, "NORTH": 0})
    # when the file is loaded
    r = _upload(api, text)
    assert r.status_code == 200 and r.json()["created"] == 3, r.text
    # then stock is on hand where each row says, its lot with its expiry
    assert _on_hand(api, bolt["id"]) == {"MAIN": 1000, "NORTH": 250}
    assert _on_hand(api, glue["id"]) == {"MAIN": 12}
    [lot] = api.get("/lots", params={"product_id": glue["id"]}).json()["items"]
    assert (lot["code"], lot["expiry_date"]) == ("G-7", "2027-06-30")
    # and the value is on the inventory account against opening balance equity: 400 + 100 + 37.20
    assert _balance(api, "1200") == D("537.20") == -_balance(api, "3900")
    # when the same file is loaded again, nothing changes
    r = _upload(api, text)
    assert (r.json()["created"], r.json()["updated"], r.json()["unchanged"]) == (0, 0, 3)
    assert _on_hand(api, bolt["id"]) == {"MAIN": 1000, "NORTH": 250}
    # and a corrected file sets the new figure (the difference posted, at the average cost)
    r = _upload(api, "sku,warehouse,quantity\nBOLT-10,NORTH,200\n")
    assert r.json()["updated"] == 1
    assert _on_hand(api, bolt["id"]) == {"MAIN": 1000, "NORTH": 200}
    assert _balance(api, "1200") == D("517.20")
    # and export -> import changes nothing
    exported = api.get("/exports/stock")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert exported.text.splitlines()[0] == "sku,warehouse,location,lot_code,expiry_date,quantity,unit_cost"
    r = _upload(api, exported.text)
    assert (r.json()["created"], r.json()["updated"], r.json()["unchanged"]) == (0, 0, 3), r.text
    assert {main["code"], north["code"]} == {"MAIN", "NORTH"}


def test_bad_stock_rows_are_named_and_nothing_is_loaded(api):
    # given a product with 5 on hand, 3 of them reserved for an order
    desk = order_desk(api, stock=5)
    order = create_order(api, desk, 3)
    act(api, f"/sales-orders/{order['id']}/confirm")
    warehouse = api.get(f"/warehouses/{desk.warehouse_id}").json()["code"]
    sku = api.get(f"/products/{desk.product_id}").json()["sku"]
    create_product(api, sku="DRILL", track_serials=True)
    create_product(api, sku="GLUE", track_lots=True)
    create_product(api, sku="NUT")
    text = ("sku,warehouse,quantity,unit_cost,lot_code,expiry_date\n"
            f"{sku},{warehouse},2,,,\n"          # row 2: under the 3 reserved
            "NOPE,MAIN,1,,,\n"                   # row 3: no such product
            f"DRILL,{warehouse},1,,,\n"          # row 4: serial-tracked
            f"GLUE,{warehouse},4,,,\n"           # row 5: lot-tracked without a lot
            f"NUT,{warehouse},-1,,,\n"           # row 6: negative
            f"NUT,NOWHERE,1,,,\n"                # row 7: no such warehouse
            f"NUT,{warehouse},1,x,,soon\n"       # row 8: a cost and a date that are not, and row 6's stock
            f"NUT,{warehouse},2,,,\n")           # row 9: fine alone, but the same stock as row 6
    # when the file is loaded
    r = _upload(api, text)
    # then each problem is named by row and column, and nothing is loaded
    assert r.status_code == 422 and r.json()["code"] == "import_failed", r.text
    found = {(e["row"], e["field"]) for e in r.json()["errors"]}
    assert found == {(2, "quantity"), (3, "sku"), (3, "warehouse"), (4, "sku"), (5, "lot_code"), (6, "quantity"),
                     (7, "warehouse"), (8, "unit_cost"), (8, "expiry_date"), (8, "sku"), (9, "sku")}, r.json()["errors"]
    assert _on_hand(api, desk.product_id) == {warehouse: 5}
    adjust(api, desk.warehouse_id, desk.product_id, 1)  # (the stock still moves as before)
    assert _on_hand(api, desk.product_id) == {warehouse: 6}


def _per_location(api, product_id):
    return {(d["location_code"], d["lot_code"]): D(d["on_hand"])
            for d in api.get("/stock/locations", params={"product_id": product_id}).json()["items"]}


def test_the_main_location_named_by_its_code_and_left_blank_is_the_same_stock(api):
    # given a warehouse whose main stock location is W1/STOCK
    bolt = create_product(api, sku="BOLT-10", standard_cost="0.40")
    create_warehouse(api, code="W1")
    # when a file sets the main location's stock twice, once left blank and once by its code
    text = "sku,warehouse,location,quantity\nBOLT-10,W1,,10\nBOLT-10,W1,W1/STOCK,20\n"
    r = _upload(api, text)
    # then the second row is refused as the same stock as the first, and nothing is loaded (the two rows
    # were both posted from a figure read before either: 30 on hand, and the same file sent again left 0)
    assert r.status_code == 422, r.text
    assert [(e["row"], e["field"], e["rule"]) for e in r.json()["errors"]] == [(3, "sku", "unique")]
    assert _per_location(api, bolt["id"]) == {}


def test_a_figure_under_what_is_reserved_is_refused_even_where_negative_stock_is_allowed(api):
    # given 5 on hand, 3 of them reserved for an order, in a tenant that allows negative stock
    desk = order_desk(api, stock=5)
    act(api, f"/sales-orders/{create_order(api, desk, 3)['id']}/confirm")
    assert api.patch("/tenant/settings", json={"allow_negative_stock": True}).status_code == 200
    warehouse = api.get(f"/warehouses/{desk.warehouse_id}").json()["code"]
    sku = api.get(f"/products/{desk.product_id}").json()["sku"]
    # when a file says 1 is on hand there
    r = _upload(api, f"sku,warehouse,quantity\n{sku},{warehouse},1\n")
    # then it is refused on the quantity, naming what is reserved, and the stock is as it was
    assert r.status_code == 422, r.text
    [error] = r.json()["errors"]
    assert (error["row"], error["field"], error["rule"]) == (2, "quantity", "insufficient_stock"), error
    assert "3" in error["message"] and "reserved" in error["message"]
    assert _on_hand(api, desk.product_id) == {warehouse: 5}
    # (a figure at or above what is reserved still loads)
    assert _upload(api, f"sku,warehouse,quantity\n{sku},{warehouse},3\n").status_code == 200
    assert _on_hand(api, desk.product_id) == {warehouse: 3}


def test_a_lot_whose_expiry_in_the_file_differs_from_the_books_is_refused_whatever_the_quantity(api):
    # given 12 of lot G-7, expiring 2027-06-30
    glue = create_product(api, sku="GLUE-1", track_lots=True, standard_cost="3.00")
    create_warehouse(api, code="MAIN")
    assert _upload(api, "sku,warehouse,lot_code,expiry_date,quantity\nGLUE-1,MAIN,G-7,2027-06-30,12\n"
                   ).status_code == 200
    # when a file gives the lot another expiry, with the same quantity or another
    for quantity in ("12", "15"):
        r = _upload(api, f"sku,warehouse,lot_code,expiry_date,quantity\nGLUE-1,MAIN,G-7,2027-01-31,{quantity}\n")
        # then the row is refused on its expiry date either way (the same quantity was "unchanged")
        assert r.status_code == 422, (quantity, r.text)
        assert [(e["row"], e["field"], e["rule"]) for e in r.json()["errors"]] == [(2, "expiry_date", "mismatch")]
    [lot] = api.get("/lots", params={"product_id": glue["id"]}).json()["items"]
    assert (lot["expiry_date"], _per_location(api, glue["id"])) == ("2027-06-30", {("MAIN/STOCK", "G-7"): 12})


def test_a_fifo_tenant_exports_the_average_an_added_unit_is_valued_at(api):
    # given a FIFO tenant holding 10 at 1.10 and 5 at 1.30, of which 6 went (taken from the 1.10 layer)
    assert api.patch("/tenant/settings", json={"valuation_method": "fifo"}).status_code == 200
    create_product(api, sku="BOLT-10", standard_cost="1.00")
    warehouse = create_warehouse(api, code="W1")
    assert api.post(f"/warehouses/{warehouse['id']}/locations", json={"code": "B1", "name": "bin"}).status_code == 201
    r = _upload(api, "sku,warehouse,location,quantity,unit_cost\nBOLT-10,W1,,10,1.10\nBOLT-10,W1,W1/B1,5,1.30\n")
    assert r.status_code == 200, r.text
    assert _upload(api, "sku,warehouse,quantity\nBOLT-10,W1,4\n").status_code == 200
    # when the stock is exported
    [line] = api.get("/inventory/valuation").json()["items"]
    assert (line["quantity"], line["value"], line["unit_cost"]) == ("9", "10.90", "1.2111")
    rows = [row.split(",") for row in api.get("/exports/stock").text.splitlines()[1:]]
    # then its unit cost is the warehouse's average, as the valuation says and a unit added without a cost
    # is valued at (not the cost of the last layer taken, which the export wrote)
    assert {row[-1] for row in rows} == {"1.2111"}, rows
    # and the books still equal the valuation
    assert _balance(api, "1200") == D("10.90")


def test_a_bin_is_named_as_it_was_created_and_a_counted_place_is_the_rows_fault(api):
    # given a warehouse with a bin B1 (its full code W2/B1)
    create_product(api, sku="NUT-6", standard_cost="0.10")
    warehouse = create_warehouse(api, code="W2")
    assert api.post(f"/warehouses/{warehouse['id']}/locations", json={"code": "B1", "name": "bin"}).status_code == 201
    # when a file names the bin by the code it was created with
    r = _upload(api, "sku,warehouse,location,quantity\nNUT-6,W2,B1,40\n")
    # then the stock is there, and the full code names the same place
    assert r.status_code == 200 and r.json()["created"] == 1, r.text
    assert _upload(api, "sku,warehouse,location,quantity\nNUT-6,W2,W2/B1,40\n").json()["unchanged"] == 1
    # and while the warehouse's main location is being counted, a row changing its stock there is refused on
    # its location
    assert api.post("/stock-counts", json={"warehouse_id": warehouse["id"], "counter": "Ana"}).status_code == 201
    r = _upload(api, "sku,warehouse,quantity\nNUT-6,W2,5\n")
    assert r.status_code == 422, r.text
    assert [(e["row"], e["field"], e["rule"]) for e in r.json()["errors"]] == [(2, "location", "location_locked")]


def test_a_tenant_allowing_negative_stock_loads_back_what_it_exports(api):
    # given a tenant that allows negative stock, with a product at -3 after an adjustment
    assert api.patch("/tenant/settings", json={"allow_negative_stock": True}).status_code == 200
    product = create_product(api, sku="CABLE-1", standard_cost="2.00")
    warehouse = create_warehouse(api, code="NEG")
    adjust(api, warehouse["id"], product["id"], -3)
    # when its stock is exported and loaded back
    exported = api.get("/exports/stock").text
    assert "CABLE-1,NEG,NEG/STOCK,,,-3," in exported, exported
    r = _upload(api, exported)
    # then nothing changes (a negative figure was refused as "zero or more")
    assert r.status_code == 200 and r.json()["unchanged"] == 1, r.text
