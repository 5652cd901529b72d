"""Returns: authorise against shipped lines, receive (restock or scrap, lot checked), credit less a fee."""

from __future__ import annotations

from tests.factories.catalog import create_product
from tests.factories.inventory import create_warehouse
from tests.factories.parties import create_customer
from tests.factories.sales import act, create_order, order_desk, shipped_order


def test_a_lot_tracked_return_must_name_the_lot_shipped(api):
    # given a lot-tracked product shipped from lot L-7
    product = create_product(api, track_lots=True, list_price="20.00", currency="USD", standard_cost="8.00")["id"]
    warehouse = create_warehouse(api)["id"]
    act(api, "/stock/receipts", 201, {"warehouse_id": warehouse, "product_id": product, "quantity": "5",
                                      "unit_cost": "8.00", "lot_code": "L-7", "expiry_date": "2099-01-01"})
    customer = create_customer(api, currency="USD")["id"]
    order = act(api, "/sales-orders", 201, {"customer_id": customer,
                                            "lines": [{"product_id": product, "quantity": "2"}]})
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    act(api, f"/shipments/{shipment['id']}/ship")
    rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": order["lines"][0]["id"], "quantity": "1"}]})
    line = rma["lines"][0]["id"]
    # when it is received without a lot, or with another lot, it is refused
    assert api.post(f"/returns/{rma['id']}/receive").status_code == 422
    wrong = api.post(f"/returns/{rma['id']}/receive", json={"lines": [
        {"return_line_id": line, "quantity": "1", "lot_code": "L-9"}]})
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "lines[0].lot_code"
    # and with the lot shipped it is received back into stock
    received = act(api, f"/returns/{rma['id']}/receive", json={"lines": [
        {"return_line_id": line, "quantity": "1", "lot_code": "L-7"}]})
    assert received["status"] == "received" and received["lines"][0]["quantity_received"] == "1"
    stock = api.get(f"/stock?product_id={product}").json()
    items = stock["items"] if isinstance(stock, dict) else stock
    assert sum(float(i["on_hand"]) for i in items) == 4


def test_scrapped_return_credits_less_the_restocking_fee(api):
    desk = order_desk(api, stock=10)
    _, order = shipped_order(api, 4, desk)
    act(api, f"/sales-orders/{order['id']}/invoice", 201)  # 4 x 12.50
    rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "restocking_fee_percent": "20", "lines": [
        {"sales_order_line_id": order["lines"][0]["id"], "quantity": "2", "disposition": "scrap"}]})
    act(api, f"/returns/{rma['id']}/receive")
    notes = act(api, f"/returns/{rma['id']}/credit", 201)
    assert [n["total"] for n in notes] == ["20.00"]  # 25.00 less 20 %
    # scrapped goods do not come back into stock; a credited return cannot be credited twice
    stock = api.get(f"/stock?product_id={desk.product_id}").json()
    items = stock["items"] if isinstance(stock, dict) else stock
    assert sum(float(i["on_hand"]) for i in items) == 6
    assert api.post(f"/returns/{rma['id']}/credit").status_code == 409
    # and both documents are found in their lists, filtered by what they belong to
    listed = api.get("/returns", params={"sales_order_id": order["id"]}).json()
    assert ([r["id"] for r in listed["items"]], listed["next_cursor"]) == ([rma["id"]], None)
    assert api.get("/returns", params={"status": "cancelled"}).json()["items"] == []
    credited = api.get("/credit-notes", params={"customer_id": order["customer_id"]}).json()["items"]
    assert [(n["id"], n["total"]) for n in credited] == [(notes[0]["id"], "20.00")]


def test_nothing_shipped_nothing_to_return(api):
    desk = order_desk(api, stock=10)
    order = create_order(api, desk, 2)
    r = api.post("/returns", json={"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": order["lines"][0]["id"], "quantity": "1"}]})
    assert r.status_code == 422


