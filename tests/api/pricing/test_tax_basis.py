"""Price lists kept on the other tax basis than the tenant's: converted at the product's tax rate
where the order ships, before lists are compared."""

from __future__ import annotations

import io

from tests.factories.catalog import create_product
from tests.factories.parties import create_customer
from tests.factories.pricing import create_price_list


def act(api, path, status, body=None, method="post"):
    r = api.get(path) if method == "get" else getattr(api, method)(path, json=body)
    assert r.status_code == status, r.text
    return r.json()


def taxed_customer(api, region="TX", **overrides):
    """A customer shipping to a region taxed at 25 %."""
    customer = create_customer(api, **overrides)["id"]
    act(api, f"/customers/{customer}/addresses", 201, {"kind": "ship_to", "is_default": True, "line1": "1 A St",
                                                       "city": "Austin", "region": region, "country": "US"})
    return customer


def texas_at_25_percent(api):
    """Tax of 25 % in Texas, and a product listed at 150.00 before tax (cost 50.00)."""
    act(api, "/tax-rates", 201, {"name": "Texas", "country": "US", "region": "TX", "rate_percent": "25"})
    return create_product(api, list_price="150.00", standard_cost="50.00")["id"]


def quote(api, customer, product, quantity="1"):
    return act(api, f"/prices/quote?customer_id={customer}&product_id={product}&quantity={quantity}", 200,
               method="get")


def order(api, customer, product, quantity="2"):
    return act(api, "/sales-orders", 201, {"customer_id": customer,
                                           "lines": [{"product_id": product, "quantity": quantity}]})


def test_a_gross_list_competes_with_a_net_list_on_its_price_before_tax(api):
    # given a net tenant, 25 % tax in Texas, a net list at 110 and a gross list at 125 (100 before tax)
    product = texas_at_25_percent(api)
    customer = taxed_customer(api)
    create_price_list(api, code="NET", priority=1, entries=[{"product_id": product, "value": "110.00"}])
    gross = create_price_list(api, code="GROSS", priority=1, prices_include_tax=True,
                              entries=[{"product_id": product, "value": "125.00"}])
    assert gross["prices_include_tax"] is True
    # when the customer is quoted
    q = quote(api, customer, product)
    # then the gross list wins with its price before tax, and says how it got there
    assert (q["rule"], q["unit_price"]) == ("price_list:GROSS", "100.00")
    won = next(e for e in q["explanation"] if e["rule"] == "price_list:GROSS")
    assert "125.00 including tax = 100 before tax at 25%" in won["reason"], won
    lost = next(e for e in q["explanation"] if e["rule"] == "price_list:NET")
    assert lost["result"] == "lost" and lost["unit_price"] == "110.00"
    # and the order charges 100 + 25 % tax a unit: the gross list's price
    o = order(api, customer, product)
    assert (o["lines"][0]["unit_price"], o["subtotal"], o["tax_total"], o["total"]) == (
        "100.00", "200.00", "50.00", "250.00")


def test_a_gross_promotion_is_lower_only_when_lower_before_tax(api):
    act(api, "/tax-rates", 201, {"name": "Texas", "country": "US", "region": "TX", "rate_percent": "25"})
    product = create_product(api, list_price="105.00", standard_cost="50.00")["id"]
    customer = taxed_customer(api)
    # a promotion of 130 including tax is 104 before it: below the list price of 105
    create_price_list(api, code="SALE", kind="promotion", valid_from="2020-01-01", valid_to="2099-12-31",
                      prices_include_tax=True, entries=[{"product_id": product, "value": "130.00"}])
    q = quote(api, customer, product)
    assert (q["rule"], q["unit_price"]) == ("promotion:SALE", "104.00")


