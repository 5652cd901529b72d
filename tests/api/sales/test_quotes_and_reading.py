"""Quotes, shipment steps, lists, filters and the order timeline."""

from __future__ import annotations

from datetime import timedelta

from entrepot.kernel import clock
from entrepot.sales import quotes
from tests.factories.catalog import create_product
from tests.factories.sales import act, create_order, order_desk, shipped_order


def test_quote_accepted_into_an_order_at_the_quoted_price(api):
    desk = order_desk(api, stock=10)
    quote = act(api, "/quotes", 201, {"customer_id": desk.customer_id,
                                      "lines": [{"product_id": desk.product_id, "quantity": "3"}]})
    assert (quote["number"], quote["status"], quote["total"]) == ("QT-000001", "draft", "37.50")
    # the list price changes after quoting; the order keeps the quoted price
    act(api, f"/quotes/{quote['id']}/send")
    assert api.patch(f"/products/{desk.product_id}", json={"list_price": "20.00"}).status_code == 200
    order = act(api, f"/quotes/{quote['id']}/accept", 201)
    assert order["lines"][0]["unit_price"] == "12.50" and order["quote_id"] == quote["id"]
    # and its line says where the price came from: the quote, and the rule that priced it there
    assert order["lines"][0]["price_source"] == f"quote QT-000001: {quote['lines'][0]['price_source']}"
    # an accepted quote cannot be accepted again
    r = api.post(f"/quotes/{quote['id']}/accept")
    assert r.status_code == 409 and r.json()["allowed_actions"] == []


def test_a_declined_quote_is_told_to_the_event_stream(api):
    # given a sent quote
    desk = order_desk(api, stock=10)
    quote = act(api, "/quotes", 201, {"customer_id": desk.customer_id,
                                      "lines": [{"product_id": desk.product_id, "quantity": "3"}]})
    act(api, f"/quotes/{quote['id']}/send")
    # when the customer declines it
    assert act(api, f"/quotes/{quote['id']}/decline")["status"] == "declined"
    # then quote.declined.v1 says which quote and customer, after its sending, on the quote's subject
    told = [e for e in api.get("/events", params={"subject": f"quote/{quote['id']}"}).json()["items"]]
    assert [e["type"] for e in told][-2:] == ["quote.sent.v1", "quote.declined.v1"]
    assert told[-1]["data"] == {"quote_id": quote["id"], "number": quote["number"],
                                "customer_id": desk.customer_id, "reason": None}


def test_a_declined_quote_keeps_why_the_customer_declined_it(api):
    # given two sent quotes
    desk = order_desk(api, stock=10)
    sent = []
    for _ in range(2):
        quote = act(api, "/quotes", 201, {"customer_id": desk.customer_id,
                                          "lines": [{"product_id": desk.product_id, "quantity": "3"}]})
        sent.append(act(api, f"/quotes/{quote['id']}/send"))
    # a reason too long is refused, and the quote stays sent
    r = api.post(f"/quotes/{sent[0]['id']}/decline", json={"reason": "x" * 501})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "reason", r.text
    assert api.get(f"/quotes/{sent[0]['id']}").json()["status"] == "sent"
    # when the customer declines one, saying why
    declined = act(api, f"/quotes/{sent[0]['id']}/decline", json={"reason": "  lead time too long  "})
    # (500 characters with spaces around them fit: the length is the trimmed reason's)
    assert act(api, f"/quotes/{sent[1]['id']}/decline", json={"reason": f"  {'y' * 500}  "})["decline_reason"] == \
        "y" * 500
    # then the quote, its event and its audit entry keep the reason (trimmed)
    assert (declined["status"], declined["decline_reason"]) == ("declined", "lead time too long")
    assert api.get(f"/quotes/{sent[0]['id']}").json()["decline_reason"] == "lead time too long"
    [told] = [e for e in api.get("/events", params={"subject": f"quote/{sent[0]['id']}"}).json()["items"]
              if e["type"] == "quote.declined.v1"]
    assert told["data"]["reason"] == "lead time too long"
    [entry] = [a for a in api.get("/audit-entries", params={"entity_id": sent[0]["id"]}).json()["items"]
               if a["action"] == "quote.decline"]
    assert entry["after"]["decline_reason"] == "lead time too long"
    # and a quote declined without a reason (or with a blank one) has none
    third = act(api, "/quotes", 201, {"customer_id": desk.customer_id,
                                      "lines": [{"product_id": desk.product_id, "quantity": "1"}]})
    act(api, f"/quotes/{third['id']}/send")
    assert act(api, f"/quotes/{third['id']}/decline", json={"reason": " "})["decline_reason"] is None


