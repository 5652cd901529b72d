"""The built-in tax engine as finance meets it: rates that change, ship-tos as people type them."""

from __future__ import annotations

from datetime import UTC, date, datetime

from entrepot.kernel import clock
from tests.factories.sales import act, create_order, order_desk

BERLIN = {"line1": "Unter den Linden 1", "city": "Berlin", "country": "DE"}


def invoice_on(api, desk, day):
    """An order of 4 x 12.50 to Berlin entered, shipped and invoiced on `day`."""
    with clock.frozen_at(datetime(day.year, day.month, day.day, 12, tzinfo=UTC)):
        order = create_order(api, desk, 4, ship_to=BERLIN)
        act(api, f"/sales-orders/{order['id']}/confirm")
        shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
        act(api, f"/shipments/{shipment['id']}/ship")
        return order, act(api, f"/sales-orders/{order['id']}/invoice", 201)


def test_a_rate_from_a_day_replaces_the_open_ended_rate_before_it_from_that_day(api):
    # given German VAT at 19 % with no end (a rate cannot be changed once entered), then a
    # temporary 16 % from 1 July to 31 December 2026
    act(api, "/tax-rates", 201, {"name": "DE standard", "country": "DE", "rate_percent": "19"})
    act(api, "/tax-rates", 201, {"name": "DE reduced 2026", "country": "DE", "rate_percent": "16",
                                 "valid_from": "2026-07-01", "valid_to": "2026-12-31"})
    desk = order_desk(api, stock=20)
    # when orders are invoiced on the last day before, the first day of and the day after the cut
    _, june = invoice_on(api, desk, date(2026, 6, 30))
    _, july = invoice_on(api, desk, date(2026, 7, 1))
    _, january = invoice_on(api, desk, date(2027, 1, 1))
    # then each is taxed at the rate in force that day: the later rate wins while it is valid
    assert [(i["issued_on"], i["lines"][0]["tax_rate_percent"], i["tax_total"]) for i in (june, july, january)] == [
        ("2026-06-30", "19", "9.50"), ("2026-07-01", "16", "8.00"), ("2027-01-01", "19", "9.50")]
    # and a rate entered again for the same place, class and first day replaces the one before (a
    # mistyped rate is corrected so, as rates cannot be edited)
    act(api, "/tax-rates", 201, {"name": "DE standard", "country": "DE", "rate_percent": "20"})
    with clock.frozen_at(datetime(2027, 2, 1, 12, tzinfo=UTC)):
        assert create_order(api, desk, 4, ship_to=BERLIN)["lines"][0]["tax_rate_percent"] == "20"


def test_an_order_is_estimated_on_its_day_and_its_invoice_and_credit_note_follow_the_invoice_day(api):
    # given a rate that changes at midnight on 1 July
    act(api, "/tax-rates", 201, {"name": "DE old", "country": "DE", "rate_percent": "10", "valid_to": "2026-06-30"})
    act(api, "/tax-rates", 201, {"name": "DE new", "country": "DE", "rate_percent": "20",
                                 "valid_from": "2026-07-01"})
    desk = order_desk(api, stock=20)
    # when an order is entered and shipped on 30 June and invoiced on 1 July
    with clock.frozen_at(datetime(2026, 6, 30, 12, tzinfo=UTC)):
        order = create_order(api, desk, 4, ship_to=BERLIN)
        act(api, f"/sales-orders/{order['id']}/confirm")
        shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
        act(api, f"/shipments/{shipment['id']}/ship")
    with clock.frozen_at(datetime(2026, 7, 1, 12, tzinfo=UTC)):
        invoice = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    # and a unit is credited later still
    with clock.frozen_at(datetime(2026, 7, 20, 12, tzinfo=UTC)):
        note = act(api, f"/invoices/{invoice['id']}/credit-notes", 201, {"lines": [
            {"invoice_line_id": invoice["lines"][0]["id"], "quantity": "1"}]})
    # then the order estimated 10 %, the invoice is taxed at the rate of its own day and the note
    # takes back the tax the invoice charged
    assert (order["tax_total"], invoice["tax_total"], note["tax_total"]) == ("5.00", "10.00", "2.50")
    payable = {ln["account_code"]: ln for ln in api.get("/ledger/trial-balance").json()["lines"]}["2200"]
    assert (payable["credit"], payable["debit"]) == ("7.50", "0.00")


