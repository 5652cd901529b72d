"""CSV import and export over the API (multipart upload)."""

from __future__ import annotations

import csv
import io

from tests.factories.catalog import create_product
from tests.factories.parties import create_customer
from tests.factories.pricing import create_price_list


def _upload(api, path, text, **params):
    return api.client.post("/api/v1" + path, headers=api.headers, params=params,
                           files={"file": ("data.csv", text.encode(), "text/csv")})


def test_upload_products_dry_run_then_import_then_export(api):
    text = "sku,name,list_price,currency\nU-1,Up one,1.50,USD\nU-2,Up two,2,USD\n"
    r = _upload(api, "/imports/products", text, dry_run="true")
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 2 and r.json()["dry_run"] is True
    assert api.get("/products").json()["items"] == []
    r = _upload(api, "/imports/products", text)
    assert r.status_code == 200 and r.json()["created"] == 2
    exported = api.get("/exports/products")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    r = _upload(api, "/imports/products", exported.text)
    assert r.json()["unchanged"] == 2 and r.json()["created"] == r.json()["updated"] == 0


def test_a_dry_run_with_an_idempotency_key_answers_with_its_report(api):
    # given a dry run sent with an Idempotency-Key (on SQLite the dry run's write lock was still
    # held while the key's record was stored: 30 s, then an answer without its body)
    text = "sku,name,list_price,currency\nD-1,Dry one,1.50,USD\n"
    for path in ("/imports/products", "/imports/customers", "/imports/price-lists"):
        body = text if path == "/imports/products" else (
            "code,name,currency\nK-D,Kay,USD\n" if path == "/imports/customers"
            else "code,name,currency,sku,value\nPLD,Dry,USD,D-0,4.5\n")
        if path == "/imports/price-lists":
            _upload(api, "/imports/products", "sku,name,list_price,currency\nD-0,Zero,5,USD\n")
        files = {"file": ("data.csv", body.encode(), "text/csv")}
        headers = {**api.headers, "Idempotency-Key": "dry" + path}
        # when
        first = api.client.post("/api/v1" + path, headers=headers, params={"dry_run": "true"}, files=files)
        # then
        assert first.status_code == 200, (path, first.text)
        assert first.json()["dry_run"] is True and first.json()["created"] == 1
    assert [p["sku"] for p in api.get("/products").json()["items"]] == ["D-0"]


def test_an_upload_retried_with_its_idempotency_key_replays_and_a_dry_run_is_another_request(api):
    text = "sku,name,list_price,currency\nI-1,Idem one,1.50,USD\n"
    headers = {**api.headers, "Idempotency-Key": "upload-once"}

    def send(boundary: str, **params: str):
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"p.csv\"\r\n"
                f"Content-Type: text/csv\r\n\r\n{text}\r\n--{boundary}--\r\n").encode()
        return api.client.post("/api/v1/imports/products", params=params, content=body,
                               headers={**headers, "Content-Type": f"multipart/form-data; boundary={boundary}"})

    # given a dry run sent with a key
    dry = send("aaaa1111", dry_run="true")
    assert dry.status_code == 200 and dry.json()["dry_run"] is True
    # when the real import is sent with the same key: another request, not a replay of the dry run
    real = send("aaaa1111")
    assert (real.status_code, real.json()["code"]) == (422, "idempotency_key_reused")
    assert api.get("/products").json()["items"] == []
    # and a retry of the dry run, as a client sends it again (a new multipart boundary), replays
    again = send("bbbb2222", dry_run="true")
    assert again.status_code == 200 and again.headers.get("idempotent-replayed") == "true"


def test_upload_with_errors_is_422_with_rows_and_writes_nothing(api):
    r = _upload(api, "/imports/products", "sku,name,list_price,currency\nE-1,x,1,USD\nE-2,y,-1,USD\n")
    assert r.status_code == 422
    assert r.json()["code"] == "import_failed"
    assert r.json()["errors"] == [{"field": "list_price", "row": 3, "message": "must not be less than 0",
                                   "rule": "min"}]
    assert api.get("/products").json()["items"] == []


