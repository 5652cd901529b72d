"""The fixed surface of API-CONTRACT.md, call by call: order, confirm, ship, invoice, pay."""

from __future__ import annotations

import uuid
from decimal import Decimal

from tests.factories.inventory import adjust
from tests.factories.sales import act, create_order, order_desk, shipped_order


def stock(api, product_id):
    r = api.get(f"/stock?product_id={product_id}")
    assert r.status_code == 200, r.text
    body = r.json()
    items = body["items"] if isinstance(body, dict) else body
    return (sum(Decimal(i["on_hand"]) for i in items), sum(Decimal(i["reserved"]) for i in items))


def trial_balance(api):
    r = api.get("/ledger/trial-balance")
    assert r.status_code == 200, r.text
    return r.json()


def test_order_to_cash_through_the_contract(api):
    # given a stocked product and a customer
    desk = order_desk(api, stock=10)
    # when an order is entered
    r = api.post("/sales-orders", json={"customer_id": desk.customer_id,
                                        "lines": [{"product_id": desk.product_id, "quantity": "4"}]})
    # then it is a draft numbered SO-000001, priced from the list price
    assert r.status_code == 201, r.text
    order = r.json()
    assert order["number"] == "SO-000001" and order["status"] == "draft"
    assert order["lines"][0]["unit_price"] == "12.50" and order["lines"][0]["line_total"] == "50.00"
    assert (order["subtotal"], order["tax_total"], order["total"]) == ("50.00", "0.00", "50.00")

    # when it is confirmed, stock is reserved
    confirmed = act(api, f"/sales-orders/{order['id']}/confirm")
    assert confirmed["status"] == "confirmed"
    assert stock(api, desk.product_id) == (10, 4)

    # when everything reserved is shipped, stock leaves
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    assert shipment["status"] == "draft" and shipment["lines"][0]["quantity"] == "4"
    shipped = act(api, f"/shipments/{shipment['id']}/ship", json={"carrier": "UPS", "tracking_number": "1Z"})
    assert shipped["status"] == "shipped"
    assert stock(api, desk.product_id) == (6, 0)
    assert api.get(f"/sales-orders/{order['id']}").json()["status"] == "shipped"

    # when it is invoiced
    invoice = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    assert (invoice["number"], invoice["status"], invoice["total"], invoice["amount_due"]) == (
        "INV-000001", "posted", "50.00", "50.00")
    # nothing is left to invoice
    again = api.post(f"/sales-orders/{order['id']}/invoice")
    assert again.status_code == 409, again.text

    # when it is paid in full
    payment = act(api, "/payments", 201, {"customer_id": desk.customer_id, "amount": "50.00", "currency": "USD",
                                          "allocations": [{"invoice_id": invoice["id"], "amount": "50.00"}]})
    assert payment["unapplied"] == "0.00"
    paid = api.get(f"/invoices/{invoice['id']}").json()
    assert (paid["status"], paid["amount_due"]) == ("paid", "0.00")
    assert api.get(f"/sales-orders/{order['id']}").json()["status"] == "closed"
    # and the books balance
    tb = trial_balance(api)
    assert Decimal(tb["total_debit"]) == Decimal(tb["total_credit"]) > 0


def test_partial_stock_is_reserved_and_the_rest_backordered(api):
    # given 3 in stock
    desk = order_desk(api, stock=3)
    order = create_order(api, desk, 5)
    # when the order for 5 is confirmed
    confirmed = act(api, f"/sales-orders/{order['id']}/confirm")
    # then 3 are reserved and 2 backordered
    line = confirmed["lines"][0]
    assert confirmed["status"] == "confirmed"
    assert (line["quantity_reserved"], line["quantity_backordered"]) == ("3", "2")
    # as inventory holds them: the answer shows what a later read shows
    assert api.get(f"/sales-orders/{order['id']}").json()["lines"] == confirmed["lines"]
    # and a shipment without lines takes the 3 reserved
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    assert shipment["lines"][0]["quantity"] == "3"
    act(api, f"/shipments/{shipment['id']}/ship")
    assert api.get(f"/sales-orders/{order['id']}").json()["status"] == "partially_shipped"
    # when stock arrives, the backorder is filled and ships
    adjust(api, desk.warehouse_id, desk.product_id, 2, unit_cost="5.00")
    refreshed = api.get(f"/sales-orders/{order['id']}").json()
    assert refreshed["lines"][0]["quantity_reserved"] == "2", refreshed
    second = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    act(api, f"/shipments/{second['id']}/ship")
    assert api.get(f"/sales-orders/{order['id']}").json()["status"] == "shipped"