def test_a_ship_to_region_is_matched_whatever_its_case_and_spaces(api):
    # given California's rate, one entered as "CA" and New York's entered as " ny "
    act(api, "/tax-rates", 201, {"name": "California", "country": "US", "region": "CA", "rate_percent": "7.25"})
    act(api, "/tax-rates", 201, {"name": "New York", "country": "US", "region": " ny ", "rate_percent": "4"})
    desk = order_desk(api, stock=20)
    # when orders ship to the region typed as people type it
    taxed = [create_order(api, desk, 4, ship_to={"line1": "1 A St", "city": "X", "region": region,
                                                 "country": "US"})["tax_total"]
             for region in ("CA", "ca", " Ca ", "NY", "ny")]
    # then each is taxed at its region's rate, never silently at none
    assert taxed == ["3.63", "3.63", "3.63", "2.00", "2.00"]


def test_a_rate_with_more_places_than_are_kept_is_refused_not_rounded_behind_the_answer(api):
    # when a rate of five decimal places is entered
    r = api.post("/tax-rates", json={"name": "Odd", "country": "US", "rate_percent": "8.12345"})
    # then it is refused, naming the field, and nothing is kept
    assert r.status_code == 422, r.text
    assert [(e["field"], e["rule"]) for e in r.json()["errors"]] == [("rate_percent", "precision")]
    assert api.get("/tax-rates").json()["items"] == []
    # while four places are kept as given
    assert act(api, "/tax-rates", 201, {"name": "NYC", "country": "US", "rate_percent": "8.875"}
               )["rate_percent"] == "8.875"


def test_the_tax_basis_does_not_change_under_orders_and_quotes_priced_on_it(api):
    # given a tenant pricing before tax, 10 % in the US, and a confirmed order of 50.00 + 5.00 tax
    act(api, "/tax-rates", 201, {"name": "US", "country": "US", "rate_percent": "10"})
    desk = order_desk(api, stock=20)
    us = {"line1": "1 A St", "city": "Austin", "country": "US"}
    order = create_order(api, desk, 4, ship_to=us)
    act(api, f"/sales-orders/{order['id']}/confirm")
    assert order["total"] == "55.00"
    # when prices are switched to include tax
    r = api.patch("/tenant/settings", json={"prices_include_tax": True})
    # then it is refused, naming the order: billed after the switch, its 50.00 would be read as
    # including tax, and the customer charged 50.00 for what it was confirmed 55.00
    assert r.status_code == 409, r.text
    assert order["number"] in r.json()["detail"]
    assert api.get("/tenant/settings").json()["prices_include_tax"] is False
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    act(api, f"/shipments/{shipment['id']}/ship")
    assert act(api, f"/sales-orders/{order['id']}/invoice", 201)["total"] == "55.00"
    # and a quote sent at today's basis holds it too, until it is declined
    quote = act(api, "/quotes", 201, {"customer_id": desk.customer_id,
                                      "lines": [{"product_id": desk.product_id, "quantity": "1"}]})
    act(api, f"/quotes/{quote['id']}/send")
    held = api.patch("/tenant/settings", json={"prices_include_tax": True})
    assert held.status_code == 409 and quote["number"] in held.json()["detail"], held.text
    act(api, f"/quotes/{quote['id']}/decline")
    # with every order invoiced (or cancelled) and no quote open, the basis changes
    switched = api.patch("/tenant/settings", json={"prices_include_tax": True})
    assert switched.status_code == 200 and switched.json()["prices_include_tax"] is True, switched.text


def test_a_customer_without_a_ship_to_address_is_taxed_in_its_tax_country(api):
    # given German VAT, and a customer registered for tax in Germany with no address yet
    act(api, "/tax-rates", 201, {"name": "DE standard", "country": "DE", "rate_percent": "19"})
    desk = order_desk(api, tax_country="DE", tax_id="DE136695976")
    # when an order names no ship-to
    order = create_order(api, desk, 4)
    # then it is taxed at Germany's rate (4 x 12.50 = 50.00, VAT 9.50), as docs/master-data.md says
    assert order["tax_total"] == "9.50", order