def test_a_net_list_on_a_gross_tenant_is_charged_with_its_tax(api):
    # given a tenant whose orders are priced including tax, and a list kept before tax
    act(api, "/tenant/settings", 200, {"prices_include_tax": True}, method="patch")
    product = texas_at_25_percent(api)
    customer = taxed_customer(api)
    create_price_list(api, code="TRADE", prices_include_tax=False, entries=[{"product_id": product, "value": "80.00"}])
    # then the order's unit price includes the tax: 80 before tax is 100 including it
    o = order(api, customer, product)
    assert (o["lines"][0]["unit_price"], o["subtotal"], o["tax_total"], o["total"]) == (
        "100.00", "160.00", "40.00", "200.00")


def test_an_exempt_customer_pays_a_gross_price_less_its_tax_and_no_tax(api):
    product = texas_at_25_percent(api)
    exempt = taxed_customer(api, tax_exempt=True, exemption_certificate="TX-9")
    create_price_list(api, code="GROSS", prices_include_tax=True, entries=[{"product_id": product, "value": "125.00"}])
    o = order(api, exempt, product, "1")
    assert (o["lines"][0]["unit_price"], o["tax_total"], o["total"]) == ("100.00", "0.00", "100.00")


def test_where_no_tax_applies_a_gross_price_is_the_price(api):
    product = texas_at_25_percent(api)
    in_nevada = taxed_customer(api, region="NV")
    create_price_list(api, code="GROSS", prices_include_tax=True, entries=[{"product_id": product, "value": "125.00"}])
    assert quote(api, in_nevada, product)["unit_price"] == "125.00"
    # an order shipping to Texas instead converts at Texas's rate
    o = act(api, "/sales-orders", 201, {"customer_id": in_nevada, "lines": [{"product_id": product, "quantity": "1"}],
                                        "ship_to": {"line1": "1 A St", "city": "Austin", "region": "TX",
                                                    "country": "US"}})
    assert (o["lines"][0]["unit_price"], o["total"]) == ("100.00", "125.00")


def test_a_quote_may_say_where_the_lines_would_ship(api):
    product = texas_at_25_percent(api)
    in_nevada = taxed_customer(api, region="NV")
    create_price_list(api, code="GROSS", prices_include_tax=True, entries=[{"product_id": product, "value": "125.00"}])
    to_texas = act(api, f"/prices/quote?customer_id={in_nevada}&product_id={product}&ship_to_country=US"
                        "&ship_to_region=TX", 200, method="get")
    assert to_texas["unit_price"] == "100.00"
    batch = act(api, "/prices/quote", 200, {"customer_id": in_nevada, "ship_to_country": "US", "ship_to_region": "TX",
                                            "lines": [{"product_id": product, "quantity": "2"}]})
    assert batch["lines"][0]["line_total"] == "200.00"
    for params, field in (("ship_to_country=XX", "ship_to_country"), ("ship_to_region=TX", "ship_to_region")):
        r = api.get(f"/prices/quote?customer_id={in_nevada}&product_id={product}&{params}")
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text


def test_a_lists_tax_basis_is_kept_changed_exported_and_imported(api):
    pl = create_price_list(api, code="BASIS")
    assert pl["prices_include_tax"] is None  # the tenant's basis
    changed = act(api, f"/price-lists/{pl['id']}", 200, {"prices_include_tax": True}, method="patch")
    assert changed["prices_include_tax"] is True
    back = act(api, f"/price-lists/{pl['id']}", 200, {"prices_include_tax": None}, method="patch")
    assert back["prices_include_tax"] is None
    assert api.post("/price-lists", json={"code": "BAD", "name": "x", "currency": "USD",
                                          "prices_include_tax": "sometimes"}).status_code == 422
    # the CSV carries it: export, then import a changed file
    act(api, f"/price-lists/{pl['id']}", 200, {"prices_include_tax": False}, method="patch")
    exported, r = reimport_with_basis(api, "BASIS", "true")
    assert exported == "false" and r.status_code in (200, 201), r.text
    assert api.get(f"/price-lists/{pl['id']}").json()["prices_include_tax"] is True
    _, r = reimport_with_basis(api, "BASIS", "sometimes")
    assert r.status_code == 422 and "prices_include_tax" in r.text