def test_the_order_list_shows_backorders_as_filled_when_stock_arrived(api):
    # given an order for 5 with 3 in stock, confirmed: 2 backordered
    desk = order_desk(api, stock=3)
    order = create_order(api, desk, 5)
    act(api, f"/sales-orders/{order['id']}/confirm")
    draft = create_order(api, desk, 1)
    # when the 2 arrive and fill the backorder
    adjust(api, desk.warehouse_id, desk.product_id, 2, unit_cost="5.00")
    # then the list says what the order's own read says: all 5 reserved, nothing backordered
    one = api.get(f"/sales-orders/{order['id']}").json()
    assert (one["lines"][0]["quantity_reserved"], one["lines"][0]["quantity_backordered"]) == ("5", "0")
    listed = {o["id"]: o for o in api.get(f"/sales-orders?customer_id={desk.customer_id}").json()["items"]}
    assert listed[order["id"]]["lines"] == one["lines"]
    # and a draft holds nothing yet
    assert (listed[draft["id"]]["lines"][0]["quantity_reserved"],
            listed[draft["id"]]["lines"][0]["quantity_backordered"]) == (None, "0")


def test_cancel_releases_reservations(api):
    desk = order_desk(api, stock=10)
    order = create_order(api, desk, 4)
    act(api, f"/sales-orders/{order['id']}/confirm")
    assert stock(api, desk.product_id) == (10, 4)
    # when cancelled
    cancelled = act(api, f"/sales-orders/{order['id']}/cancel")
    # then nothing stays reserved
    assert cancelled["status"] == "cancelled"
    assert stock(api, desk.product_id) == (10, 0)
    # and a cancelled order cannot be confirmed: 409 naming what is allowed
    r = api.post(f"/sales-orders/{order['id']}/confirm")
    assert r.status_code == 409 and r.json()["allowed_actions"] == []


def test_open_shipments_cancelled_with_their_order_are_told_and_audited(api):
    # given two orders, each with a picked shipment the warehouse is working on
    desk = order_desk(api, stock=10)
    shipments = {}
    for verb, quantity in (("cancel", 2), ("close", 4)):
        order = create_order(api, desk, quantity)
        act(api, f"/sales-orders/{order['id']}/confirm")
        if verb == "close":  # partially shipped first: 1 left, 3 on the next shipment
            first = act(api, "/shipments", 201, {"sales_order_id": order["id"], "lines": [
                {"sales_order_line_id": order["lines"][0]["id"], "quantity": "1"}]})
            act(api, f"/shipments/{first['id']}/ship")
        shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
        act(api, f"/shipments/{shipment['id']}/pick")
        shipments[verb] = (order, shipment)
    # when one order is cancelled and the other closed short
    for verb, (order, _) in shipments.items():
        act(api, f"/sales-orders/{order['id']}/{verb}")
    # then each open shipment is cancelled, and says so as its own cancel would
    for order, shipment in shipments.values():
        assert api.get(f"/shipments/{shipment['id']}").json()["status"] == "cancelled"
        told = [e["data"]["status"] for e in api.get("/events", params={"type": "shipment.status_changed.v1"}).json()[
            "items"] if e["subject"] == f"shipment/{shipment['id']}"]
        assert told == ["picked", "cancelled"], told
        timeline = [e["type"] for e in api.get(f"/sales-orders/{order['id']}/timeline").json()["items"]]
        assert timeline.count("shipment.status_changed.v1") == 2, timeline
        audit = api.get("/audit-entries", params={"entity_type": "shipment", "entity_id": shipment["id"]}).json()
        assert "shipment.cancel" in [a["action"] for a in audit["items"]], audit


