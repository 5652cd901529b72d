"""Details of API-CONTRACT.md an outside tool relies on: bodiless actions, numbers as inputs,
decimal strings as outputs, partial payments, list shapes."""

from __future__ import annotations

from decimal import Decimal as D


def _setup(api):
    wh = api.post("/warehouses", json={"code": "W1", "name": "One"}).json()["id"]
    api.post("/warehouses", json={"code": "W2", "name": "Two"})
    product = api.post("/products", json={"sku": "S1", "name": "Thing", "list_price": 10, "currency": "USD"}).json()
    customer = api.post("/customers", json={"code": "C1", "name": "Buyer", "currency": "USD"}).json()
    r = api.post("/stock/adjustments", json={"warehouse_id": wh, "product_id": product["id"], "quantity": 7,
                                             "reason": "count"})
    assert r.status_code == 201, r.text
    return wh, product, customer


def test_actions_need_no_body_and_money_is_decimal_strings(api):
    _wh, product, customer = _setup(api)
    assert product["list_price"] in ("10", "10.00", "10.0000")
    order = api.post("/sales-orders", json={"customer_id": customer["id"],
                                            "lines": [{"product_id": product["id"], "quantity": 3}]}).json()
    assert isinstance(order["total"], str) and D(order["subtotal"]) == D(30)
    # bodiless POSTs, as a plain HTTP client sends them
    confirm = api.client.post(f"/api/v1/sales-orders/{order['id']}/confirm", headers=api.headers)
    assert confirm.status_code == 200, confirm.text
    shipment = api.post("/shipments", json={"sales_order_id": order["id"]}).json()
    ship = api.client.post(f"/api/v1/shipments/{shipment['id']}/ship", headers=api.headers)
    assert ship.status_code == 200, ship.text
    invoice = api.client.post(f"/api/v1/sales-orders/{order['id']}/invoice", headers=api.headers)
    assert invoice.status_code == 201, invoice.text
    inv = invoice.json()
    # a partial payment leaves an amount due
    pay = api.post("/payments", json={"customer_id": customer["id"], "amount": 10, "currency": "USD",
                                      "allocations": [{"invoice_id": inv["id"], "amount": 10}]})
    assert pay.status_code == 201, pay.text
    after = api.get(f"/invoices/{inv['id']}").json()
    assert after["status"] != "paid"
    assert D(after["amount_due"]) == D(inv["total"]) - 10
    rest = D(after["amount_due"])
    api.post("/payments", json={"customer_id": customer["id"], "amount": str(rest), "currency": "USD",
                                "allocations": [{"invoice_id": inv["id"], "amount": str(rest)}]})
    assert api.get(f"/invoices/{inv['id']}").json()["status"] == "paid"


def test_stock_lists_warehouses_with_the_product(api):
    wh, product, _ = _setup(api)
    items = api.get("/stock", params={"product_id": product["id"]}).json()["items"]
    mine = [i for i in items if i["warehouse_id"] == wh]
    assert len(mine) == 1
    assert (D(mine[0]["on_hand"]), D(mine[0]["available"])) == (D(7), D(7))
    assert all(D(i["on_hand"]) == 0 for i in items if i["warehouse_id"] != wh)


def test_cancel_without_body(api):
    _, product, customer = _setup(api)
    order = api.post("/sales-orders", json={"customer_id": customer["id"],
                                            "lines": [{"product_id": product["id"], "quantity": "2"}]}).json()
    r = api.client.post(f"/api/v1/sales-orders/{order['id']}/cancel", headers=api.headers)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
