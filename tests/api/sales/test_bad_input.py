"""Bad input at the order desk: a clear error, and nothing written."""

from __future__ import annotations

import uuid

from tests.api.conftest import Api, key_for
from tests.factories.sales import act, create_order, order_desk


def order_count(api):
    return len(api.get("/sales-orders?limit=200").json()["items"])


def test_refused_orders_write_nothing(api):
    desk = order_desk(api, stock=10)
    discontinued = order_desk(api, stock=0)
    act(api, f"/products/{discontinued.product_id}/status", json={"action": "discontinue"})
    cases = [
        ([{"product_id": desk.product_id, "quantity": "0"}], 422, "lines[0].quantity"),
        ([{"product_id": desk.product_id, "quantity": "-3"}], 422, "lines[0].quantity"),
        # malformed (refused by the schema) is named as the rules name it (docs/order-to-cash.md)
        ([{"product_id": desk.product_id, "quantity": "abc"}], 422, "lines[0].quantity"),
        ([{"product_id": desk.product_id}], 422, "lines[0].quantity"),
        ([{"product_id": desk.product_id, "quantity": "1"}, {"product_id": 7, "quantity": "1"}], 422,
         "lines[1].product_id"),
        # an id this tenant has no product for: a 404 naming the line, as an id in a path would be
        ([{"product_id": str(uuid.uuid4()), "quantity": "1"}], 404, "lines[0].product_id"),
        ([{"product_id": discontinued.product_id, "quantity": "1"}], 409, None),
        ([], 422, None),
    ]
    for lines, status, field in cases:
        r = api.post("/sales-orders", json={"customer_id": desk.customer_id, "lines": lines})
        assert r.status_code == status, (lines, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        if field:
            assert field in [e["field"] for e in r.json()["errors"]], r.text
    unknown_customer = api.post("/sales-orders", json={"customer_id": str(uuid.uuid4()),
                                                       "lines": [{"product_id": desk.product_id, "quantity": "1"}]})
    assert unknown_customer.status_code == 404
    assert [e["field"] for e in unknown_customer.json()["errors"]] == ["customer_id"]
    assert order_count(api) == 0


def test_a_price_under_the_margin_guard_needs_permission(api):
    # given a clerk without pricing.override and a product costing 5.00
    desk = order_desk(api, stock=10, unit_cost="5.00")
    clerk = Api(api.client, api.tenant, key_for(api.tenant, "sales"))
    line = {"product_id": desk.product_id, "quantity": "1", "unit_price": "1.00"}
    # when the clerk prices it at 1.00
    r = clerk.post("/sales-orders", json={"customer_id": desk.customer_id, "lines": [line]})
    # then it is refused naming the line, and nothing is written
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "lines[0].unit_price"
    assert order_count(api) == 0
    # while an admin (who holds pricing.override) may
    assert api.post("/sales-orders", json={"customer_id": desk.customer_id, "lines": [line]}).status_code == 201


def test_a_price_under_the_margin_guard_let_through_by_pricing_override_is_audited(api):
    # given a product costing 5.00, and an admin (who holds pricing.override)
    desk = order_desk(api, stock=10, unit_cost="5.00")
    # when the admin enters one line under cost and one above it
    order = create_order(api, desk, lines=[{"product_id": desk.product_id, "quantity": "1", "unit_price": "4.50"},
                                           {"product_id": desk.product_id, "quantity": "1", "unit_price": "6.00"}])
    # then the line under cost is taken, and the override is in the audit trail: who, which price, what floor,
    # in the request that entered the order
    assert [ln["unit_price"] for ln in order["lines"]] == ["4.50", "6.00"]
    entries = api.get("/audit-entries", params={"entity_type": "product", "entity_id": desk.product_id}).json()
    [override] = [e for e in entries["items"] if e["action"] == "pricing.margin_override"]
    assert override["after"] == {"unit_price": "4.50", "floor": "5.0000", "field": "lines[0].unit_price"}
    [created] = api.get("/audit-entries", params={"entity_type": "sales_order",
                                                  "entity_id": order["id"]}).json()["items"]
    assert (override["actor"], override["request_id"]) == (created["actor"], created["request_id"])


def test_shipping_more_than_reserved_is_refused(api):
    desk = order_desk(api, stock=3)
    order = create_order(api, desk, 5)
    act(api, f"/sales-orders/{order['id']}/confirm")
    line = order["lines"][0]["id"]
    r = api.post("/shipments", json={"sales_order_id": order["id"],
                                     "lines": [{"sales_order_line_id": line, "quantity": "4"}]})
    assert r.status_code == 409, r.text
    assert r.json()["detail"].endswith(": 4 asked, 3 reserved and not yet on a shipment"), r.text  # as quantities read
    assert api.get(f"/shipments?sales_order_id={order['id']}").json()["items"] == []
    # a partial shipment of what is reserved is fine; then nothing is left to put on another
    act(api, "/shipments", 201, {"sales_order_id": order["id"], "lines": [{"sales_order_line_id": line,
                                                                          "quantity": "2"}]})
    act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    assert api.post("/shipments", json={"sales_order_id": order["id"]}).status_code == 409


def test_draft_orders_cannot_ship_or_invoice(api):
    desk = order_desk(api, stock=3)
    order = create_order(api, desk, 1)
    r = api.post("/shipments", json={"sales_order_id": order["id"]})
    assert r.status_code == 409 and r.json()["allowed_actions"] == ["cancel", "confirm"]
    r = api.post(f"/sales-orders/{order['id']}/invoice")
    assert r.status_code == 409 and r.json()["allowed_actions"] == ["cancel", "confirm"], r.text


def test_nothing_to_invoice_or_ship_names_the_allowed_actions(api):
    # given a confirmed order with nothing shipped, and nothing reserved (all backordered)
    desk = order_desk(api, stock=0)
    order = create_order(api, desk, 2)
    act(api, f"/sales-orders/{order['id']}/confirm")
    # when it is invoiced, or shipped
    invoiced = api.post(f"/sales-orders/{order['id']}/invoice")
    shipped = api.post("/shipments", json={"sales_order_id": order["id"]})
    # then each is a 409 problem that names the order's state and what it allows, as a refused transition does
    for r, code in ((invoiced, "nothing_to_invoice"), (shipped, "nothing_to_ship")):
        assert r.status_code == 409, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        assert (body["code"], body["state"]) == (code, "confirmed"), body
        assert body["allowed_actions"] == ["allocate", "cancel"], body


def test_shipping_twice_is_refused(api):
    desk = order_desk(api, stock=3)
    order = create_order(api, desk, 1)
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    act(api, f"/shipments/{shipment['id']}/ship")
    r = api.post(f"/shipments/{shipment['id']}/ship")
    assert r.status_code == 409 and r.json()["allowed_actions"] == ["deliver"]


def test_a_product_not_listed_in_the_channel_is_refused(api):
    # given a web channel that lists only one product
    desk = order_desk(api, stock=5)
    listed = order_desk(api, stock=5)
    act(api, "/channel-listings", 201, {"channel": "web", "product_id": listed.product_id})
    # when a web order asks for the other one
    r = api.post("/sales-orders", json={"customer_id": desk.customer_id, "channel": "web",
                                        "lines": [{"product_id": desk.product_id, "quantity": "1"}]})
    # then it is refused, naming the line
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lines[0].product_id", r.text
    assert order_count(api) == 0
    ok = api.post("/sales-orders", json={"customer_id": desk.customer_id, "channel": "web",
                                         "lines": [{"product_id": listed.product_id, "quantity": "1"}]})
    assert ok.status_code == 201, ok.text


def test_absurd_numbers_are_a_422_not_a_500(api):
    desk = order_desk(api, stock=1)
    for quantity in ("1e400", "99999999999999999999", "NaN", "Infinity", True, None, [1]):
        r = api.post("/sales-orders", json={"customer_id": desk.customer_id,
                                            "lines": [{"product_id": desk.product_id, "quantity": quantity}]})
        assert r.status_code == 422, (quantity, r.status_code, r.text)
    r = api.post("/payments", json={"customer_id": desk.customer_id, "amount": "1e30", "currency": "USD",
                                    "allocations": []})
    assert r.status_code == 422
    assert order_count(api) == 0


def test_an_order_for_a_customer_on_hold_or_blocked_is_a_409(api):
    # given a customer put on hold after an order was entered, and another customer blocked
    desk = order_desk(api, stock=10)
    entered = create_order(api, desk, quantity="1")
    act(api, f"/customers/{desk.customer_id}/status", json={"action": "hold"})
    # when the order desk enters or confirms an order for them
    refused = [api.post("/sales-orders", json={"customer_id": desk.customer_id,
                                               "lines": [{"product_id": desk.product_id, "quantity": "1"}]}),
               api.post(f"/sales-orders/{entered['id']}/confirm")]
    # then each is a 409 problem naming the customer's state, and nothing changed
    for r in refused:
        assert r.status_code == 409, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        body = r.json()
        assert (body["status"], body["code"], body["customer_status"]) == (409, "customer_not_active", "on_hold")
    assert order_count(api) == 1
    assert api.get(f"/sales-orders/{entered['id']}").json()["status"] == "draft"
    act(api, f"/customers/{desk.customer_id}/status", json={"action": "block"})
    blocked = api.post(f"/sales-orders/{entered['id']}/confirm")
    assert (blocked.status_code, blocked.json()["customer_status"]) == (409, "blocked")


def test_an_order_in_a_currency_the_books_cannot_convert_is_not_confirmed(api):
    # given a USD tenant, and a EUR customer's order with no EUR exchange rate on the books
    desk = order_desk(api, stock=5, currency="EUR")
    usd = order_desk(api, stock=5)
    order = create_order(api, desk, 2)
    # when the desk confirms it
    r = api.post(f"/sales-orders/{order['id']}/confirm")
    # then it is refused naming the currency, and stays a draft with nothing reserved (shipped, it
    # could not be invoiced, and it would stop every invoicing run of the tenant)
    assert r.status_code == 422 and r.json()["code"] == "no_exchange_rate", r.text
    assert [e["field"] for e in r.json()["errors"]] == ["currency"]
    assert api.get(f"/sales-orders/{order['id']}").json()["status"] == "draft"
    assert [float(s["reserved"]) for s in api.get(f"/stock?product_id={desk.product_id}").json()["items"]] == [0]
    # and once the rate is on the books, it confirms, ships and is billed beside the USD customer's order
    assert api.post("/ledger/exchange-rates", json={"currency": "EUR", "date": "2026-01-01",
                                                    "rate": "1.10"}).status_code == 201
    usd_order = create_order(api, usd, 1)
    for o in (order, usd_order):
        act(api, f"/sales-orders/{o['id']}/confirm")
        act(api, f"/shipments/{act(api, '/shipments', 201, {'sales_order_id': o['id']})['id']}/ship")
    invoices = act(api, "/invoicing-runs", 201, {})
    assert sorted(i["currency"] for i in invoices) == ["EUR", "USD"]