def test_over_the_credit_limit_the_order_goes_on_hold(api):
    desk = order_desk(api, stock=10, credit_limit="40.00")
    order = create_order(api, desk, 4)  # 50.00
    held = act(api, f"/sales-orders/{order['id']}/confirm")
    assert (held["status"], held["hold_reason"]) == ("on_hold", "credit")
    assert stock(api, desk.product_id) == (10, 0)
    credit = api.get(f"/customers/{desk.customer_id}/credit").json()
    assert credit == {"customer_id": desk.customer_id, "currency": "USD", "credit_limit": "40.00",
                      "open_receivables": "0.00", "uninvoiced_orders": "0.00", "exposure": "0.00",
                      "available": "40.00", "orders_on_credit_hold": 1}
    # the order desk that entered it may not release it, nor raise the limit to let it through
    from tests.api.conftest import Api, key_for

    desk_clerk = Api(api.client, api.tenant, key_for(api.tenant, "sales"))
    assert desk_clerk.post(f"/sales-orders/{order['id']}/release-hold").status_code == 403
    r = desk_clerk.patch(f"/customers/{desk.customer_id}", json={"credit_limit": "100.00"})
    assert (r.status_code, r.json()["permission"]) == (403, "parties.customer.credit"), r.text
    # credit control may do both: it sets the limit where it was, then releases the order
    controller = Api(api.client, api.tenant, key_for(api.tenant, "finance"))
    r = controller.patch(f"/customers/{desk.customer_id}", json={"credit_limit": "40.00"})
    assert r.status_code == 200, r.text
    released = act(controller, f"/sales-orders/{order['id']}/release-hold")
    assert released["status"] == "confirmed" and stock(api, desk.product_id) == (10, 4)
    assert (released["lines"][0]["quantity_reserved"], released["lines"][0]["quantity_backordered"]) == ("4", "0")
    assert api.get(f"/sales-orders/{order['id']}").json()["lines"] == released["lines"]
    # the confirmed order now counts against the limit, invoiced or not
    credit = api.get(f"/customers/{desk.customer_id}/credit").json()
    assert (credit["uninvoiced_orders"], credit["exposure"], credit["available"]) == ("50.00", "50.00", "-10.00")
    ship = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    act(api, f"/shipments/{ship['id']}/ship")
    act(api, f"/sales-orders/{order['id']}/invoice", 201)
    credit = api.get(f"/customers/{desk.customer_id}/credit").json()
    assert (credit["open_receivables"], credit["uninvoiced_orders"], credit["exposure"]) == ("50.00", "0.00", "50.00")
    assert api.get(f"/customers/{uuid.uuid4()}/credit").status_code == 404


def test_a_credit_hold_is_not_released_for_a_customer_blocked_since(api):
    # given an order held for credit, and its customer blocked afterwards
    desk = order_desk(api, stock=10, credit_limit="40.00")
    order = create_order(api, desk, 4)  # 50.00
    assert act(api, f"/sales-orders/{order['id']}/confirm")["status"] == "on_hold"
    assert api.patch(f"/customers/{desk.customer_id}", json={"status": "blocked"}).status_code == 200
    # when credit control releases the hold
    r = api.post(f"/sales-orders/{order['id']}/release-hold")
    # then it is refused as confirming would be, and nothing is reserved
    assert (r.status_code, r.json()["code"], r.json()["customer_status"]) == (409, "customer_not_active", "blocked")
    assert api.get(f"/sales-orders/{order['id']}").json()["status"] == "on_hold"
    assert stock(api, desk.product_id) == (10, 0)
    # once the customer is active again, the release goes through
    assert api.patch(f"/customers/{desk.customer_id}", json={"status": "active"}).status_code == 200
    assert act(api, f"/sales-orders/{order['id']}/release-hold")["status"] == "confirmed"
    assert stock(api, desk.product_id) == (10, 4)


def test_payment_errors_write_nothing(api):
    desk = order_desk(api, stock=10)
    order = create_order(api, desk, 4)
    act(api, f"/sales-orders/{order['id']}/confirm")
    ship = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    act(api, f"/shipments/{ship['id']}/ship")
    invoice = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    before = trial_balance(api)
    cases = [
        ({"amount": "50.00", "currency": "EUR", "allocations": [{"invoice_id": invoice["id"], "amount": "50.00"}]},
         422),
        ({"amount": "10.00", "currency": "USD", "allocations": [{"invoice_id": invoice["id"], "amount": "20.00"}]},
         422),
        ({"amount": "80.00", "currency": "USD", "allocations": [{"invoice_id": invoice["id"], "amount": "60.00"}]},
         409),
    ]
    for body, status in cases:
        r = api.post("/payments", json={"customer_id": desk.customer_id, **body})
        assert r.status_code == status, (body, r.text)
    after = api.get(f"/invoices/{invoice['id']}").json()
    assert (after["status"], after["amount_due"]) == ("posted", "50.00")
    assert trial_balance(api) == before
    assert api.get(f"/payments?customer_id={desk.customer_id}").json()["items"] == []