def _billed(api, customer_id):
    from decimal import Decimal as D

    invoiced = sum(D(i["total"]) for i in api.get("/invoices", params={"customer_id": customer_id}).json()["items"])
    credited = sum(D(n["total"]) for n in api.get("/credit-notes", params={"customer_id": customer_id}
                                                  ).json()["items"])
    return invoiced - credited


def test_units_returned_before_they_were_invoiced_are_never_billed(api):
    from decimal import Decimal as D

    # given 4 units shipped and not invoiced, 3 of them sent back, received and credited
    desk, order = shipped_order(api, 4)
    rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": order["lines"][0]["id"], "quantity": "3", "disposition": "restock"}]})
    act(api, f"/returns/{rma['id']}/receive")
    assert act(api, f"/returns/{rma['id']}/credit", 201) == []  # nothing was billed: nothing to credit
    # and the return's end is told all the same: 3 units that will never be billed, no credit note
    told = [e for e in api.get("/events", params={"subject": f"return/{rma['id']}"}).json()["items"]]
    assert [e["type"] for e in told][-1] == "return.unbilled.v1"
    assert "return.credited.v1" not in [e["type"] for e in told]
    assert told[-1]["data"]["lines"] == [{"sales_order_line_id": order["lines"][0]["id"], "quantity": "3"}]
    # when the invoicing run goes, only the unit the customer kept is billed, and the order is done
    [invoice] = act(api, "/invoicing-runs", 201, {})
    assert D(invoice["lines"][0]["quantity"]) == 1 and _billed(api, desk.customer_id) == D("12.50")
    read = api.get(f"/sales-orders/{order['id']}").json()
    assert (read["invoice_status"], read["status"]) == ("invoiced", "closed")


def test_a_line_partly_invoiced_then_mostly_returned_bills_only_what_was_kept(api):
    from decimal import Decimal as D

    # given 10 shipped, 5 invoiced, then 8 returned: 5 credited against the invoice, 3 never billed
    desk = order_desk(api, stock=20)
    order = create_order(api, desk, 10)
    line = order["lines"][0]["id"]
    act(api, f"/sales-orders/{order['id']}/confirm")
    for quantity in (5, 5):
        shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"], "lines": [
            {"sales_order_line_id": line, "quantity": str(quantity)}]})
        act(api, f"/shipments/{shipment['id']}/ship", json={"carrier": "UPS", "tracking_number": "1Z"})
        if quantity == 5 and not api.get("/invoices", params={"customer_id": desk.customer_id}).json()["items"]:
            act(api, f"/sales-orders/{order['id']}/invoice", 201)
    rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": line, "quantity": "8", "disposition": "restock"}]})
    act(api, f"/returns/{rma['id']}/receive")
    [note] = act(api, f"/returns/{rma['id']}/credit", 201)
    assert note["total"] == "62.50"
    # and the return tells both: the note for the 5 invoiced, and the 3 that will never be billed
    told = {e["type"]: e["data"] for e in api.get("/events", params={"subject": f"return/{rma['id']}"}).json()["items"]}
    assert told["return.credited.v1"]["credit_note_id"] == note["id"]
    assert told["return.unbilled.v1"]["lines"] == [{"sales_order_line_id": line, "quantity": "3"}]
    # when the rest is invoiced: the 2 units kept, 25.00 in all
    act(api, "/invoicing-runs", 201, {})
    assert _billed(api, desk.customer_id) == D("25.00")
    assert api.get(f"/sales-orders/{order['id']}").json()["invoice_status"] == "invoiced"


