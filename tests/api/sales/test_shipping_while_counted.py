"""A location being counted ships nothing (issue #5): units picked after the counter counted them would be
written off as a variance when the count is posted, or the sheet's expected quantities would not be on the
shelf. The shipment is refused with 409 location_locked and nothing is written; once the count is posted or
cancelled it ships."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from entrepot.integration.models import OutboxEvent
from tests.factories.catalog import create_product
from tests.factories.sales import act, create_order, order_desk


def _outbox(api: Any) -> int:
    with api.tenant.uow(readonly=True) as uow:
        return uow.session.scalar(select(func.count()).select_from(OutboxEvent)
                                  .where(OutboxEvent.tenant_id == api.tenant.id))


def _state(api: Any, desk: Any, order: dict[str, Any], shipment: dict[str, Any]) -> dict[str, Any]:
    """What a shipment writes: stock, moves, the shipment and its order, events."""
    return {"stock": api.get(f"/stock?product_id={desk.product_id}").json(),
            "moves": api.get(f"/stock/moves?product_id={desk.product_id}").json(),
            "shipment": api.get(f"/shipments/{shipment['id']}").json(),
            "order": api.get(f"/sales-orders/{order['id']}").json(),
            "outbox": _outbox(api)}


def _confirmed_with_a_shipment(api: Any, quantity: int = 4) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    desk = order_desk(api, stock=10)
    order = create_order(api, desk, quantity)
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    return desk, order, shipment


def _on_hand(api: Any, desk: Any) -> tuple[float, float]:
    [item] = api.get(f"/stock?product_id={desk.product_id}").json()["items"]
    return float(item["on_hand"]), float(item["reserved"])


def test_a_shipment_from_a_location_being_counted_is_refused_and_writes_nothing(api):
    # given 4 of 10 units reserved and on a shipment, and the warehouse's stock location being counted
    desk, order, shipment = _confirmed_with_a_shipment(api)
    act(api, "/stock-counts", 201, {"warehouse_id": desk.warehouse_id, "counter": "Ana"})
    before = _state(api, desk, order, shipment)
    # when the shipment is shipped
    r = api.post(f"/shipments/{shipment['id']}/ship", json={"carrier": "UPS", "tracking_number": "1Z"})
    # then it is refused, naming the location being counted
    assert r.status_code == 409, r.text
    stock_location = next(loc["code"] for loc in api.get(f"/warehouses/{desk.warehouse_id}/locations").json()["items"]
                          if loc["kind"] == "stock")
    assert (r.json()["code"], r.json()["detail"]) == (
        "location_locked", f"{stock_location} is being counted; post or cancel the count first")
    # and nothing is written: stock, moves, the shipment, its order, the outbox are as they were
    assert _state(api, desk, order, shipment) == before
    assert before["shipment"]["status"] != "shipped" and float(before["stock"]["items"][0]["on_hand"]) == 10


@pytest.mark.parametrize("end", ["post", "cancel"])
def test_a_shipment_held_back_by_a_count_ships_once_the_count_is_posted_or_cancelled(api, end):
    # given a shipment refused while its stock location is counted
    desk, order, shipment = _confirmed_with_a_shipment(api)
    count = act(api, "/stock-counts", 201, {"warehouse_id": desk.warehouse_id, "counter": "Ana"})
    assert api.post(f"/shipments/{shipment['id']}/ship").status_code == 409
    # and its pick list says why
    [pick] = api.get(f"/shipments/{shipment['id']}/pick-list").json()["lines"][0]["picks"]
    assert pick["being_counted"] is True
    # when the count is posted (10 found, as expected) or cancelled
    body = {"lines": [{"product_id": desk.product_id, "counted_quantity": "10"}]} if end == "post" else None
    assert act(api, f"/stock-counts/{count['id']}/{end}", json=body)["status"] == {"post": "posted",
                                                                                   "cancel": "cancelled"}[end]
    # then the pick list no longer warns, and the shipment ships: 4 units leave
    [pick] = api.get(f"/shipments/{shipment['id']}/pick-list").json()["lines"][0]["picks"]
    assert pick["being_counted"] is False
    shipped = act(api, f"/shipments/{shipment['id']}/ship", json={"carrier": "UPS", "tracking_number": "1Z"})
    assert shipped["status"] == "shipped"
    assert _on_hand(api, desk) == (6, 0)
    assert api.get(f"/sales-orders/{order['id']}").json()["status"] == "shipped"


def test_only_a_shipment_taking_stock_from_the_counted_bin_is_held_back(api):
    # given a warehouse with a bin: one product stocked in its main location, another only in the bin
    desk = order_desk(api, stock=10)
    bin_ = act(api, f"/warehouses/{desk.warehouse_id}/locations", 201, {"code": "B-7", "name": "Bin 7"})
    in_bin = create_product(api, list_price="12.50", currency="USD", standard_cost="5.00")["id"]
    act(api, "/stock/receipts", 201, {"warehouse_id": desk.warehouse_id, "product_id": in_bin, "quantity": "5",
                                      "unit_cost": "5.00", "location_id": bin_["id"]})
    shipments = {}
    for name, product in (("main", desk.product_id), ("bin", in_bin)):
        order = create_order(api, desk, lines=[{"product_id": product, "quantity": "2"}])
        act(api, f"/sales-orders/{order['id']}/confirm")
        shipments[name] = act(api, "/shipments", 201, {"sales_order_id": order["id"]})["id"]
    # when the bin is being counted
    act(api, "/stock-counts", 201, {"warehouse_id": desk.warehouse_id, "counter": "Ana", "location_id": bin_["id"]})
    # then the shipment from the main location ships, and the one from the bin is refused, naming the bin
    assert act(api, f"/shipments/{shipments['main']}/ship")["status"] == "shipped"
    r = api.post(f"/shipments/{shipments['bin']}/ship")
    assert (r.status_code, r.json()["detail"]) == (409, f"{bin_['code']} is being counted; post or cancel the "
                                                        "count first")
    assert api.get(f"/shipments/{shipments['bin']}").json()["status"] != "shipped"
