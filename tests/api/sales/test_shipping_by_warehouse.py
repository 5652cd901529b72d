"""An order line reserved in several warehouses (the `split` allocation policy) ships in one shipment
per warehouse: POST /shipments with `warehouse_id` takes only what is reserved there."""

from __future__ import annotations

from tests.factories.catalog import create_product
from tests.factories.inventory import adjust, create_warehouse
from tests.factories.parties import create_customer
from tests.factories.sales import act


def split_order(api, suffix=""):
    """A split-policy tenant, 3 units in each of two warehouses, and a confirmed order of 5: 3 reserved in
    the first warehouse by priority, 2 in the second."""
    assert api.patch("/tenant/settings", json={"allocation_policy": "split"}).status_code == 200
    product = create_product(api, standard_cost="2.00")["id"]
    east = create_warehouse(api, code=f"EAST{suffix}", priority=1)["id"]
    west = create_warehouse(api, code=f"WEST{suffix}", priority=2)["id"]
    for warehouse in (east, west):
        adjust(api, warehouse, product, 3, unit_cost="2.00")
    customer = create_customer(api)["id"]
    order = act(api, "/sales-orders", 201, {"customer_id": customer,
                                             "lines": [{"product_id": product, "quantity": "5"}]})
    act(api, f"/sales-orders/{order['id']}/confirm")
    return order, product, east, west


def on_hand(api, product, warehouse):
    rows = api.get("/stock", params={"product_id": product}).json()["items"]
    row = next(r for r in rows if r["warehouse_id"] == warehouse)
    return row["on_hand"], row["reserved"]


def test_a_line_reserved_in_two_warehouses_ships_in_one_shipment_from_each(api):
    order, product, east, west = split_order(api)
    line = order["lines"][0]["id"]
    # when the west warehouse ships what it holds for the order
    west_shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"], "warehouse_id": west})
    # then its shipment takes the 2 reserved there, and says where it ships from
    assert [(sl["quantity"], sl["warehouse_id"]) for sl in west_shipment["lines"]] == [("2", west)]
    # and its pick list sends the picker to the west warehouse only
    picks = api.get(f"/shipments/{west_shipment['id']}/pick-list").json()["lines"][0]["picks"]
    assert [(p["warehouse_id"], p["quantity"]) for p in picks] == [(west, "2")]
    # while east cannot ship more than it holds, and nothing is left to ship from west
    too_much = api.post("/shipments", json={"sales_order_id": order["id"], "warehouse_id": east,
                                            "lines": [{"sales_order_line_id": line, "quantity": "4"}]})
    assert (too_much.status_code, too_much.json()["code"]) == (409, "not_reserved"), too_much.text
    assert "reserved in warehouse EAST" in too_much.json()["detail"]
    nothing = api.post("/shipments", json={"sales_order_id": order["id"], "warehouse_id": west})
    assert (nothing.status_code, nothing.json()["code"]) == (409, "nothing_to_ship"), nothing.text
    # when west ships, stock leaves west only
    act(api, f"/shipments/{west_shipment['id']}/ship", json={"carrier": "UPS"})
    assert on_hand(api, product, west) == ("1", "0")
    assert on_hand(api, product, east) == ("3", "3")
    # and east ships the rest in its own shipment
    east_shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"], "warehouse_id": east})
    assert [(sl["quantity"], sl["warehouse_id"]) for sl in east_shipment["lines"]] == [("3", east)]
    shipped = act(api, f"/shipments/{east_shipment['id']}/ship", json={"carrier": "UPS"})
    assert [sl["warehouse_id"] for sl in shipped["lines"]] == [east]
    assert on_hand(api, product, east) == ("0", "0")
    assert api.get(f"/sales-orders/{order['id']}").json()["status"] == "shipped"


def test_shipments_from_one_warehouse_and_from_any_do_not_mix_on_an_order(api):
    order, _, _, west = split_order(api)
    # given an open shipment from the west warehouse
    act(api, "/shipments", 201, {"sales_order_id": order["id"], "warehouse_id": west})
    # when a shipment from any warehouse is asked for the rest, then it is refused (it would take the
    # oldest reservations, which may be those the west shipment counts on)
    r = api.post("/shipments", json={"sales_order_id": order["id"]})
    assert (r.status_code, r.json()["code"]) == (409, "open_shipment_conflict"), r.text
    # and the other way round: after an open shipment from any warehouse, one from a named warehouse
    other, _, east2, _ = split_order(api, "-2")
    act(api, "/shipments", 201, {"sales_order_id": other["id"]})
    r = api.post("/shipments", json={"sales_order_id": other["id"], "warehouse_id": east2})
    assert (r.status_code, r.json()["code"]) == (409, "open_shipment_conflict"), r.text
    # and a warehouse the tenant does not have is refused on the field
    r = api.post("/shipments", json={"sales_order_id": order["id"],
                                     "warehouse_id": "00000000-0000-0000-0000-000000000001"})
    assert r.status_code in (404, 422) and "warehouse_id" in r.text, r.text