def test_quotes_past_their_date_expire(api):
    desk = order_desk(api, stock=0)
    quote = act(api, "/quotes", 201, {"customer_id": desk.customer_id, "valid_until": clock.today().isoformat(),
                                      "lines": [{"product_id": desk.product_id, "quantity": "1"}]})
    assert quote["allowed_actions"] == ["accept", "send"]
    # when it is read and accepted tomorrow, before the expiry job ran
    with clock.frozen_at(clock.now() + timedelta(days=1)):
        read = api.get(f"/quotes/{quote['id']}").json()
        late = api.post(f"/quotes/{quote['id']}/accept")
    # then it no longer offers accept, and accepting is a 409 naming what a caller can still do (the
    # expiry is the scheduler's, not an action)
    assert read["allowed_actions"] == ["send"]
    assert late.status_code == 409 and late.json()["allowed_actions"] == ["send"], late.text
    # when the expiry job runs tomorrow
    with api.tenant.uow() as uow, clock.frozen_at(clock.now() + timedelta(days=1)):
        assert quotes.expire_quotes(uow) == 1
        uow.commit()
    # then the quote is expired and cannot be accepted
    assert api.get(f"/quotes/{quote['id']}").json()["status"] == "expired"
    assert api.post(f"/quotes/{quote['id']}/accept").status_code == 409


def test_shipment_steps_and_delivery(api):
    desk = order_desk(api, stock=5)
    order = create_order(api, desk, 2)
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    assert shipment["allowed_actions"] == ["cancel", "pick", "ship"]
    act(api, f"/shipments/{shipment['id']}/pick")
    bad = api.post(f"/shipments/{shipment['id']}/pack", json={"packages": [{"weight_kg": "0"}]})
    assert bad.status_code == 422
    packed = act(api, f"/shipments/{shipment['id']}/pack", json={"packages": [{"weight_kg": "1.5"}]})
    assert packed["status"] == "packed" and packed["packages"][0]["weight_kg"] == "1.5"
    shipped = act(api, f"/shipments/{shipment['id']}/ship", json={"carrier": "DHL", "service": "express",
                                                                   "tracking_number": "JD0001"})
    assert (shipped["carrier"], shipped["tracking_number"]) == ("DHL", "JD0001")
    delivered = act(api, f"/shipments/{shipment['id']}/deliver")
    assert delivered["status"] == "delivered" and delivered["delivered_at"]


def test_cancelled_shipment_frees_its_quantity_for_another(api):
    desk = order_desk(api, stock=5)
    order = create_order(api, desk, 2)
    act(api, f"/sales-orders/{order['id']}/confirm")
    first = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    assert api.post("/shipments", json={"sales_order_id": order["id"]}).status_code == 409
    act(api, f"/shipments/{first['id']}/cancel")
    again = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    assert again["lines"][0]["quantity"] == "2"