def test_a_retried_order_with_the_same_idempotency_key_is_entered_once(api):
    desk = order_desk(api, stock=5)
    body = {"customer_id": desk.customer_id, "lines": [{"product_id": desk.product_id, "quantity": "1"}]}
    first = api.post("/sales-orders", json=body, headers={"Idempotency-Key": "order-42"})
    again = api.post("/sales-orders", json=body, headers={"Idempotency-Key": "order-42"})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert len(api.get(f"/sales-orders?customer_id={desk.customer_id}").json()["items"]) == 1


def test_a_partially_shipped_order_closes_short(api):
    # given 3 of 5 shipped and 2 backordered
    desk = order_desk(api, stock=3)
    order = create_order(api, desk, 5)
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    act(api, f"/shipments/{shipment['id']}/ship")
    # and offered as the route the desk will call
    assert api.get(f"/sales-orders/{order['id']}").json()["allowed_actions"] == ["allocate", "close"]
    # when the desk closes it short
    closed = act(api, f"/sales-orders/{order['id']}/close")
    assert closed["status"] == "closed" and closed["allowed_actions"] == []
    # then arriving stock no longer goes to it, and the shipped 3 are still invoiced
    adjust(api, desk.warehouse_id, desk.product_id, 5, unit_cost="5.00")
    assert stock(api, desk.product_id) == (5, 0)
    invoice = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    assert invoice["total"] == "37.50"
    assert api.get(f"/sales-orders/{order['id']}").json()["invoice_status"] == "invoiced"


def test_what_an_order_closed_short_shipped_counts_against_credit_until_invoiced(api):
    # given 3 of 5 shipped (37.50 of 62.50), to a customer with a limit
    desk = order_desk(api, stock=3, credit_limit="100.00")
    order = create_order(api, desk, 5)
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    act(api, f"/shipments/{shipment['id']}/ship")

    def credit():
        c = api.get(f"/customers/{desk.customer_id}/credit").json()
        return c["open_receivables"], c["uninvoiced_orders"], c["available"]

    assert credit() == ("0.00", "62.50", "37.50")
    # when the order is closed short: the 2 never ship
    act(api, f"/sales-orders/{order['id']}/close")
    # then the 3 that left are still owed, not yet invoiced
    assert credit() == ("0.00", "37.50", "62.50")
    # so an order of 70.00 goes on hold rather than through
    over = create_order(api, desk, 5.6)
    assert act(api, f"/sales-orders/{over['id']}/confirm")["status"] == "on_hold"
    # and once invoiced they are receivables, counted once
    act(api, f"/sales-orders/{order['id']}/invoice", 201)
    assert credit() == ("37.50", "0.00", "62.50")


def test_units_returned_before_they_were_billed_no_longer_count_against_credit(api):
    # given 4 of 10 shipped (125.00 ordered), to a customer with a limit
    desk = order_desk(api, stock=4, credit_limit="1000.00")
    order = create_order(api, desk, 10)
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    act(api, f"/shipments/{shipment['id']}/ship")

    def credit():
        c = api.get(f"/customers/{desk.customer_id}/credit").json()
        return c["open_receivables"], c["uninvoiced_orders"], c["exposure"]

    assert credit() == ("0.00", "125.00", "125.00")
    # when 2 of them come back and are credited before they were invoiced
    rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": order["lines"][0]["id"], "quantity": "2"}]})
    act(api, f"/returns/{rma['id']}/receive", json={})
    act(api, f"/returns/{rma['id']}/credit", 201, json={})
    # then they are never billed, so no longer owed: 8 units (100.00) are left to bill
    assert credit() == ("0.00", "100.00", "100.00")
    # and once the other 2 shipped are invoiced, the 6 still to ship are what the order counts
    act(api, f"/sales-orders/{order['id']}/invoice", 201)
    assert credit() == ("25.00", "75.00", "100.00")


def test_an_order_invoiced_for_what_shipped_then_closed_short_is_invoiced(api):
    # given 3 of 5 shipped and those 3 invoiced
    desk = order_desk(api, stock=3)
    order = create_order(api, desk, 5)
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    act(api, f"/shipments/{shipment['id']}/ship")
    act(api, f"/sales-orders/{order['id']}/invoice", 201)
    assert api.get(f"/sales-orders/{order['id']}").json()["invoice_status"] == "partially_invoiced"
    # when the desk closes it short
    closed = act(api, f"/sales-orders/{order['id']}/close")
    # then nothing is left to bill: the order is invoiced, as if it had been invoiced after the close
    assert (closed["status"], closed["invoice_status"]) == ("closed", "invoiced")
    assert api.get(f"/sales-orders/{order['id']}").json()["invoice_status"] == "invoiced"
    assert api.post(f"/sales-orders/{order['id']}/invoice").json()["code"] == "nothing_to_invoice"


