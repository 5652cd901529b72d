"""Two steps on one order at the same time: the second works from what the first committed.

On PostgreSQL (READ COMMITTED) a locking read that waits for another transaction returns the
locked order row as that one left it, but rows joined to it as they were before: the step must
read its lines after it holds the lock. On SQLite the second writer waits at BEGIN."""

from __future__ import annotations

import threading
import time
import uuid
from decimal import Decimal as D

from entrepot.sales import service
from tests.factories.sales import act, create_order, order_desk


def _together(api, first, second):
    """Run `first(uow)` and, while its transaction is still open, `second(uow)`; each commits."""
    errors = []

    def run(step, hold):
        try:
            with api.tenant.uow() as uow:
                step(uow)
                time.sleep(hold)
                uow.commit()
        except Exception as exc:  # reported below, in the test
            errors.append(exc)

    a = threading.Thread(target=run, args=(first, 1.0))
    b = threading.Thread(target=run, args=(second, 0))
    a.start()
    time.sleep(0.3)
    b.start()
    a.join()
    b.join()
    assert errors == []


def test_two_shipments_of_one_line_shipped_at_once_both_count(api):
    desk = order_desk(api)
    order = create_order(api, desk, 6)
    act(api, f"/sales-orders/{order['id']}/confirm")
    line = order["lines"][0]["id"]
    one, two = (act(api, "/shipments", 201, {"sales_order_id": order["id"],
                                             "lines": [{"sales_order_line_id": line, "quantity": q}]})
                for q in ("2", "3"))
    _together(api, lambda uow: service.ship_shipment(uow, uuid.UUID(one["id"])),
              lambda uow: service.ship_shipment(uow, uuid.UUID(two["id"])))
    read = api.get(f"/sales-orders/{order['id']}").json()
    assert (read["lines"][0]["quantity_shipped"], read["status"]) == ("5", "partially_shipped")


def test_two_invoicing_runs_at_once_invoice_each_unit_once(api):
    desk = order_desk(api)
    order = create_order(api, desk, 10)
    act(api, f"/sales-orders/{order['id']}/confirm")
    line = order["lines"][0]["id"]
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"],
                                            "lines": [{"sales_order_line_id": line, "quantity": "4"}]})
    act(api, f"/shipments/{shipment['id']}/ship", json={"carrier": "UPS", "tracking_number": "1Z1"})
    made = []
    _together(api, lambda uow: made.extend(service.run_invoicing(uow)),
              lambda uow: made.extend(service.run_invoicing(uow)))
    assert len(made) == 1
    read = api.get(f"/sales-orders/{order['id']}").json()
    assert D(read["lines"][0]["quantity_invoiced"]) == 4 and read["invoice_status"] == "partially_invoiced"
