"""Events carry amounts and quantities in the forms the API reads show them in, whatever form the caller
sent and whether the value was just computed or read back from the database: an amount with exactly its
currency's places ("60.00"), a unit price with those places and more only when it has them ("2.125"), a
quantity without trailing zeros ("3", "2.5"). An integrator comparing an order's `total` on
`sales_order.created.v1` and on `.confirmed.v1` sees the same string."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from entrepot.kernel.money import format_amount, format_price, format_quantity
from tests.factories import FACTORIES, load_all
from tests.factories.sales import act, create_order, order_desk

AMOUNTS = {"total", "subtotal", "tax_total", "amount", "applied", "unapplied", "discount", "value", "credit_limit",
           "exposure"}
PRICES = {"list_price", "unit_price", "unit_cost", "cost"}  # `cost` is a unit cost on supplier items, a total elsewhere
QUANTITIES = {"quantity", "requested", "reserved", "backordered", "on_hand", "available", "released",
              "still_backordered", "reorder_point"}


def _misfits(data: Any, currency: str, path: str) -> list[str]:
    out: list[str] = []
    if isinstance(data, list):
        for i, item in enumerate(data):
            out += _misfits(item, currency, f"{path}[{i}]")
        return out
    if not isinstance(data, dict):
        return out
    currency = data.get("currency") or currency
    for key, value in data.items():
        where = f"{path}.{key}"
        if isinstance(value, (dict, list)):
            if key in QUANTITIES and isinstance(value, dict):  # a map of line id -> quantity
                out += [f"{where}[{k}]={v!r}" for k, v in value.items() if v != format_quantity(Decimal(v))]
            else:
                out += _misfits(value, currency, where)
        elif isinstance(value, str) and not _in_form(key, value, currency):
            out.append(f"{where}={value!r}")
    return out


def _in_form(key: str, value: str, currency: str) -> bool:
    if key in AMOUNTS:
        return value == format_amount(Decimal(value), currency)
    if key in PRICES:
        return value == format_price(Decimal(value), currency)
    if key in QUANTITIES:
        return value == format_quantity(Decimal(value))
    return True


def test_events_carry_amounts_and_quantities_as_the_api_shows_them(api):
    # given the records of every kind the factories make, and an order taken through to cash with
    # numbers sent as JSON numbers and whole values
    load_all()
    for make in FACTORIES.values():
        make(api)
    desk = order_desk(api, stock=20, list_price="10", unit_cost="4")
    order = create_order(api, desk, 3)
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    act(api, f"/shipments/{shipment['id']}/ship", json={})
    invoice = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    payment = act(api, "/payments", 201, {"customer_id": desk.customer_id, "amount": 40, "currency": "USD",
                                          "allocations": [{"invoice_id": invoice["id"], "amount": 30}]})
    act(api, f"/payments/{payment['id']}/refund", json={"amount": 5})
    # then every amount and quantity any event carries has the form the API reads have
    events, cursor = [], None
    while True:
        page = api.get("/events", params={"after": cursor, "limit": 200} if cursor else {"limit": 200}).json()
        events += page["items"]
        if not page["next_cursor"] or not page["items"]:
            break
        cursor = page["next_cursor"]
    assert len({e["type"] for e in events}) > 25
    misfits = [m for e in events for m in _misfits(e["data"], "USD", e["type"])]
    assert misfits == []
