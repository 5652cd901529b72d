"""The price engine over HTTP: every rule of the documented order, and its explanation."""

from __future__ import annotations

from decimal import Decimal

from entrepot.kernel import clock
from tests.factories.catalog import create_product
from tests.factories.parties import create_customer
from tests.factories.pricing import create_price_list


def quote(api, customer, product, quantity="1", **params):
    r = api.get("/prices/quote", params={"customer_id": customer, "product_id": product, "quantity": quantity,
                                         **params})
    assert r.status_code == 200, r.text
    return r.json()


def test_list_price_when_no_rule_applies(api):
    # given
    p = create_product(api, list_price="20.00")["id"]
    c = create_customer(api)["id"]
    # when
    q = quote(api, c, p, "3")
    # then
    assert q["unit_price"] == "20.00" and q["currency"] == "USD" and q["rule"] == "list_price"
    assert q["line_total"] == "60.00"
    assert q["explanation"][-1]["result"] == "won"


def test_other_currency_without_rule_is_a_clear_422(api):
    p = create_product(api, list_price="20.00")["id"]
    c = create_customer(api, currency="EUR")["id"]
    r = api.get("/prices/quote", params={"customer_id": c, "product_id": p, "quantity": "1"})
    assert r.status_code == 422
    assert r.json()["code"] == "no_price"
    assert r.json()["errors"][0]["field"] == "product_id"


def test_tiers_priority_and_scope(api):
    # given a general list with tiers and a higher-priority group list
    p = create_product(api, list_price="20.00", standard_cost="10.00")["id"]
    c = create_customer(api, customer_group="dealers")["id"]
    create_price_list(api, code="GEN", priority=1, entries=[
        {"product_id": p, "value": "18", "min_quantity": 0, "max_quantity": 10},
        {"product_id": p, "value": "16", "min_quantity": 10},
    ])
    # then the tier covering the quantity is used
    assert quote(api, c, p, "9")["unit_price"] == "18.00"
    assert quote(api, c, p, "10")["unit_price"] == "16.00"
    # when a higher-priority group list gives 10 % off list
    create_price_list(api, code="DEAL", priority=5, scope="customer_group", customer_group="dealers",
                      entries=[{"product_id": p, "method": "discount", "value": "10"}])
    q = quote(api, c, p, "10")
    # then it wins even though its price is higher, and the explanation says why GEN lost
    assert q["unit_price"] == "18.00" and q["rule"] == "price_list:DEAL"
    lost = next(e for e in q["explanation"] if e["rule"] == "price_list:GEN")
    assert lost["result"] == "lost" and "priority" in lost["reason"]
    # and a customer outside the group keeps the general price
    other = create_customer(api)["id"]
    assert quote(api, other, p, "10")["rule"] == "price_list:GEN"


def test_markup_on_cost_and_category_entries(api):
    cat = api.post("/categories", json={"code": "TOOLS", "name": "Tools"}).json()["id"]
    sub = api.post("/categories", json={"code": "SAWS", "name": "Saws", "parent_id": cat}).json()["id"]
    p = create_product(api, list_price="50.00", standard_cost="30.00", category_id=sub)["id"]
    c = create_customer(api)["id"]
    create_price_list(api, code="CAT", entries=[{"category_id": cat, "method": "markup", "value": "25"}])
    q = quote(api, c, p)
    assert q["unit_price"] == "37.50" and q["rule"] == "price_list:CAT"


