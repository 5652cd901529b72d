"""Shipping charges from a carrier service's rate table: weight bands, zones, free-shipping threshold."""

from __future__ import annotations

from tests.factories.catalog import create_product
from tests.factories.inventory import adjust
from tests.factories.sales import act, order_desk


def rates(api):
    for body in ({"zone": "US", "max_weight_kg": "5", "charge": "7.50", "free_over": "200.00"},
                 {"zone": "US", "max_weight_kg": "50", "charge": "19.00", "free_over": "200.00"},
                 {"zone": "*", "max_weight_kg": "30", "charge": "45.00"}):
        act(api, "/shipping-rates", 201, {"carrier": "UPS", "service": "ground", "currency": "USD", **body})


def test_the_charge_follows_weight_zone_and_threshold_and_is_invoiced_once(api):
    # given rate bands and a 2 kg product
    rates(api)
    desk = order_desk(api, stock=0)
    heavy = create_product(api, list_price="12.50", currency="USD", standard_cost="5.00", weight_kg="2")["id"]
    adjust(api, desk.warehouse_id, heavy, 100, unit_cost="5.00")
    act(api, f"/customers/{desk.customer_id}/addresses", 201, {"kind": "ship_to", "is_default": True,
                                                               "line1": "1 A St", "city": "Austin", "country": "US"})

    def order(quantity, **extra):
        r = api.post("/sales-orders", json={"customer_id": desk.customer_id, "shipping_carrier": "UPS",
                                            "shipping_service": "ground",
                                            "lines": [{"product_id": heavy, "quantity": str(quantity)}], **extra})
        assert r.status_code in (201, 422), r.text
        return r

    # 2 x 2 kg = 4 kg: the 5 kg band
    small = order(2).json()
    assert (small["shipping_charge"], small["subtotal"], small["total"]) == ("7.50", "32.50", "32.50")
    # 5 x 2 kg = 10 kg: the 50 kg band
    assert order(5).json()["shipping_charge"] == "19.00"
    # 20 x 12.50 = 250.00 ≥ 200.00: free
    assert order(12).json()["shipping_charge"] == "19.00"
    assert order(20).json()["shipping_charge"] == "0.00"
    # abroad: the * zone; too heavy for any band: refused
    abroad = order(2, ship_to={"country": "CA", "city": "Toronto"}).json()
    assert abroad["shipping_charge"] == "45.00", abroad
    assert order(40).status_code == 422
    # the charge is billed once, on the first invoice
    act(api, f"/sales-orders/{small['id']}/confirm")
    totals = []
    for _ in range(2):  # two shipments of one, each invoiced
        shipment = act(api, "/shipments", 201, {"sales_order_id": small["id"], "lines": [
            {"sales_order_line_id": small["lines"][0]["id"], "quantity": "1"}]})
        act(api, f"/shipments/{shipment['id']}/ship")
        totals.append(act(api, f"/sales-orders/{small['id']}/invoice", 201)["total"])
    assert totals == ["20.00", "12.50"]  # 12.50 + 7.50 shipping, then 12.50
    assert api.get(f"/sales-orders/{small['id']}").json()["invoiced_total"] == "32.50"


def test_a_carrier_without_its_service_is_refused_not_left_uncharged(api):
    # given a rate table and an order desk
    rates(api)
    desk = order_desk(api, stock=0)
    line = [{"product_id": desk.product_id, "quantity": "1"}]
    # when an order names a carrier but no service (or a service but no carrier)
    for given, missing in (({"shipping_carrier": "UPS"}, "shipping_service"),
                           ({"shipping_service": "ground"}, "shipping_carrier"),
                           ({"shipping_carrier": "UPS", "shipping_service": "  "}, "shipping_service")):
        r = api.post("/sales-orders", json={"customer_id": desk.customer_id, "lines": line, **given})
        # then it is a 422 naming what is missing, and no order is entered
        assert r.status_code == 422, r.text
        assert [e["field"] for e in r.json()["errors"]] == [missing]
    assert api.get(f"/sales-orders?customer_id={desk.customer_id}").json()["items"] == []
    # neither: no shipping charge, as before; both: charged
    assert act(api, "/sales-orders", 201, {"customer_id": desk.customer_id, "lines": line})["shipping_charge"] == "0.00"
    both = act(api, "/sales-orders", 201, {"customer_id": desk.customer_id, "lines": line,
                                           "shipping_carrier": " UPS ", "shipping_service": "ground"})
    assert (both["shipping_carrier"], both["shipping_charge"]) == ("UPS", "45.00")  # no ship-to country: zone *


def test_a_second_band_of_the_same_weight_is_refused_not_silently_ignored(api):
    # given a band of UPS ground up to 10 kg anywhere at 9.00
    band = {"carrier": "UPS", "service": "ground", "currency": "USD", "zone": "*", "max_weight_kg": "10"}
    act(api, "/shipping-rates", 201, {**band, "charge": "9.00"})
    # when another band of the same service, zone, weight and currency is entered (12.00)
    r = api.post("/shipping-rates", json={**band, "max_weight_kg": "10.000", "charge": "12.00"})
    # then it is refused, naming the weight: it could never be charged
    assert r.status_code == 409, r.text
    assert r.json()["field"] == "max_weight_kg"
    assert [b["charge"] for b in api.get("/shipping-rates").json()["items"]] == ["9.00"]
    # another weight, zone or currency is another band
    for other in ({"max_weight_kg": "20"}, {"zone": "US"}, {"currency": "EUR"}):
        act(api, "/shipping-rates", 201, {**band, **other, "charge": "12.00"})
    desk = order_desk(api, stock=0)
    order = act(api, "/sales-orders", 201, {"customer_id": desk.customer_id, "shipping_carrier": "UPS",
                                            "shipping_service": "ground",
                                            "lines": [{"product_id": desk.product_id, "quantity": "1"}]})
    assert order["shipping_charge"] == "9.00"


def test_an_order_from_a_quote_is_charged_shipping_when_accepted_with_a_carrier_service(api):
    # given rate bands, a 2 kg product and a sent quote of 2 at 12.50
    rates(api)
    desk = order_desk(api, stock=0)
    heavy = create_product(api, list_price="12.50", currency="USD", standard_cost="5.00", weight_kg="2")["id"]
    quote = act(api, "/quotes", 201, {"customer_id": desk.customer_id, "lines": [{"product_id": heavy,
                                                                                  "quantity": "2"}]})
    act(api, f"/quotes/{quote['id']}/send")
    # when it is accepted naming a carrier but no service, it is refused and stays sent
    r = api.post(f"/quotes/{quote['id']}/accept", json={"shipping_carrier": "UPS"})
    assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["shipping_service"], r.text
    assert api.get(f"/quotes/{quote['id']}").json()["status"] == "sent"
    # when it is accepted with both, shipping to the US
    order = act(api, f"/quotes/{quote['id']}/accept", 201, {
        "shipping_carrier": "UPS", "shipping_service": "ground", "requested_date": "2099-01-31",
        "ship_to": {"line1": "1 A St", "city": "Austin", "country": "US"}})
    # then the order keeps the quoted prices and is charged the 5 kg US band
    assert [(ln["quantity"], ln["unit_price"]) for ln in order["lines"]] == [("2", "12.50")]
    assert (order["shipping_carrier"], order["shipping_service"], order["shipping_charge"]) == ("UPS", "ground",
                                                                                                  "7.50")
    assert (order["subtotal"], order["total"], order["requested_date"]) == ("32.50", "32.50", "2099-01-31")
    assert order["ship_to"]["country"] == "US" and order["quote_id"] == quote["id"]