def _shipped_from_lots(api, receipts, quantity, *, serials=False):
    """A lot-tracked product (serial-tracked too with `serials`) received as `receipts` — (lot, quantity,
    expiry, serial numbers) — and `quantity` of it ordered, confirmed and shipped (FEFO). Returns the
    product's id, the order and the shipment."""
    product = create_product(api, track_lots=True, track_serials=serials, list_price="20.00", currency="USD",
                             standard_cost="8.00")["id"]
    warehouse = create_warehouse(api)["id"]
    for lot, received, expiry, numbers in receipts:
        act(api, "/stock/receipts", 201, {"warehouse_id": warehouse, "product_id": product, "quantity": received,
                                          "unit_cost": "8.00", "lot_code": lot, "expiry_date": expiry,
                                          **({"serials": numbers} if numbers else {})})
    order = act(api, "/sales-orders", 201, {"customer_id": create_customer(api, currency="USD")["id"],
                                            "lines": [{"product_id": product, "quantity": quantity}]})
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    act(api, f"/shipments/{shipment['id']}/ship")
    return product, order, shipment


def test_a_line_shipped_from_two_lots_comes_back_as_one_receipt_line_per_lot(api):
    # given a lot-tracked product: 2 units of L-1 (expiring first) and 3 of L-2, and 4 shipped (FEFO: 2 + 2)
    product, order, _ = _shipped_from_lots(api, [("L-1", "2", "2098-01-01", []), ("L-2", "3", "2099-01-01", [])],
                                           "4")
    rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": order["lines"][0]["id"], "quantity": "4"}]})
    line = rma["lines"][0]["id"]
    # when all 4 are said to be of L-1, of which 2 were shipped: refused, nothing received
    wrong = api.post(f"/returns/{rma['id']}/receive", json={"lines": [
        {"return_line_id": line, "quantity": "4", "lot_code": "L-1"}]})
    assert wrong.status_code == 422 and [e["field"] for e in wrong.json()["errors"]] == ["lines[0].quantity"]
    # when they come back as two receipt lines, one per lot
    received = act(api, f"/returns/{rma['id']}/receive", json={"lines": [
        {"return_line_id": line, "quantity": "2", "lot_code": "L-1"},
        {"return_line_id": line, "quantity": "2", "lot_code": "L-2"}]})
    # then both count, and each lot has its units back
    assert received["lines"][0]["quantity_received"] == "4"
    at = api.get("/stock/locations", params={"product_id": product}).json()["items"]
    lots = {i["lot_code"]: i["on_hand"] for i in at}
    assert lots == {"L-1": "2", "L-2": "3"}, lots
    assert api.get(f"/sales-orders/{order['id']}").json()["lines"][0]["quantity_returned"] == "4"


def test_a_lot_comes_back_no_more_than_it_shipped_across_two_returns(api):
    # given 4 shipped from two lots: 2 of L-1 and 2 of L-2 (FEFO)
    product, order, _ = _shipped_from_lots(api, [("L-1", "2", "2098-01-01", []), ("L-2", "3", "2099-01-01", [])],
                                           "4")

    def receive_two_of_l1():
        rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "lines": [
            {"sales_order_line_id": order["lines"][0]["id"], "quantity": "2"}]})
        return api.post(f"/returns/{rma['id']}/receive", json={"lines": [
            {"return_line_id": rma["lines"][0]["id"], "quantity": "2", "lot_code": "L-1"}]})
    # when both units of L-1 come back on a first return
    assert receive_two_of_l1().status_code == 200
    # then a second return of two more "L-1" units is refused: only 2 of L-1 ever shipped
    again = receive_two_of_l1()
    assert again.status_code == 422, again.text
    assert again.json()["errors"][0]["message"] == ("only 2 of lot L-1 were shipped on this order, 2 of them came "
                                                    "back before")
    at = api.get("/stock/locations", params={"product_id": product}).json()["items"]
    assert {i["lot_code"]: i["on_hand"] for i in at} == {"L-1": "2", "L-2": "1"}