def test_contract_beats_lists_and_promotions(api):
    p = create_product(api, list_price="20.00")["id"]
    c = create_customer(api)["id"]
    create_price_list(api, code="PROMO", kind="promotion", valid_from="2026-01-01", valid_to="2026-12-31",
                      entries=[{"product_id": p, "value": "5"}])
    r = api.post("/contract-prices", json={"customer_id": c, "product_id": p, "unit_price": "15",
                                           "valid_from": "2026-03-01", "valid_to": "2026-03-31"})
    assert r.status_code == 201, r.text
    assert quote(api, c, p, date="2026-03-15")["rule"] == "contract"
    assert quote(api, c, p, date="2026-03-15")["unit_price"] == "15.00"
    # outside the contract, the lower promotion wins over the list price
    q = quote(api, c, p, date="2026-04-01")
    assert q["rule"] == "promotion:PROMO" and q["unit_price"] == "5.00"
    assert any(e["rule"] == "contract" and e["result"] == "skipped" for e in q["explanation"])
    # and after the promotion the list price is back, the analyst told why the promotion did not price it
    after = quote(api, c, p, date="2027-01-01")
    assert after["rule"] == "list_price"
    assert [(e["rule"], e["result"], e["reason"]) for e in after["explanation"] if e["rule"] == "promotion:PROMO"] == [
        ("promotion:PROMO", "skipped", "ended 2026-12-31")]
    # and the list price's own reason does not deny the list it has just named as skipped
    [list_note] = [e for e in after["explanation"] if e["rule"] == "list_price"]
    assert list_note["result"] == "won" and "offers" not in list_note["reason"], list_note
    # while another customer's own list is not named to this one
    other = create_customer(api)["id"]
    create_price_list(api, code="THEIRS", scope="customer", customer_id=other,
                      entries=[{"product_id": p, "value": "9"}])
    assert "price_list:THEIRS" not in [e["rule"] for e in quote(api, c, p, date="2027-01-01")["explanation"]]
    assert quote(api, other, p, date="2027-01-01")["rule"] == "price_list:THEIRS"


def test_promotion_only_when_lower(api):
    p = create_product(api, list_price="20.00")["id"]
    c = create_customer(api)["id"]
    create_price_list(api, code="PROMO", kind="promotion", valid_from="2020-01-01", valid_to="2099-12-31",
                      entries=[{"product_id": p, "value": "25"}])
    q = quote(api, c, p)
    assert q["rule"] == "list_price"
    assert [e["result"] for e in q["explanation"] if e["rule"] == "promotion:PROMO"] == ["lost"]


def test_channel_lists_apply_only_in_their_channel(api):
    p = create_product(api, list_price="20.00")["id"]
    c = create_customer(api)["id"]
    create_price_list(api, code="WEB", scope="channel", channel="web", entries=[{"product_id": p, "value": "19"}])
    assert quote(api, c, p)["rule"] == "list_price"
    assert quote(api, c, p, channel="web")["unit_price"] == "19.00"


def test_batch_quote(api):
    c = create_customer(api)["id"]
    ps = [create_product(api, list_price=f"{i}.00")["id"] for i in range(1, 4)]
    r = api.post("/prices/quote", json={"customer_id": c, "lines": [{"product_id": p, "quantity": 2} for p in ps]})
    assert r.status_code == 200, r.text
    assert [Decimal(x["line_total"]) for x in r.json()["lines"]] == [Decimal(2), Decimal(4), Decimal(6)]


