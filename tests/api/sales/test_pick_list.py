"""GET /shipments/{id}/pick-list: where the warehouse picks each shipment line."""

from __future__ import annotations

from tests.api.conftest import Api, key_for
from tests.factories.catalog import create_product
from tests.factories.inventory import create_warehouse
from tests.factories.parties import create_customer
from tests.factories.sales import act, create_order, make_shipment, order_desk


def test_a_draft_shipment_lists_its_picks(api):
    # given a confirmed order of 4 from a stocked warehouse, and its draft shipment
    desk = order_desk(api, stock=10)
    order = create_order(api, desk, 4)
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})

    # when the pick list is read
    r = api.get(f"/shipments/{shipment['id']}/pick-list")

    # then its one line is picked from the warehouse's stock location, all 4 of it
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["shipment_id"], body["number"], body["status"]) == (shipment["id"], shipment["number"], "draft")
    [line] = body["lines"]
    assert line["sales_order_line_id"] == order["lines"][0]["id"]
    assert (line["quantity"], line["short"], line["sku"]) == ("4", "0", order["lines"][0]["sku"])
    [pick] = line["picks"]
    assert pick["warehouse_id"] == desk.warehouse_id and pick["location_code"].endswith("/STOCK")
    assert (pick["quantity"], pick["lot_code"], pick["serials"]) == ("4", None, [])


def test_lots_come_soonest_expiry_first(api):
    # given a lot-tracked product received as two lots, the later-expiring one first
    product = create_product(api, track_lots=True, list_price="10.00", currency="USD")["id"]
    warehouse = create_warehouse(api)["id"]
    for lot, expiry in (("LATE", "2099-06-01"), ("SOON", "2098-01-01")):
        r = api.post("/stock/receipts", json={"warehouse_id": warehouse, "product_id": product, "quantity": "2",
                                              "unit_cost": "3.00", "lot_code": lot, "expiry_date": expiry})
        assert r.status_code == 201, r.text
    customer = create_customer(api, currency="USD")["id"]
    order = act(api, "/sales-orders", 201, {"customer_id": customer,
                                            "lines": [{"product_id": product, "quantity": "3"}]})
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})

    # when the pick list is read
    body = api.get(f"/shipments/{shipment['id']}/pick-list").json()

    # then the soon lot is emptied first, with its expiry date shown
    picks = [(p["lot_code"], p["expiry_date"], p["quantity"]) for p in body["lines"][0]["picks"]]
    assert picks == [("SOON", "2098-01-01", "2"), ("LATE", "2099-06-01", "1")]


def test_a_shipped_shipment_is_a_conflict(api):
    # given a shipment that has shipped
    desk = order_desk(api)
    order = create_order(api, desk, 2)
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    act(api, f"/shipments/{shipment['id']}/ship", json={"carrier": "UPS"})

    # when its pick list is asked for
    r = api.get(f"/shipments/{shipment['id']}/pick-list")

    # then it is a 409 problem saying there is nothing left to pick
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "nothing_to_pick"


def test_another_tenants_shipment_is_not_found(api, other_api):
    # given a draft shipment in another tenant
    foreign = make_shipment(other_api)

    # when this tenant asks for its pick list, then it does not exist here
    assert api.get(f"/shipments/{foreign}/pick-list").status_code == 404
    assert other_api.get(f"/shipments/{foreign}/pick-list").status_code == 200


def test_reading_a_pick_list_needs_the_shipment_read_permission(api):
    # given a draft shipment, a warehouse key and a customer-portal key
    shipment = make_shipment(api)
    warehouse = Api(api.client, api.tenant, key_for(api.tenant, role="warehouse"))
    portal = Api(api.client, api.tenant, key_for(api.tenant, role="portal_customer"))

    # when each reads the pick list, then the warehouse may and the portal customer may not
    assert warehouse.get(f"/shipments/{shipment}/pick-list").status_code == 200
    assert portal.get(f"/shipments/{shipment}/pick-list").status_code == 403