def test_lists_filter_and_the_timeline_is_in_order(api):
    desk = order_desk(api, stock=10)
    draft = create_order(api, desk, 1)
    confirmed = create_order(api, desk, 2)
    act(api, f"/sales-orders/{confirmed['id']}/confirm")
    listed = api.get(f"/sales-orders?status=confirmed&customer_id={desk.customer_id}").json()["items"]
    assert [o["id"] for o in listed] == [confirmed["id"]]
    assert [o["number"] for o in api.get("/sales-orders?limit=1").json()["items"]] == [draft["number"]]
    shipment = act(api, "/shipments", 201, {"sales_order_id": confirmed["id"]})
    act(api, f"/shipments/{shipment['id']}/ship")
    invoice = act(api, f"/sales-orders/{confirmed['id']}/invoice", 201)
    act(api, f"/sales-orders/{create_order(api, desk, 1)['id']}/confirm")  # the same product, another order
    timeline = api.get(f"/sales-orders/{confirmed['id']}/timeline").json()["items"]
    # the order's documents, its line's stock and the books they posted, not the other orders'
    assert [e["type"] for e in timeline] == ["sales_order.created.v1", "stock.reserved.v1",
                                             "sales_order.confirmed.v1", "shipment.created.v1", "stock.issued.v1",
                                             "shipment.shipped.v1", "journal_entry.posted.v1", "invoice.posted.v1",
                                             "sales_order.closed.v1", "journal_entry.posted.v1"]
    assert {e["data"]["demand_id"] for e in timeline if e["type"].startswith("stock.")} == \
        {confirmed["lines"][0]["id"]}
    assert [e["sequence"] for e in timeline] == sorted(e["sequence"] for e in timeline)
    # the shipment's cost of goods (posted under its stock move) and the invoice's receivable and revenue,
    # each told under its entry's subject
    issued = [m["id"] for m in api.get("/stock/moves", params={"product_id": desk.product_id}).json()["items"]
              if m["kind"] == "issue" and m["demand_id"] == confirmed["lines"][0]["id"]]
    postings = [e for e in timeline if e["type"] == "journal_entry.posted.v1"]
    assert [(e["data"]["source_type"], e["data"]["source_id"], e["data"]["total"]) for e in postings] == [
        ("shipment", issued[0], "10.00"), ("invoice", invoice["id"], invoice["total"])]
    assert [e["subject"] for e in postings] == [f"journal_entry/{e['data']['entry_id']}" for e in postings]


def test_promised_date_is_today_from_stock_or_the_supplier_lead_time(api):
    from tests.factories.parties import create_supplier

    desk = order_desk(api, stock=2)
    supplier = create_supplier(api)["id"]
    act(api, "/supplier-items", 201, {"supplier_id": supplier, "product_id": desk.product_id, "cost": "4.00",
                                      "currency": "USD", "lead_time_days": 5})
    from_stock = act(api, f"/sales-orders/{create_order(api, desk, 2)['id']}/confirm")
    assert from_stock["promised_date"] == clock.today().isoformat()
    backordered = act(api, f"/sales-orders/{create_order(api, desk, 3)['id']}/confirm")
    assert backordered["promised_date"] == (clock.today() + timedelta(days=5)).isoformat()


def test_a_promise_counts_no_lead_time_of_a_supplier_archived_or_blocked(api):
    from tests.factories.parties import create_supplier

    # given a backordered product bought from three suppliers: 2 days, 4 days and 9 days
    desk = order_desk(api, stock=0)
    quick, quicker, slow = (create_supplier(api)["id"] for _ in range(3))
    for supplier, days in ((quick, 4), (quicker, 2), (slow, 9)):
        act(api, "/supplier-items", 201, {"supplier_id": supplier, "product_id": desk.product_id, "cost": "4.00",
                                          "currency": "USD", "lead_time_days": days})
    # when the 2-day supplier is archived and the 4-day one blocked
    act(api, f"/suppliers/{quicker}/archive")
    assert api.patch(f"/suppliers/{quick}", json={"status": "blocked"}).status_code == 200
    confirmed = act(api, f"/sales-orders/{create_order(api, desk, 1)['id']}/confirm")
    # then the promise is the 9 days of the one still bought from
    assert confirmed["promised_date"] == (clock.today() + timedelta(days=9)).isoformat()
    # and with none left, the default 14 days
    act(api, f"/suppliers/{slow}/archive")
    confirmed = act(api, f"/sales-orders/{create_order(api, desk, 1)['id']}/confirm")
    assert confirmed["promised_date"] == (clock.today() + timedelta(days=14)).isoformat()