def test_allocating_again_answers_with_what_inventory_holds(api):
    # given a two-line order: one line in stock, the other only partly
    desk = order_desk(api, stock=10)
    short = order_desk(api, stock=1)
    order = create_order(api, desk, lines=[{"product_id": desk.product_id, "quantity": "4"},
                                           {"product_id": short.product_id, "quantity": "3"}])
    act(api, f"/sales-orders/{order['id']}/confirm")
    # and what was reserved has shipped
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    act(api, f"/shipments/{shipment['id']}/ship")
    # when the backorder is allocated again (the shipped line asks for nothing)
    allocated = act(api, f"/sales-orders/{order['id']}/allocate")
    # then the answer shows the quantities a later read shows
    first, second = allocated["lines"]
    assert (first["quantity_reserved"], first["quantity_backordered"]) == ("0", "0")
    assert (second["quantity_reserved"], second["quantity_backordered"]) == ("0", "2")
    assert api.get(f"/sales-orders/{order['id']}").json()["lines"] == allocated["lines"]


def test_a_shipped_order_offers_no_close_and_its_close_is_refused(api):
    # given an order shipped in full, not invoiced yet (it closes by itself once invoiced)
    _, order = shipped_order(api, 2, order_desk(api, stock=3))
    shipped = api.get(f"/sales-orders/{order['id']}").json()
    assert (shipped["status"], shipped["allowed_actions"]) == ("shipped", [])
    # when the desk asks to close it, or to allocate it again
    for action in ("close", "allocate"):
        r = api.post(f"/sales-orders/{order['id']}/{action}")
        # then 409, naming nothing a caller could do instead
        assert r.status_code == 409 and r.json()["allowed_actions"] == [], r.text
    # and invoicing closes it
    act(api, f"/sales-orders/{order['id']}/invoice", 201)
    assert api.get(f"/sales-orders/{order['id']}").json()["status"] == "closed"


def test_a_draft_order_is_changed_and_priced_again_then_no_more_once_confirmed(api):
    # given Texas tax, and a draft order of 4 shipped to Nevada (no tax there)
    act(api, "/tax-rates", 201, {"name": "Texas", "country": "US", "region": "TX", "rate_percent": "6.25"})
    desk, other = order_desk(api, stock=20), order_desk(api, stock=20, list_price="3.00")
    order = create_order(api, desk, 4, ship_to={"line1": "1 B St", "city": "Reno", "region": "NV", "country": "US"})
    assert (order["total"], order["tax_total"]) == ("50.00", "0.00")
    # when its lines are replaced: 2 of the first product and 10 of another, priced by the engine
    r = api.patch(f"/sales-orders/{order['id']}", json={"lines": [
        {"product_id": desk.product_id, "quantity": "2"}, {"product_id": other.product_id, "quantity": "10"}],
        "customer_po": " PO-77 "})
    assert r.status_code == 200, r.text
    changed = r.json()
    assert [(ln["line_no"], ln["quantity"], ln["unit_price"]) for ln in changed["lines"]] == [
        (1, "2", "12.50"), (2, "10", "3.00")]
    assert (changed["subtotal"], changed["total"], changed["customer_po"]) == ("55.00", "55.00", "PO-77")
    # and shipped to Texas instead: same prices, now taxed
    texas = api.patch(f"/sales-orders/{order['id']}", json={"ship_to": {"line1": "1 A St", "city": "Austin",
                                                                        "region": "TX", "country": "US"}}).json()
    assert (texas["subtotal"], texas["tax_total"], texas["lines"][1]["unit_price"]) == ("55.00", "3.44", "3.00")
    # then each change is audited and published, and the order reads as changed
    assert api.get(f"/sales-orders/{order['id']}").json()["lines"] == texas["lines"]
    updates = [e for e in api.get("/events", params={"type": "sales_order.updated.v1"}).json()["items"]
               if e["subject"] == f"sales_order/{order['id']}"]
    assert [e["data"]["changes"] for e in updates] == [["customer_po", "lines", "total"], ["ship_to", "total"]]
    # bad input is refused naming the field, and nothing changes
    for body, field in (({"lines": [{"product_id": desk.product_id, "quantity": "0"}]}, "lines[0].quantity"),
                        ({"lines": [{"product_id": str(uuid.uuid4()), "quantity": "1"}]}, "lines[0].product_id"),
                        ({"number": "SO-9"}, "number")):
        bad = api.patch(f"/sales-orders/{order['id']}", json=body)
        assert bad.status_code in (404, 422) and field in str(bad.json()), (body, bad.text)
    assert api.get(f"/sales-orders/{order['id']}").json()["total"] == texas["total"]
    # once confirmed it is no longer a draft: 409 naming what can be done
    act(api, f"/sales-orders/{order['id']}/confirm")
    late = api.patch(f"/sales-orders/{order['id']}", json={"notes": "too late"})
    assert late.status_code == 409 and late.json()["allowed_actions"] == ["allocate", "cancel"], late.text