def test_a_serial_comes_back_in_the_lot_it_shipped_from(api):
    # given a lot- and serial-tracked product: S-1 in lot L-1, S-2 in lot L-2, both shipped on one line
    product, order, _ = _shipped_from_lots(api, [("L-1", "1", "2098-01-01", ["S-1"]),
                                                 ("L-2", "1", "2099-01-01", ["S-2"])], "2", serials=True)
    rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": order["lines"][0]["id"], "quantity": "1"}]})
    # when S-1 is said to come back in lot L-2 (shipped on the line, but not with S-1)
    wrong = api.post(f"/returns/{rma['id']}/receive", json={"lines": [
        {"return_line_id": rma["lines"][0]["id"], "quantity": "1", "lot_code": "L-2", "serials": ["S-1"]}]})
    # then it is refused, naming the serials, and nothing comes back
    assert wrong.status_code == 422, wrong.text
    assert [e["field"] for e in wrong.json()["errors"]] == ["lines[0].serials"]
    assert api.get("/stock/locations", params={"product_id": product}).json()["items"] == []


def test_a_lot_named_for_a_product_without_lots_is_refused_on_its_receipt_line(api):
    # given a product without lots, shipped
    _, order = shipped_order(api, 2)
    rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": order["lines"][0]["id"], "quantity": "1"}]})
    # when it is received naming a lot
    wrong = api.post(f"/returns/{rma['id']}/receive", json={"lines": [
        {"return_line_id": rma["lines"][0]["id"], "quantity": "1", "lot_code": "L-1"}]})
    # then the receipt line's lot is the field refused
    assert wrong.status_code == 422, wrong.text
    assert [e["field"] for e in wrong.json()["errors"]] == ["lines[0].lot_code"]


def test_a_serial_comes_back_once_on_the_returns_of_one_order(api):
    # given serials S-1 and S-2 shipped on a first order, S-1 returned and then shipped to someone else
    product = create_product(api, track_serials=True, list_price="20.00", currency="USD", standard_cost="8.00")["id"]
    warehouse = create_warehouse(api)["id"]
    act(api, "/stock/receipts", 201, {"warehouse_id": warehouse, "product_id": product, "quantity": "2",
                                      "unit_cost": "8.00", "serials": ["S-1", "S-2"]})

    def shipped(quantity):
        customer = create_customer(api, currency="USD")["id"]
        order = act(api, "/sales-orders", 201, {"customer_id": customer,
                                                "lines": [{"product_id": product, "quantity": quantity}]})
        act(api, f"/sales-orders/{order['id']}/confirm")
        act(api, f"/shipments/{act(api, '/shipments', 201, {'sales_order_id': order['id']})['id']}/ship")
        return order

    def receive_s1(order):
        rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "lines": [
            {"sales_order_line_id": order["lines"][0]["id"], "quantity": "1"}]})
        return api.post(f"/returns/{rma['id']}/receive", json={"lines": [
            {"return_line_id": rma["lines"][0]["id"], "quantity": "1", "serials": ["S-1"]}]})
    first = shipped("2")
    assert receive_s1(first).status_code == 200
    shipped("1")  # S-1 leaves again, to the second customer
    # when the first order's customer is said to return S-1 once more
    again = receive_s1(first)
    # then it is refused: S-1 is with the second customer, the first still has S-2
    assert again.status_code == 422, again.text
    assert again.json()["errors"] == [{"field": "lines[0].serials", "rule": "serial",
                                       "message": "S-1 came back on an earlier return of this order"}]
    assert api.get("/stock/locations", params={"product_id": product}).json()["items"] == []


def test_a_shipment_shows_the_lots_and_serials_that_left(api):
    # given S-1 in lot L-1 and S-2 in lot L-2 (expiring later), both shipped
    *_, shipment = _shipped_from_lots(api, [("L-1", "1", "2098-01-01", ["S-1"]),
                                           ("L-2", "1", "2099-01-01", ["S-2"])], "2", serials=True)
    assert shipment["lines"][0]["lots"] == []  # as created: nothing had left yet
    # then its line says which lots and serial numbers left (what a recall or a return asks)
    [line] = api.get(f"/shipments/{shipment['id']}").json()["lines"]
    assert sorted((lot["lot_code"], lot["quantity"], lot["serials"]) for lot in line["lots"]) == [
        ("L-1", "1", ["S-1"]), ("L-2", "1", ["S-2"])]