def test_documents_are_found_by_what_a_caller_quotes_over_the_phone(api):
    # given two orders entered on different days, one with the customer's PO number, shipped with a
    # tracking number, invoiced (net 30) and paid with a bank reference
    desk = order_desk(api, stock=20)
    with clock.frozen_at(clock.now() - timedelta(days=40)):
        old = create_order(api, desk, 1, customer_po=" PO-4711 ")  # as pasted, spaces and all
        act(api, f"/sales-orders/{old['id']}/confirm")
        shipment = act(api, "/shipments", 201, {"sales_order_id": old["id"]})
        act(api, f"/shipments/{shipment['id']}/ship", json={"carrier": "UPS", "tracking_number": "1Z4711 "})
        overdue = act(api, f"/sales-orders/{old['id']}/invoice", 201)
    new = create_order(api, desk, 2)
    act(api, f"/sales-orders/{new['id']}/confirm")
    act(api, f"/shipments/{act(api, '/shipments', 201, {'sales_order_id': new['id']})['id']}/ship")
    current = act(api, f"/sales-orders/{new['id']}/invoice", 201)
    paid = act(api, "/payments", 201, {"customer_id": desk.customer_id, "amount": current["total"],
                                       "currency": "USD", "reference": " BANK-99",
                                       "allocations": [{"invoice_id": current["id"], "amount": current["total"]}]})
    quote = act(api, "/quotes", 201, {"customer_id": desk.customer_id,
                                      "lines": [{"product_id": desk.product_id, "quantity": "1"}]})
    today, long_ago = clock.today().isoformat(), (clock.today() - timedelta(days=40)).isoformat()

    def found(path, **params):
        r = api.get(path, params=params)
        assert r.status_code == 200, (path, params, r.text)
        return [x["id"] for x in r.json()["items"]]
    # then each is found by what its caller has at hand
    assert found("/sales-orders", customer_po="PO-4711") == [old["id"]]
    assert api.get(f"/sales-orders/{old['id']}").json()["customer_po"] == "PO-4711"  # kept without the spaces
    assert found("/sales-orders", **{"from": today}) == [new["id"]]
    assert found("/sales-orders", to=long_ago) == [old["id"]]
    assert found("/shipments", tracking_number="1Z4711") == [shipment["id"]]
    assert found("/invoices", overdue="true") == [overdue["id"]]
    assert found("/invoices", number=current["number"]) == [current["id"]]
    assert found("/invoices", **{"from": today, "to": today}) == [current["id"]]
    assert found("/payments", reference="BANK-99") == [paid["id"]]
    assert found("/payments", to=long_ago) == []
    assert found("/quotes", number=quote["number"]) == [quote["id"]]
    # and a range that ends before it begins is refused, not an empty page
    backwards = api.get("/invoices", params={"from": today, "to": long_ago})
    assert backwards.status_code == 422 and backwards.json()["errors"][0]["field"] == "from"


def test_a_blank_text_filter_finds_everything_as_a_blank_number_does(api):
    # given a shipped order (tracking number 1Z999) without a customer PO, paid without a reference,
    # and a lot
    desk, order = shipped_order(api)
    invoice = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    act(api, "/payments", 201, {"customer_id": desk.customer_id, "amount": invoice["total"], "currency": "USD",
                                "allocations": [{"invoice_id": invoice["id"], "amount": invoice["total"]}]})
    lot = create_product(api, track_lots=True)["id"]
    act(api, "/stock/receipts", 201, {"warehouse_id": desk.warehouse_id, "product_id": lot, "quantity": "1",
                                      "unit_cost": "1", "lot_code": "L-1"})

    def count(path, **params):
        r = api.get(path, params=params)
        assert r.status_code == 200, (path, params, r.text)
        return len(r.json()["items"])
    # when a list is asked with an empty text field, as a search form sends it
    # then the field filters nothing, as `number=` already did
    for path, name in (("/sales-orders", "number"), ("/sales-orders", "customer_po"),
                       ("/shipments", "tracking_number"), ("/payments", "reference"), ("/lots", "code")):
        assert count(path, **{name: ""}) == count(path) == 1, (path, name)