def test_an_order_from_a_quote_keeps_its_lines_and_a_stale_change_is_refused(api):
    # given an order accepted from a quote
    desk = order_desk(api, stock=10)
    quote = act(api, "/quotes", 201, {"customer_id": desk.customer_id,
                                      "lines": [{"product_id": desk.product_id, "quantity": "3"}]})
    order = act(api, f"/quotes/{quote['id']}/accept", 201)
    # when its lines are changed: refused, the quote's prices were agreed; its notes may change
    r = api.patch(f"/sales-orders/{order['id']}", json={"lines": [{"product_id": desk.product_id, "quantity": "5"}]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "lines", r.text
    assert api.patch(f"/sales-orders/{order['id']}", json={"notes": "call first"}).json()["notes"] == "call first"
    # the order's ETag is given on its read and its change, and names its version
    noted = api.get(f"/sales-orders/{order['id']}")
    assert noted.headers["etag"] == f'W/"{order["id"]}-{noted.json()["version"]}"'
    fresh = api.client.patch(f"/api/v1/sales-orders/{order['id']}", json={"notes": "call first, then ship"},
                             headers={**api.headers, "If-Match": noted.headers["etag"]})
    assert fresh.status_code == 200 and fresh.headers["etag"] == f'W/"{order["id"]}-{fresh.json()["version"]}"'
    # and a change made against an older version of the order is refused (If-Match)
    stale = api.client.patch(f"/api/v1/sales-orders/{order['id']}", json={"notes": "x"},
                             headers={**api.headers, "If-Match": f'W/"{order["id"]}-{order["version"]}"'})
    assert stale.status_code == 412, stale.text


def test_replacing_the_lines_of_a_draft_at_the_same_total_is_a_new_version(api):
    # given a draft order of two products
    desk, other = order_desk(api, stock=20), order_desk(api, stock=20, list_price="3.00")
    order = create_order(api, desk, lines=[{"product_id": desk.product_id, "quantity": "2"},
                                           {"product_id": other.product_id, "quantity": "10"}])
    # when its lines are replaced by the same ones in the other order: same total, new lines
    r = api.patch(f"/sales-orders/{order['id']}", json={"lines": [
        {"product_id": other.product_id, "quantity": "10"}, {"product_id": desk.product_id, "quantity": "2"}]})
    assert r.status_code == 200, r.text
    changed = r.json()
    assert changed["total"] == order["total"] and changed["lines"][0]["product_id"] == other.product_id
    # then the order is a new version, and a change made against the old one is refused (If-Match)
    assert changed["version"] == api.get(f"/sales-orders/{order['id']}").json()["version"] > order["version"]
    stale = api.client.patch(f"/api/v1/sales-orders/{order['id']}", json={"notes": "x"},
                             headers={**api.headers, "If-Match": f'W/"{order["id"]}-{order["version"]}"'})
    assert stale.status_code == 412, stale.text


def test_an_order_held_for_credit_then_cancelled_is_held_for_nothing(api):
    desk = order_desk(api, stock=10, credit_limit="40.00")
    order = create_order(api, desk, 4)  # 50.00
    assert act(api, f"/sales-orders/{order['id']}/confirm")["hold_reason"] == "credit"
    cancelled = act(api, f"/sales-orders/{order['id']}/cancel")
    assert (cancelled["status"], cancelled["hold_reason"]) == ("cancelled", None)
    assert api.get(f"/customers/{desk.customer_id}/credit").json()["orders_on_credit_hold"] == 0
    [entry] = [a for a in api.get("/audit-entries", params={"entity_id": order["id"]}).json()["items"]
               if a["action"] == "sales_order.cancel"]
    assert entry["before"] == {"status": "on_hold", "hold_reason": "credit"}
