"""Sales records (orders, shipments, quotes, returns) created through the API of a given tenant."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.factories import example_body, factory
from tests.factories.catalog import create_product
from tests.factories.inventory import adjust, create_warehouse
from tests.factories.parties import create_customer


@dataclass
class Desk:
    """A stocked product, a warehouse and a customer: what an order needs."""

    product_id: str
    warehouse_id: str
    customer_id: str


def order_desk(api: Any, *, stock: Any = 10, list_price: str = "12.50", unit_cost: str = "5.00",
               currency: str = "USD", **customer: Any) -> Desk:
    product = create_product(api, list_price=list_price, currency=currency, standard_cost=unit_cost)["id"]
    warehouse = create_warehouse(api)["id"]
    if stock:
        adjust(api, warehouse, product, stock, unit_cost=unit_cost)
    return Desk(product, warehouse, create_customer(api, currency=currency, **customer)["id"])


def create_order(api: Any, desk: Desk, quantity: Any = 4, **extra: Any) -> dict[str, Any]:
    lines = extra.pop("lines", None) or [{"product_id": desk.product_id, "quantity": str(quantity)}]
    r = api.post("/sales-orders", json={"customer_id": desk.customer_id, "lines": lines, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def act(api: Any, path: str, status: int = 200, json: Any = None) -> dict[str, Any]:
    r = api.post(path, json=json)
    assert r.status_code == status, f"{path}: {r.status_code} {r.text}"
    return r.json()


def shipped_order(api: Any, quantity: Any = 4, desk: Desk | None = None) -> tuple[Desk, dict[str, Any]]:
    desk = desk or order_desk(api)
    order = create_order(api, desk, quantity)
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    act(api, f"/shipments/{shipment['id']}/ship", json={"carrier": "UPS", "tracking_number": "1Z999"})
    return desk, order


def invoiced_order(api: Any, quantity: Any = 4) -> tuple[Desk, dict[str, Any], dict[str, Any]]:
    desk, order = shipped_order(api, quantity)
    invoice = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    return desk, order, invoice


@factory("sales_order_id")
def make_sales_order(api: Any) -> str:
    return create_order(api, order_desk(api))["id"]


@factory("shipment_id")
def make_shipment(api: Any) -> str:
    desk = order_desk(api)
    order = create_order(api, desk)
    act(api, f"/sales-orders/{order['id']}/confirm")
    return act(api, "/shipments", 201, {"sales_order_id": order["id"]})["id"]


@factory("quote_id")
def make_quote(api: Any) -> str:
    desk = order_desk(api, stock=0)
    return act(api, "/quotes", 201, {"customer_id": desk.customer_id,
                                     "lines": [{"product_id": desk.product_id, "quantity": "2"}]})["id"]


@factory("return_id")
def make_return(api: Any) -> str:
    _, order = shipped_order(api)
    line = order["lines"][0]["id"]
    return act(api, "/returns", 201, {"sales_order_id": order["id"],
                                      "lines": [{"sales_order_line_id": line, "quantity": "1"}]})["id"]


@example_body("POST", "/api/v1/sales-orders")
def _order_body(api: Any) -> dict[str, Any]:
    desk = order_desk(api, stock=0)
    return {"customer_id": desk.customer_id, "lines": [{"product_id": desk.product_id, "quantity": "1"}]}


@example_body("POST", "/api/v1/quotes")
def _quote_body(api: Any) -> dict[str, Any]:
    return _order_body(api)


@example_body("POST", "/api/v1/shipments")
def _shipment_body(api: Any) -> dict[str, Any]:
    return {"sales_order_id": make_sales_order(api)}


@example_body("POST", "/api/v1/returns")
def _return_body(api: Any) -> dict[str, Any]:
    _, order = shipped_order(api, 2)
    return {"sales_order_id": order["id"], "lines": [{"sales_order_line_id": order["lines"][0]["id"],
                                                      "quantity": "1"}]}


@example_body("POST", "/api/v1/shipping-rates")
def _shipping_rate_body(api: Any) -> dict[str, Any]:
    return {"carrier": "UPS", "service": "ground", "max_weight_kg": "10", "charge": "9.50", "currency": "USD"}