def test_a_draft_quote_is_changed_and_priced_again_until_it_is_sent(api):
    # given a draft quote of 3 at the list price
    desk, other = order_desk(api, stock=10), order_desk(api, stock=10, list_price="3.00")
    quote = act(api, "/quotes", 201, {"customer_id": desk.customer_id,
                                      "lines": [{"product_id": desk.product_id, "quantity": "3"}]})
    etag = api.get(f"/quotes/{quote['id']}").headers["etag"]
    # when its lines, validity and PO are changed (with the ETag it was read with)
    later = (clock.today() + timedelta(days=60)).isoformat()
    r = api.client.patch(f"/api/v1/quotes/{quote['id']}", headers={**api.headers, "If-Match": etag}, json={
        "lines": [{"product_id": desk.product_id, "quantity": "1"}, {"product_id": other.product_id,
                                                                    "quantity": "10"}],
        "valid_until": later, "customer_po": "RFQ-12"})
    # then it is priced again, and the change published
    assert r.status_code == 200, r.text
    changed = r.json()
    assert ([(ln["quantity"], ln["unit_price"]) for ln in changed["lines"]], changed["total"]) == (
        [("1", "12.50"), ("10", "3.00")], "42.50")
    assert (changed["valid_until"], changed["customer_po"]) == (later, "RFQ-12")
    assert r.headers["etag"] != etag and api.get(f"/quotes/{quote['id']}").headers["etag"] == r.headers["etag"]
    events = api.get("/events", params={"type": "quote.updated.v1"}).json()["items"]
    assert [e["data"]["changes"] for e in events] == [["customer_po", "lines", "total", "valid_until"]]
    # and a change sent with the old ETag, a past validity date or an unknown field is refused
    stale = api.client.patch(f"/api/v1/quotes/{quote['id']}", headers={**api.headers, "If-Match": etag},
                             json={"customer_po": "x"})
    assert stale.status_code == 412
    past = api.patch(f"/quotes/{quote['id']}", json={"valid_until": "2001-01-01"})
    assert past.status_code == 422 and past.json()["errors"][0]["field"] == "valid_until"
    assert api.patch(f"/quotes/{quote['id']}", json={"status": "sent"}).status_code == 422
    # once sent, the customer has it as it was: no more changes
    act(api, f"/quotes/{quote['id']}/send")
    late = api.patch(f"/quotes/{quote['id']}", json={"customer_po": "RFQ-13"})
    assert late.status_code == 409 and late.json()["allowed_actions"] == ["accept", "decline"], late.text


def test_a_quote_is_not_sent_nor_priced_again_for_a_customer_blocked_since_it_was_drafted(api):
    # given a draft quote, and its customer blocked since
    desk = order_desk(api, stock=10)
    quote = act(api, "/quotes", 201, {"customer_id": desk.customer_id,
                                      "lines": [{"product_id": desk.product_id, "quantity": "3"}]})
    act(api, f"/customers/{desk.customer_id}/status", json={"action": "block"})
    # when the desk sends it, or prices its lines again
    refused = [api.post(f"/quotes/{quote['id']}/send"),
               api.patch(f"/quotes/{quote['id']}", json={"lines": [{"product_id": desk.product_id,
                                                                     "quantity": "5"}]})]
    # then each is a 409 naming the customer's state, and the quote is as it was
    for r in refused:
        assert (r.status_code, r.json()["code"], r.json()["customer_status"]) == (
            409, "customer_not_active", "blocked"), r.text
    again = api.get(f"/quotes/{quote['id']}").json()
    assert (again["status"], again["total"]) == ("draft", quote["total"])
    # while declining a sent quote stays possible whatever the customer's state
    act(api, f"/customers/{desk.customer_id}/status", json={"action": "unblock"})
    act(api, f"/quotes/{quote['id']}/send")
    act(api, f"/customers/{desk.customer_id}/status", json={"action": "block"})
    assert act(api, f"/quotes/{quote['id']}/decline")["status"] == "declined"


