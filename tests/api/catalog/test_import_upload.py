"""CSV import and export over the API (multipart upload)."""

from __future__ import annotations


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