def reimport_with_basis(api, code, value):
    """Export the price lists, set the list's prices_include_tax cell, import the file: (the exported
    cell, the import's response)."""
    csv_text = api.get("/exports/price-lists").text
    header = csv_text.splitlines()[0].split(",")
    row = next(line for line in csv_text.splitlines() if line.startswith(f"{code},")).split(",")
    exported, row[header.index("prices_include_tax")] = row[header.index("prices_include_tax")], value
    upload = "\n".join([",".join(header), ",".join(row)]) + "\n"
    return exported, api.post("/imports/price-lists",
                              files={"file": ("lists.csv", io.BytesIO(upload.encode()), "text/csv")})


def test_discount_and_markup_entries_of_a_gross_list_are_not_converted(api):
    # given a net tenant and a gross list whose entries work from the product's net list price and cost
    act(api, "/tax-rates", 201, {"name": "Texas", "country": "US", "region": "TX", "rate_percent": "25"})
    discounted = create_product(api, list_price="150.00", standard_cost="50.00")["id"]
    marked_up = create_product(api, list_price="150.00", standard_cost="50.00")["id"]
    customer = taxed_customer(api)
    create_price_list(api, code="GROSS", prices_include_tax=True, entries=[
        {"product_id": discounted, "method": "discount", "value": "10"},
        {"product_id": marked_up, "method": "markup", "value": "40"}])
    # then 10 % off 150 is 135 and 40 % on 50 is 70, both before tax, as the tenant's prices are
    assert quote(api, customer, discounted)["unit_price"] == "135.00"
    assert quote(api, customer, marked_up)["unit_price"] == "70.00"


def test_a_converted_price_is_quoted_with_its_line_total_in_cents(api):
    act(api, "/tax-rates", 201, {"name": "Texas", "country": "US", "region": "TX", "rate_percent": "19"})
    product = create_product(api, list_price="50.00", standard_cost="5.00")["id"]
    customer = taxed_customer(api)
    create_price_list(api, code="GROSS", prices_include_tax=True, entries=[{"product_id": product, "value": "19.99"}])
    q = quote(api, customer, product, "3")
    assert (q["unit_price"], q["line_total"]) == ("16.7983", "50.39")
    o = order(api, customer, product, "3")
    assert (o["subtotal"], o["tax_total"], o["total"]) == ("50.39", "9.57", "59.96")  # within a cent of 59.97


def test_an_empty_tax_basis_cell_puts_an_imported_list_back_on_the_tenants_basis(api):
    pl = create_price_list(api, code="BACK", prices_include_tax=True)
    exported, r = reimport_with_basis(api, "BACK", "")
    assert exported == "true" and r.status_code in (200, 201), r.text
    assert api.get(f"/price-lists/{pl['id']}").json()["prices_include_tax"] is None
    # and exporting and importing it again changes nothing
    again = api.get("/exports/price-lists").text
    r = api.post("/imports/price-lists", files={"file": ("lists.csv", io.BytesIO(again.encode()), "text/csv")})
    assert r.status_code in (200, 201) and r.json()["updated"] == 0, r.text


def test_a_quoted_quantity_an_order_line_could_not_hold_is_refused_naming_the_parameter(api):
    product = create_product(api)["id"]
    customer = create_customer(api)["id"]
    r = api.get(f"/prices/quote?customer_id={customer}&product_id={product}&quantity=0.00001")
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "quantity" and r.json()["detail"].startswith("quantity:"), r.json()