def test_the_order_desk_receives_a_return_and_credit_control_credits_it(api):
    from tests.api.conftest import Api, key_for

    # given an invoiced order, and a return the order desk authorised and received
    desk, order = shipped_order(api, 4)
    act(api, f"/sales-orders/{order['id']}/invoice", 201)
    clerk = Api(api.client, api.tenant, key_for(api.tenant, "sales"))
    rma = act(clerk, "/returns", 201, {"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": order["lines"][0]["id"], "quantity": "1"}]})
    act(clerk, f"/returns/{rma['id']}/receive")
    # when the order desk credits it: refused, as a credit note on the invoice is, and nothing is issued
    r = clerk.post(f"/returns/{rma['id']}/credit")
    assert (r.status_code, r.json()["permission"]) == (403, "billing.credit_note.create"), r.text
    assert api.get("/credit-notes", params={"customer_id": desk.customer_id}).json()["items"] == []
    # then credit control credits it
    controller = Api(api.client, api.tenant, key_for(api.tenant, "finance"))
    [note] = act(controller, f"/returns/{rma['id']}/credit", 201)
    assert note["total"] == "12.50"
    assert api.get(f"/returns/{rma['id']}").json()["status"] == "credited"


def test_returning_more_than_shipped_names_the_quantity_as_reads_do(api):
    # given 4 shipped, 1 of them already authorised back
    _, order = shipped_order(api, 4)
    line = order["lines"][0]["id"]
    act(api, "/returns", 201, {"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": line, "quantity": "1"}]})
    # when 4 more are asked back, the refusal names the 3 left as the order reads them ("3", not "3.0000")
    r = api.post("/returns", json={"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": line, "quantity": "4"}]})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "lines[0].quantity", "message": "only 3 shipped and not yet returned",
                                   "rule": "max"}]


def test_a_cancelled_return_is_told_and_shows_on_the_order_timeline(api):
    # given an authorised return
    _, order = shipped_order(api, 4)
    rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": order["lines"][0]["id"], "quantity": "2"}]})
    # when it is cancelled
    cancelled = act(api, f"/returns/{rma['id']}/cancel")
    assert (cancelled["status"], cancelled["allowed_actions"]) == ("cancelled", [])
    # then whoever was told it was authorised is told it is cancelled, on the order's timeline too
    timeline = api.get(f"/sales-orders/{order['id']}/timeline").json()["items"]
    told = [(e["type"], e["data"]) for e in timeline if e["subject"] == f"return/{rma['id']}"]
    assert [t for t, _ in told] == ["return.authorised.v1", "return.cancelled.v1"]
    assert told[1][1] == {"return_id": rma["id"], "number": rma["number"], "sales_order_id": order["id"]}


def test_a_line_shipped_at_two_costs_comes_back_at_its_shipped_cost(api):
    from tests.factories.inventory import adjust

    # given a line of 4 shipped in two shipments: 2 at 5.00, then (from stock bought at 11.00) 2 at 11.00
    desk = order_desk(api, stock=2, unit_cost="5.00")
    order = create_order(api, desk, 4)
    act(api, f"/sales-orders/{order['id']}/confirm")  # 2 reserved, 2 backordered
    for tracking in ("1Z-A", "1Z-B"):
        shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
        act(api, f"/shipments/{shipment['id']}/ship", json={"carrier": "UPS", "tracking_number": tracking})
        if tracking == "1Z-A":
            adjust(api, desk.warehouse_id, desk.product_id, 2, unit_cost="11.00")  # fills the backorder
    # when all 4 come back and are restocked
    rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": order["lines"][0]["id"], "quantity": "4"}]})
    act(api, f"/returns/{rma['id']}/receive")
    # then the stock takes back all the 32.00 the line cost (COGS reversed in full), not 4 x 5.00
    [item] = [i for i in api.get("/inventory/valuation").json()["items"] if i["product_id"] == desk.product_id]
    assert (item["quantity"], item["value"], item["unit_cost"]) == ("4", "32.00", "8.00")
