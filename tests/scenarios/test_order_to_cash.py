"""A day at the order desk, told through the API.

A Texas customer (net 30, 2 % off within 10 days, a 100.00 credit limit) asks
for ten widgets. The desk quotes, the customer accepts, the order trips the
credit limit and the credit manager releases it. Six are on the shelf: they
ship and are invoiced; the other four wait on a backorder that fills itself
when stock arrives, then ship and are invoiced too. One payment settles both
invoices with the early-payment discount. Two widgets come back: received,
restocked, credited. After every step: documents, stock, aging and the ledger.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tests.api.conftest import api as api
from tests.api.conftest import app, client  # noqa: F401 - the HTTP fixtures, shared with tests/api
from tests.factories.catalog import create_product
from tests.factories.inventory import adjust, create_warehouse
from tests.factories.parties import create_customer
from tests.factories.sales import act

pytestmark = pytest.mark.usefixtures("db_url")


class Desk:
    def __init__(self, client_api) -> None:
        self.api = client_api

    def get(self, path):
        r = self.api.get(path)
        assert r.status_code == 200, r.text
        return r.json()

    def stock(self, product_id):
        items = self.get(f"/stock?product_id={product_id}")
        items = items["items"] if isinstance(items, dict) else items
        return (sum(D(i["on_hand"]) for i in items), sum(D(i["reserved"]) for i in items))

    def receivable_balance(self):
        tb = self.get("/ledger/trial-balance")
        assert D(tb["total_debit"]) == D(tb["total_credit"]), "the ledger must balance"
        line = next((ln for ln in tb["lines"] if ln["account_code"] == "1100"), None)
        return D(line["debit"]) - D(line["credit"]) if line else D(0)

    def aging_total(self):
        return D(self.get("/receivables/aging")["total"])

    def books_agree(self, expected):
        assert self.aging_total() == self.receivable_balance() == D(expected)


def test_a_day_at_the_order_desk(api):
    desk = Desk(api)
    # --- given: Texas sales tax, a widget with six on the shelf, a customer with terms and a credit limit
    act(api, "/tax-rates", 201, {"name": "Texas", "country": "US", "region": "TX", "rate_percent": "6.25"})
    widget = create_product(api, sku="WIDGET-1", name="Widget", list_price="12.50", currency="USD",
                            standard_cost="5.00")["id"]
    warehouse = create_warehouse(api, code="DAL")["id"]
    adjust(api, warehouse, widget, 6, unit_cost="5.00")
    customer = create_customer(api, code="LONESTAR", name="Lone Star Supply", currency="USD", credit_limit="100.00",
                               payment_terms_days=30, early_discount_percent="2", early_discount_days=10)["id"]
    act(api, f"/customers/{customer}/addresses", 201, {"kind": "ship_to", "is_default": True, "line1": "1 Elm St",
                                                       "city": "Dallas", "region": "TX", "country": "US"})

    # --- a quote for ten, priced by the pricing engine, sent and accepted
    quote = act(api, "/quotes", 201, {"customer_id": customer, "lines": [{"product_id": widget, "quantity": "10"}]})
    assert (quote["subtotal"], quote["tax_total"], quote["total"]) == ("125.00", "7.81", "132.81")
    act(api, f"/quotes/{quote['id']}/send")
    order = act(api, f"/quotes/{quote['id']}/accept", 201)
    assert order["status"] == "draft" and order["quote_id"] == quote["id"] and order["total"] == "132.81"
    assert desk.get(f"/quotes/{quote['id']}")["status"] == "accepted"

    # --- confirming trips the credit limit: on hold, nothing reserved
    held = act(api, f"/sales-orders/{order['id']}/confirm")
    assert (held["status"], held["hold_reason"]) == ("on_hold", "credit")
    assert desk.stock(widget) == (6, 0)
    # shipping a held order is refused, naming what is allowed
    refused = api.post("/shipments", json={"sales_order_id": order["id"]})
    assert refused.status_code == 409 and "release_hold" in refused.json()["allowed_actions"]

    # --- the credit manager releases it: six reserved, four backordered, promised later
    released = act(api, f"/sales-orders/{order['id']}/release-hold")
    line = released["lines"][0]
    assert released["status"] == "confirmed"
    assert (line["quantity_reserved"], line["quantity_backordered"]) == ("6", "4")
    assert desk.stock(widget) == (6, 6)

    # --- the six ship
    first = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    # the pick list sends the picker to the Dallas stock location for all six
    [to_pick] = desk.get(f"/shipments/{first['id']}/pick-list")["lines"]
    assert [(p["warehouse_code"], p["location_code"], p["quantity"]) for p in to_pick["picks"]] == [
        ("DAL", "DAL/STOCK", "6")]
    act(api, f"/shipments/{first['id']}/pick")
    act(api, f"/shipments/{first['id']}/pack", json={"packages": [{"weight_kg": "3.2"}]})
    act(api, f"/shipments/{first['id']}/ship", json={"carrier": "UPS", "tracking_number": "1Z001"})
    assert desk.stock(widget) == (0, 0)
    assert desk.get(f"/sales-orders/{order['id']}")["status"] == "partially_shipped"
    desk.books_agree("0")

    # --- first invoice: the six shipped, due in 30 days, 2 % within 10
    inv1 = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    assert (inv1["number"], inv1["subtotal"], inv1["tax_total"], inv1["total"]) == (
        "INV-000001", "75.00", "4.69", "79.69")
    assert inv1["discount_percent"] == "2" and inv1["discount_until"] is not None
    assert api.post(f"/sales-orders/{order['id']}/invoice").status_code == 409  # nothing more shipped yet
    desk.books_agree("79.69")

    # --- stock arrives: the backorder fills itself, the four ship
    adjust(api, warehouse, widget, 10, unit_cost="5.00")
    assert desk.get(f"/sales-orders/{order['id']}")["lines"][0]["quantity_reserved"] == "4"
    second = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    act(api, f"/shipments/{second['id']}/ship", json={"carrier": "UPS", "tracking_number": "1Z002"})
    assert desk.stock(widget) == (6, 0)

    # --- second invoice; the order is fully shipped and invoiced, so it closes
    inv2 = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    assert (inv2["number"], inv2["total"]) == ("INV-000002", "53.13")
    closed = desk.get(f"/sales-orders/{order['id']}")
    assert (closed["status"], closed["invoice_status"]) == ("closed", "invoiced")
    desk.books_agree("132.82")

    # --- one payment covers both, within terms: 2 % off each
    pay = act(api, "/payments", 201, {"customer_id": customer, "amount": "130.17", "currency": "USD",
                                      "allocations": [{"invoice_id": inv1["id"], "amount": "78.10"},
                                                      {"invoice_id": inv2["id"], "amount": "52.07"}]})
    assert (pay["applied"], pay["discount"], pay["unapplied"]) == ("130.17", "2.65", "0.00")
    for inv in (inv1, inv2):
        assert desk.get(f"/invoices/{inv['id']}")["status"] == "paid"
    desk.books_agree("0")

    # --- two come back: authorised, received into stock, credited (the customer now holds a credit)
    rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "reason": "damaged box",
                                     "lines": [{"sales_order_line_id": line["id"], "quantity": "2"}]})
    too_many = api.post("/returns", json={"sales_order_id": order["id"],
                                          "lines": [{"sales_order_line_id": line["id"], "quantity": "9"}]})
    assert too_many.status_code == 422  # only 8 are shipped and not already on a return
    act(api, f"/returns/{rma['id']}/receive")
    assert desk.stock(widget) == (8, 0)
    notes = act(api, f"/returns/{rma['id']}/credit", 201)
    # credited from INV-000001: 2/6 of 75.00 and of its 4.69 tax, less the 2 % discount those two
    # earned when it was paid (0.53): the customer gets back what it paid for them
    assert [(n["total"], n["discount_reversed"], n["unapplied"]) for n in notes] == [("26.56", "0.53", "26.03")]
    desk.books_agree("-26.03")

    # --- and the timeline tells it all, in order
    types = [e["type"] for e in desk.get(f"/sales-orders/{order['id']}/timeline")["items"]]
    assert types[0] == "quote.created.v1"
    for expected in ("sales_order.created.v1", "sales_order.held.v1", "sales_order.hold_released.v1",
                     "shipment.shipped.v1", "invoice.posted.v1", "payment.received.v1", "invoice.paid.v1",
                     "return.received.v1", "credit_note.issued.v1", "return.credited.v1"):
        assert expected in types, expected
    assert types.index("sales_order.held.v1") < types.index("sales_order.hold_released.v1") < types.index(
        "invoice.posted.v1") < types.index("payment.received.v1")