def test_a_draft_shipped_elsewhere_converts_a_gross_lists_price_at_the_new_ship_to(api):
    # given a net tenant, 25 % tax in Texas, a gross list at 125.00, and a draft order shipped to Nevada
    # (no tax there: 125.00 before tax), with a second line at a price given by hand
    product = texas_at_25_percent(api)
    customer = create_customer(api)["id"]
    create_price_list(api, code="GROSS", priority=1, prices_include_tax=True,
                      entries=[{"product_id": product, "value": "125.00"}])
    draft = act(api, "/sales-orders", 201, {"customer_id": customer,
                                            "ship_to": {"city": "Reno", "region": "NV", "country": "US"},
                                            "lines": [{"product_id": product, "quantity": "1"},
                                                      {"product_id": product, "quantity": "1", "unit_price": "90"}]})
    assert [ln["unit_price"] for ln in draft["lines"]] == ["125.00", "90.00"]
    # when it is shipped to Texas instead
    texas = act(api, f"/sales-orders/{draft['id']}", 200,
                {"ship_to": {"city": "Austin", "region": "TX", "country": "US"}}, method="patch")
    # then the list's price is converted where it now ships, as an order entered for Texas is (125.00
    # including tax = 100.00 before it); the price given by hand stays
    assert [(ln["unit_price"], ln["price_source"]) for ln in texas["lines"]] == [
        ("100.00", "price_list:GROSS"), ("90.00", "manual")]
    assert (texas["subtotal"], texas["tax_total"], texas["total"]) == ("190.00", "47.50", "237.50")


def test_the_margin_guard_holds_a_price_including_tax_to_the_cost_plus_its_tax(api):
    from tests.api.conftest import Api, key_for

    # given a tenant whose prices include tax, 25 % tax in Texas, a product costing 50.00 before tax,
    # a clerk without pricing.override, and a taxed and a tax-exempt customer shipping to Texas
    act(api, "/tenant/settings", 200, {"prices_include_tax": True}, method="patch")
    product = texas_at_25_percent(api)
    taxed = taxed_customer(api)
    exempt = taxed_customer(api, tax_exempt=True, exemption_certificate="TX-EX-1")
    clerk = Api(api.client, api.tenant, key_for(api.tenant, "sales"))

    def enter(customer, price):
        return clerk.post("/sales-orders", json={"customer_id": customer, "lines": [
            {"product_id": product, "quantity": "1", "unit_price": price}]})

    # when the clerk prices it at 55.00 including tax (44.00 before it: under the cost)
    r = enter(taxed, "55.00")
    # then it is refused, naming the floor including tax
    assert r.status_code == 422, r.text
    assert r.json()["code"] == "margin_too_low"
    assert "62.5" in r.json()["errors"][0]["message"], r.text
    # while 62.50 including tax (50.00 before it) passes, and an exempt customer pays 55.00 as it stands
    assert enter(taxed, "62.50").status_code == 201
    assert enter(exempt, "55.00").status_code == 201


def test_a_markup_on_cost_on_a_tenant_priced_including_tax_adds_the_tax(api):
    # given a tenant whose prices include tax, 25 % tax in Texas, a product costing 50.00 (before tax, as
    # every cost) and a list pricing it at cost + 10 %
    assert api.patch("/tenant/settings", json={"prices_include_tax": True}).status_code == 200
    product = texas_at_25_percent(api)
    customer = taxed_customer(api)
    create_price_list(api, code="COSTPLUS", priority=5, entries=[
        {"product_id": product, "method": "markup", "value": "10"}])
    # when the customer is quoted
    q = quote(api, customer, product)
    # then the price is 55.00 before tax, 68.75 including it (it was 55.00 including: 44.00 net, under cost)
    assert (q["rule"], q["unit_price"]) == ("price_list:COSTPLUS", "68.75")
    won = next(e for e in q["explanation"] if e["rule"] == "price_list:COSTPLUS")
    assert "55 before tax = 68.75 including tax at 25%" in won["reason"], won
    # and an order is charged so, its tax the 25 % inside it
    o = order(api, customer, product, "1")
    assert (o["lines"][0]["unit_price"], o["tax_total"], o["total"]) == ("68.75", "13.75", "68.75"), o