def test_upload_customers_and_price_lists(api):
    r = _upload(api, "/imports/customers", "code,name,currency\nK-1,Kay,USD\n")
    assert r.status_code == 200 and r.json()["created"] == 1, r.text
    _upload(api, "/imports/products", "sku,name,list_price,currency\nZ-1,z,5,USD\n")
    r = _upload(api, "/imports/price-lists", "code,name,currency,sku,value\nPL1,One,USD,Z-1,4.5\n")
    assert r.status_code == 200 and r.json()["created"] == 1, r.text
    assert "PL1" in api.get("/exports/price-lists").text
    assert _upload(api, "/imports/customers", b"\xff\xfe".decode("latin-1")).status_code in (200, 422)


def _cells(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_export_quotes_text_a_spreadsheet_would_run_and_import_takes_the_quote_off(api):
    # given text cells a spreadsheet would take for formulas, one that really starts with ', and a negative number
    create_product(api, sku="F-1", name="=1+1", description='=HYPERLINK("http://evil","x")')
    create_product(api, sku="F-2", name="'quoted", description="+ plus")
    create_customer(api, code="K-AT", name="@x", legal_name="+cmd", phone="+33 1 23 45 67 89")
    create_customer(api, code="K-MINUS", name="-y", legal_name="-2+3")
    create_price_list(api, code="PL-NEG", name="=PL", priority=-5)
    # when exported
    products = {r["sku"]: r for r in _cells(api.get("/exports/products").text)}
    customers = {r["code"]: r for r in _cells(api.get("/exports/customers").text)}
    price_lists = _cells(api.get("/exports/price-lists").text)
    # then each such text cell starts with ', a number does not
    assert (products["F-1"]["name"], products["F-1"]["description"]) == ("'=1+1", '\'=HYPERLINK("http://evil","x")')
    assert (products["F-2"]["name"], products["F-2"]["description"]) == ("''quoted", "'+ plus")
    assert [customers["K-AT"][c] for c in ("name", "legal_name", "phone")] == ["'@x", "'+cmd", "'+33 1 23 45 67 89"]
    assert (customers["K-MINUS"]["name"], customers["K-MINUS"]["legal_name"]) == ("'-y", "'-2+3")
    assert [(r["name"], r["priority"]) for r in price_lists] == [("'=PL", "-5")]
    # and importing each export back changes nothing and keeps every value exactly
    for kind in ("products", "customers", "price-lists"):
        r = _upload(api, f"/imports/{kind}", api.get(f"/exports/{kind}").text)
        assert r.status_code == 200, r.text
        assert r.json()["unchanged"] == r.json()["rows"] and r.json()["created"] == r.json()["updated"] == 0, kind
    names = {p["sku"]: (p["name"], p["description"]) for p in api.get("/products").json()["items"]}
    assert names == {"F-1": ("=1+1", '=HYPERLINK("http://evil","x")'), "F-2": ("'quoted", "+ plus")}
    assert {c["code"]: c["name"] for c in api.get("/customers").json()["items"]} == {"K-AT": "@x", "K-MINUS": "-y"}


def test_import_of_a_quoted_cell_reads_the_value_without_its_quote(api):
    # a file written by hand or by a spreadsheet that quotes formulas the same way
    r = _upload(api, "/imports/customers", "code,name,currency\nK-Q,'=SUM(1+1),USD\nK-R,''x,USD\nK-S,'plain,USD\n")
    assert r.status_code == 200 and r.json()["created"] == 3, r.text
    names = {c["code"]: c["name"] for c in api.get("/customers").json()["items"]}
    assert names == {"K-Q": "=SUM(1+1)", "K-R": "'x", "K-S": "'plain"}


def test_rows_are_numbered_as_the_lines_of_the_file_across_a_cell_with_line_breaks(api):
    # given a description over three lines (2-4), a blank line (5), a bad row (6) and a bad
    # row whose own description spans lines 7-8
    text = ('sku,name,description,list_price,currency\n'
            'M-1,One,"first\nsecond\nthird",1,USD\n'
            '\n'
            'M-2,Two,,-1,USD\n'
            'M-3,Three,"a\nb",-2,USD\n')
    # when
    r = _upload(api, "/imports/products", text)
    # then each problem names the line a text editor shows it on (where its record starts)
    assert r.status_code == 422, r.text
    assert [(e["row"], e["field"]) for e in r.json()["errors"]] == [(6, "list_price"), (7, "list_price")]


def test_a_row_the_product_service_refuses_is_a_row_error_and_the_dry_run_finds_it(api):
    # given a blocked product and an archived one
    _upload(api, "/imports/products", "sku,name,list_price,currency,status\nR-1,Blocked,1,USD,blocked\n"
                                      "R-2,Archived,2,USD,active\n")
    archived = api.get("/products", params={"q": "R-2"}).json()["items"][0]["id"]
    assert api.post(f"/products/{archived}/archive").status_code == 200
    text = "sku,name,status\nR-1,Blocked,discontinued\nR-2,Renamed,active\n"
    for params in ({"dry_run": "true"}, {}):
        # when a file asks what the status machine does not allow, and changes an archived product
        r = _upload(api, "/imports/products", text, **params)
        # then the dry run and the import both refuse it, naming each row and column
        assert r.status_code == 422, (params, r.text)
        assert r.json()["code"] == "import_failed"
        assert [(e["row"], e["field"], e["rule"]) for e in r.json()["errors"]] == [
            (2, "status", "invalid_transition"), (3, "file", "conflict")], params
    assert api.get("/products", params={"q": "R-1"}).json()["items"][0]["status"] == "blocked"


def test_a_dry_run_finds_what_the_customer_and_price_list_services_refuse(api):
    # given a blocked customer and a product
    _upload(api, "/imports/customers", "code,name,currency,status\nH-1,Held,USD,blocked\n")
    _upload(api, "/imports/products", "sku,name,list_price,currency\nT-1,Tiered,5,USD\n")
    cases = [("/imports/customers", "code,status\nH-1,on_hold\n", (2, "status", "invalid_transition")),
             ("/imports/price-lists", "code,name,currency,sku,value,min_quantity,max_quantity\n"
                                      "OV,Overlap,USD,T-1,4,1,10\nOV,Overlap,USD,T-1,3,5,20\n",
              (3, "min_quantity", "overlap"))]
    for path, text, error in cases:
        for params in ({"dry_run": "true"}, {}):
            # when
            r = _upload(api, path, text, **params)
            # then the dry run refuses what the import refuses
            assert r.status_code == 422, (path, params, r.text)
            assert [(e["row"], e["field"], e["rule"]) for e in r.json()["errors"]] == [error], (path, params)
    assert api.get("/price-lists", params={"q": "OV"}).json()["items"] == []


def test_a_price_list_row_at_fault_for_its_customer_names_the_customer_code_column(api):
    # given a customer
    _upload(api, "/imports/customers", "code,name,currency\nPC-1,Acme,USD\n")
    for text, rule in [("code,name,currency,scope\nPLC,Mine,USD,customer\n", "required"),
                       ("code,name,currency,customer_code\nPLC,Mine,USD,PC-1\n", "scope")]:
        # when a list scoped to a customer names none, or a list for all names one
        r = _upload(api, "/imports/price-lists", text)
        # then the error is on the file's column, customer_code (there is no customer_id column)
        assert r.status_code == 422, r.text
        assert [(e["row"], e["field"], e["rule"]) for e in r.json()["errors"]] == [(2, "customer_code", rule)]


def test_rows_without_their_key_are_each_told_it_is_required_not_that_it_repeats(api):
    for path, text, column in [("/imports/products", "sku,name,list_price,currency\n,a,1,USD\n,b,1,USD\n", "sku"),
                               ("/imports/customers", "code,name,currency\n,a,USD\n,b,USD\n", "code")]:
        # when two rows of the file have no key
        r = _upload(api, path, text)
        # then each is told its key is required (the second is not "a duplicate" of the first)
        assert r.status_code == 422, r.text
        assert sorted((e["row"], e["field"], e["rule"]) for e in r.json()["errors"]) == [
            (2, column, "required"), (3, column, "required")], path


def test_empty_columns_a_spreadsheet_saves_after_the_last_one_are_left_out(api):
    # given a file saved by a spreadsheet, with two empty columns after the last named one
    text = "sku,name,list_price,currency,,\r\nS-1,Sheet one,1.50,USD,,\r\nS-2,Sheet two,2,USD\r\n"
    # when it is imported, then its rows are read as if the empty columns were not there
    r = _upload(api, "/imports/products", text)
    assert (r.status_code, r.json()["created"]) == (200, 2), r.text
    # while a value under no name is still refused on its row, and nothing is written
    r = _upload(api, "/imports/products", "sku,name,list_price,currency,,\nS-3,Three,1,USD,,oops\n")
    assert r.status_code == 422, r.text
    assert [(e["row"], e["rule"]) for e in r.json()["errors"]] == [(2, "shape")], r.text
    assert len(api.get("/products").json()["items"]) == 2