def test_bad_quantity_and_unknown_records(api, other_api):
    p = create_product(api)["id"]
    c = create_customer(api)["id"]
    r = api.get("/prices/quote", params={"customer_id": c, "product_id": p, "quantity": "-1"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "quantity"
    r = api.get("/prices/quote", params={"customer_id": c, "product_id": p, "quantity": "abc"})
    assert r.status_code == 422
    foreign = create_product(other_api)["id"]
    assert api.get("/prices/quote", params={"customer_id": c, "product_id": foreign}).status_code == 404


def test_a_tier_added_later_prices_the_next_quote_even_while_the_clock_stands_still(api):
    # given a list whose only tier ends at 10, quoted for 50 (its entries now cached), all at one instant
    with clock.frozen_at(clock.now()):
        p = create_product(api, list_price="20.00")["id"]
        c = create_customer(api)["id"]
        pl = create_price_list(api, code="GEN", entries=[{"product_id": p, "value": "18", "max_quantity": "10"}])
        assert quote(api, c, p, "50")["rule"] == "list_price"
        version = api.get(f"/price-lists/{pl['id']}").headers["etag"]
        # when a tier from 10 up is added in the same instant
        r = api.post(f"/price-lists/{pl['id']}/entries", json={"entries": [{"product_id": p, "value": "14",
                                                                              "min_quantity": "10"}]})
        assert r.status_code == 201, r.text
        # then the next quote uses it, and the list is a new version
        q = quote(api, c, p, "50")
        assert (q["unit_price"], q["rule"]) == ("14.00", "price_list:GEN")
        assert api.get(f"/price-lists/{pl['id']}").headers["etag"] != version
        # and so does a removal
        assert api.delete(f"/price-lists/{pl['id']}/entries/{r.json()[0]['id']}").status_code == 204
        assert quote(api, c, p, "50")["rule"] == "list_price"


def test_a_list_pricing_by_its_category_tier_is_not_also_told_as_skipped(api):
    # given a list with a product tier from 10 up and a 5 % category discount
    cat = api.post("/categories", json={"code": "TOOLS", "name": "Tools"}).json()["id"]
    p = create_product(api, list_price="20.00", category_id=cat)["id"]
    c = create_customer(api)["id"]
    create_price_list(api, code="MIX", entries=[{"product_id": p, "value": "15", "min_quantity": "10"},
                                                 {"category_id": cat, "method": "discount", "value": "5"}])
    # when 1 is quoted (below the product tier)
    q = quote(api, c, p, "1")
    # then the list prices it by its category, and says so once: it is not also skipped
    assert (q["unit_price"], q["rule"]) == ("19.00", "price_list:MIX")
    assert [(e["result"], e["reason"]) for e in q["explanation"] if e["rule"] == "price_list:MIX"] == [
        ("won", "5% off list price 20.00 for its category (tier 0 and up); highest priority 0")]
    # while a list whose product tiers do not cover the quantity, and no category of it does, is skipped
    other = create_product(api, list_price="20.00")["id"]
    create_price_list(api, code="BULK", entries=[{"product_id": other, "value": "15", "min_quantity": "10"}])
    assert [(e["result"], e["reason"]) for e in quote(api, c, other, "1")["explanation"]
            if e["rule"] == "price_list:BULK"] == [("skipped", "no product tier covers quantity 1")]


def test_the_explanation_writes_prices_in_the_currencys_places(api):
    # given a yen customer, a yen product at 1000 and a list of 33.33 % off
    p = create_product(api, list_price="1000", currency="JPY")["id"]
    c = create_customer(api, currency="JPY")["id"]
    create_price_list(api, code="YEN", currency="JPY", entries=[{"product_id": p, "method": "discount",
                                                                 "value": "33.33"}])
    # when 3 are quoted
    q = quote(api, c, p, "3")
    # then the explanation says its prices as the quote does: whole yen
    assert (q["unit_price"], q["line_total"]) == ("667", "2001")
    notes = {e["rule"]: e for e in q["explanation"]}
    assert notes["price_list:YEN"]["unit_price"] == "667"
    assert notes["price_list:YEN"]["reason"] == "33.33% off list price 1000 (tier 0 and up); highest priority 0"
    assert notes["list_price"]["unit_price"] == "1000"
    # and a contract price with places beyond the yen keeps them, as the quote does
    r = api.post("/contract-prices", json={"customer_id": c, "product_id": p, "unit_price": "555.5"})
    assert r.status_code == 201, r.text
    q = quote(api, c, p, "3")
    assert q["unit_price"] == "555.5" and q["explanation"][0]["unit_price"] == "555.5"


def test_a_price_quote_says_whether_an_order_would_take_the_product(api):
    # given a product on sale, a discontinued one, and a web channel listing only the first
    customer = create_customer(api)["id"]
    on_sale, gone = create_product(api)["id"], create_product(api)["id"]
    assert api.post(f"/products/{gone}/status", json={"action": "discontinue"}).status_code == 200
    assert api.post("/channel-listings", json={"channel": "web", "product_id": on_sale}).status_code == 201
    # when a web shop asks their prices
    # then each is priced, and says whether an order would take it, and why not
    assert (quote(api, customer, on_sale)["sellable"], quote(api, customer, on_sale, channel="web")["sellable"]) == (
        True, True)
    answer = quote(api, customer, gone)
    assert answer["sellable"] is False and "discontinued" in answer["not_sellable_reason"], answer
    r = api.post("/prices/quote", json={"customer_id": customer, "channel": "web", "lines": [
        {"product_id": on_sale, "quantity": "1"}, {"product_id": gone, "quantity": "2"}]})
    assert r.status_code == 200, r.text
    assert [(ln["sellable"], ln["not_sellable_reason"] is None) for ln in r.json()["lines"]] == [
        (True, True), (False, False)]
    # and a product the channel does not list is not sellable there, though it is elsewhere
    other = create_product(api)["id"]
    assert quote(api, customer, other)["sellable"] is True
    web = quote(api, customer, other, channel="web")
    assert web["sellable"] is False and "not listed in channel web" in web["not_sellable_reason"], web