def test_the_timeline_shows_the_books_of_each_document_and_a_shared_payment_on_both_orders(api):
    # given two orders of one customer shipped and invoiced, and one payment for both invoices
    desk = order_desk(api, stock=10)
    _, first = shipped_order(api, 2, desk)
    _, second = shipped_order(api, 3, desk)
    invoices = [act(api, f"/sales-orders/{o['id']}/invoice", 201) for o in (first, second)]
    payment = act(api, "/payments", 201, {
        "customer_id": desk.customer_id, "currency": "USD", "amount": str(sum(float(i["total"]) for i in invoices)),
        "allocations": [{"invoice_id": i["id"], "amount": i["total"]} for i in invoices]})
    # when a unit of the first comes back to stock, is credited, and the credit paid back
    rma = act(api, "/returns", 201, {"sales_order_id": first["id"], "lines": [
        {"sales_order_line_id": first["lines"][0]["id"], "quantity": "1"}]})
    act(api, f"/returns/{rma['id']}/receive")
    [note] = act(api, f"/returns/{rma['id']}/credit", 201)
    act(api, f"/credit-notes/{note['id']}/refund", json={"amount": note["total"]})
    # then each order's timeline shows, after each of its documents' events, the entry that document posted:
    # cost of goods per shipment, the invoice, the payment (on both orders: it paid both), the restock (under
    # its stock move), the credit note and its refund
    moves = api.get("/stock/moves", params={"product_id": desk.product_id}).json()["items"]
    issued = {o["id"]: next(m["id"] for m in moves if m["kind"] == "issue" and m["demand_id"] == o["lines"][0]["id"])
              for o in (first, second)}
    restocked = next(m["id"] for m in moves if m["kind"] == "return" and m["reference"] == rma["number"])
    timelines = {o["id"]: api.get(f"/sales-orders/{o['id']}/timeline").json()["items"] for o in (first, second)}
    postings = {order: [(e["data"]["source_type"], e["data"]["source_id"], e["data"]["total"]) for e in t
                        if e["type"] == "journal_entry.posted.v1"] for order, t in timelines.items()}
    assert postings[first["id"]] == [
        ("shipment", issued[first["id"]], "10.00"), ("invoice", invoices[0]["id"], "25.00"),
        ("customer_payment", payment["id"], "62.50"), ("stock_return", restocked, "5.00"),
        ("credit_note", note["id"], "12.50"), ("customer_refund", note["id"], "12.50")]
    assert postings[second["id"]] == [
        ("shipment", issued[second["id"]], "15.00"), ("invoice", invoices[1]["id"], "37.50"),
        ("customer_payment", payment["id"], "62.50")]
    assert [e["type"] for e in timelines[first["id"]]][-11:] == [
        "invoice.paid.v1", "payment.received.v1", "journal_entry.posted.v1",
        "return.authorised.v1", "return.received.v1", "journal_entry.posted.v1",
        "credit_note.issued.v1", "return.credited.v1", "journal_entry.posted.v1",
        "credit_note.refunded.v1", "journal_entry.posted.v1"]
    # the payment's entry is the same event on both
    paid = [[e["id"] for e in t if e["data"].get("source_type") == "customer_payment"] for t in timelines.values()]
    assert paid[0] == paid[1] and len(paid[0]) == 1
