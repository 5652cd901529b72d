"""Two steps on one order (its returns, its quote, its customer's credit) at the same time: the
second works from what the first committed (tests.concurrency.together).

On PostgreSQL (READ COMMITTED) a locking read that waits for another transaction returns the
locked order row as that one left it, but rows joined to it as they were before: the step must
read its lines after it holds the lock. On SQLite the second writer waits at BEGIN."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest

from entrepot.inventory import service as inventory
from entrepot.kernel.errors import InvalidTransition
from entrepot.sales import quotes, returns, service
from entrepot.sales.models import SalesOrderLine
from tests.concurrency import together
from tests.factories.sales import act, create_order, order_desk, shipped_order


def _together(api, first, second):
    """Run `first(uow)` and, while its transaction is still open, `second(uow)`; each commits."""
    outcomes = together(api.tenant, first, second)
    assert [o for o in outcomes if isinstance(o, Exception)] == []
    return outcomes


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


def test_a_return_credited_while_its_units_are_invoiced_is_credited_not_left_billed(api):
    # given 4 units shipped and not yet invoiced, 2 of them returned and received
    desk, order = shipped_order(api, 4)
    rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": order["lines"][0]["id"], "quantity": "2"}]})
    act(api, f"/returns/{rma['id']}/receive")
    # when the order is invoiced and, before that commits, the return is credited
    _, notes = _together(api, lambda uow: service.invoice_sales_order(uow, uuid.UUID(order["id"])),
                         lambda uow: returns.credit_return(uow, uuid.UUID(rma["id"])))
    # then the 2 units are either credited against the invoice or never billed: the customer pays for 2
    invoiced = sum(D(i["total"]) for i in api.get("/invoices", params={"customer_id": desk.customer_id}
                                                  ).json()["items"])
    credited = sum(D(n["total"]) for n in api.get("/credit-notes", params={"customer_id": desk.customer_id}
                                                  ).json()["items"])
    assert (invoiced - credited, len(notes)) == (D("25.00"), 1)


def test_a_return_credited_while_its_invoice_is_credited_by_hand_credits_what_is_left(api):
    from entrepot.billing import service as billing

    # given 4 units invoiced (12.50 each) and 2 of them returned and received
    _, order = shipped_order(api, 4)
    invoice = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": order["lines"][0]["id"], "quantity": "2"}]})
    act(api, f"/returns/{rma['id']}/receive")
    # when 3 units are credited by hand and, before that commits, the return is credited
    by_hand = [billing.CreditLineInput(uuid.UUID(invoice["lines"][0]["id"]), D(3))]
    _, notes = _together(api, lambda uow: billing.issue_credit_note(uow, invoice_id=uuid.UUID(invoice["id"]),
                                                                     lines=by_hand, reason="damaged").total,
                         lambda uow: [n.total for n in returns.credit_return(uow, uuid.UUID(rma["id"]))])
    # then the return credits the one unit left (not refused as over-credited), and nothing is taken
    # for unbilled: every unit was billed
    assert notes == [D("12.50")]
    assert api.get(f"/invoices/{invoice['id']}").json()["amount_due"] == "0.00"
    with api.tenant.uow(readonly=True) as uow:
        line = uow.session.get(SalesOrderLine, uuid.UUID(order["lines"][0]["id"]))
        assert line.quantity_returned_unbilled == 0


def test_two_returns_of_one_line_credited_at_once_are_both_credited(api):
    # given 8 units invoiced on two invoices (5, then 3), and two returns of 4 received
    desk = order_desk(api, stock=10)
    order = create_order(api, desk, 8)
    line = order["lines"][0]["id"]
    act(api, f"/sales-orders/{order['id']}/confirm")
    for quantity in ("5", "3"):
        shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"], "lines": [
            {"sales_order_line_id": line, "quantity": quantity}]})
        act(api, f"/shipments/{shipment['id']}/ship", json={"carrier": "UPS", "tracking_number": "1Z"})
        act(api, f"/sales-orders/{order['id']}/invoice", 201)
    rmas = [act(api, "/returns", 201, {"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": line, "quantity": "4"}]})["id"] for _ in range(2)]
    for rma in rmas:
        act(api, f"/returns/{rma}/receive")
    # when both are credited at once, each credits its 4 units (the second from what the first left)
    one, two = _together(api, lambda uow: returns.credit_return(uow, uuid.UUID(rmas[0])),
                         lambda uow: returns.credit_return(uow, uuid.UUID(rmas[1])))
    assert ([n.total for n in one], sorted(n.total for n in two)) == ([D("50.00")], [D("12.50"), D("37.50")])


def test_one_return_received_twice_at_once_is_received_once(api):
    _, order = shipped_order(api, 4)
    rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": order["lines"][0]["id"], "quantity": "2"}]})
    receive = lambda uow: returns.receive_return(uow, uuid.UUID(rma["id"])).status  # noqa: E731
    first, second = together(api.tenant, receive, receive)
    assert (first, type(second)) == ("received", InvalidTransition)
    assert api.get(f"/sales-orders/{order['id']}").json()["lines"][0]["quantity_returned"] == "2"


def test_one_quote_accepted_twice_at_once_makes_one_order(api):
    desk = order_desk(api)
    quote = act(api, "/quotes", 201, {"customer_id": desk.customer_id,
                                      "lines": [{"product_id": desk.product_id, "quantity": "2"}]})
    accept = lambda uow: quotes.accept_quote(uow, uuid.UUID(quote["id"])).id  # noqa: E731
    first, second = together(api.tenant, accept, accept)
    assert type(second) is InvalidTransition
    orders = api.get("/sales-orders", params={"customer_id": desk.customer_id}).json()["items"]
    assert [o["id"] for o in orders] == [str(first)]


def test_two_orders_of_one_customer_confirmed_at_once_stay_within_the_credit_limit(api):
    # given a credit limit of 40.00 and two orders of 25.00 each
    desk = order_desk(api, stock=10, credit_limit="40.00")
    one, two = (create_order(api, desk, 2)["id"] for _ in range(2))
    confirm = lambda order_id: lambda uow: service.confirm_sales_order(uow, uuid.UUID(order_id)).status  # noqa: E731
    # when both are confirmed at once, the second sees the first's exposure: it goes on hold
    assert _together(api, confirm(one), confirm(two)) == ["confirmed", "on_hold"]


@pytest.mark.parametrize("first", ["ship", "count"])
def test_a_count_started_while_a_shipment_ships_sees_it_or_holds_it_back(api, first):
    # given 4 of 10 units on a shipment
    desk = order_desk(api, stock=10)
    order = create_order(api, desk, 4)
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    ship = lambda uow: service.ship_shipment(uow, uuid.UUID(shipment["id"])).status  # noqa: E731
    count = lambda uow: [dict(line) for line in inventory.start_count(  # noqa: E731
        uow, warehouse_id=uuid.UUID(desk.warehouse_id), counter="Ana").lines]
    # when the shipment ships and a count of its stock location starts at the same time (either first)
    if first == "ship":
        shipped, sheet = together(api.tenant, ship, count)
    else:
        sheet, shipped = together(api.tenant, count, ship)
    # then the count sheet expects what is on the shelf: the shipment went out before the count started
    # and the sheet saw it (6), or it was held back (10, and the shipment is as it was)
    [item] = api.get(f"/stock?product_id={desk.product_id}").json()["items"]
    assert [D(line["expected"]) for line in sheet] == [D(item["on_hand"])]
    status = api.get(f"/shipments/{shipment['id']}").json()["status"]
    if first == "ship":
        assert (shipped, status, D(item["on_hand"])) == ("shipped", "shipped", 6)
    else:
        assert (type(shipped), status, D(item["on_hand"])) == (inventory.LocationLocked, shipment["status"], 10)


def _change_currency(customer_id, currency="EUR"):
    from entrepot.parties import service as parties

    return lambda uow: parties.update_customer(uow, uuid.UUID(customer_id), {"currency": currency}).currency


def _enter_order(desk):
    line = service.OrderLineInput(uuid.UUID(desk.product_id), D(1))
    return lambda uow: service.create_sales_order(uow, customer_id=uuid.UUID(desk.customer_id), lines=[line])


def test_a_currency_change_while_the_customers_first_order_is_entered_is_refused(api):
    desk = order_desk(api)
    # when the customer's first order is entered and, before it commits, its currency is changed
    outcomes = together(api.tenant, _enter_order(desk), _change_currency(desk.customer_id))
    # then the change waited for the order and refused: the order and the customer agree
    assert getattr(outcomes[1], "code", None) == "currency_in_use", outcomes
    customer = api.get(f"/customers/{desk.customer_id}").json()
    orders = api.get("/sales-orders", params={"customer_id": desk.customer_id}).json()["items"]
    assert {o["currency"] for o in orders} == {customer["currency"]} == {"USD"}


def test_an_order_entered_while_the_customers_currency_changes_takes_the_new_currency(api):
    desk = order_desk(api)
    # when the currency is changed and, before that commits, the customer's first order is entered
    changed, entered = together(api.tenant, _change_currency(desk.customer_id), _enter_order(desk))
    # then the order waited and was priced in the new currency (the product has no EUR price, so it
    # is refused), rather than entered in the old one
    assert changed == "EUR"
    assert getattr(entered, "code", None) == "no_price" and "in EUR" in str(entered), entered
    assert api.get("/sales-orders", params={"customer_id": desk.customer_id}).json()["items"] == []


def test_a_payment_recorded_while_the_customers_currency_changes_is_checked_against_the_new_one(api):
    from entrepot.billing import service as billing

    desk = order_desk(api)
    changed, paid = together(api.tenant, _change_currency(desk.customer_id), lambda uow: billing.record_payment(
        uow, customer_id=uuid.UUID(desk.customer_id), amount=D("10.00"), currency="USD"))
    assert changed == "EUR"
    assert [e.field for e in getattr(paid, "errors", [])] == ["currency"], paid
    assert api.get("/payments", params={"customer_id": desk.customer_id}).json()["items"] == []


def _two_products(api):
    """Two order desks, the one whose product has the lower id first."""
    one, two = order_desk(api), order_desk(api)
    return sorted([one, two], key=lambda desk: uuid.UUID(desk.product_id))


def _while_a_stock_change_holds_the_lower_product(api, low, high, step):
    """A stock change takes the lower product, then (once `step` waits for a lock) the higher one:
    product-id order, as every stock change takes them. Returns each side's outcome."""
    import threading

    from tests.concurrency import WAIT_LIMIT, _waiting_for_a_lock

    outcomes: dict[str, object] = {}
    holding = threading.Event()
    blocked = _waiting_for_a_lock(api.tenant.url)

    def adjust(uow, desk):
        return inventory.adjust_stock(uow, warehouse_id=uuid.UUID(desk.warehouse_id),
                                      product_id=uuid.UUID(desk.product_id), quantity=D(1), reason="found",
                                      unit_cost=D("5.00"))

    def stock_change():
        try:
            with api.tenant.uow() as uow:
                adjust(uow, low)
                holding.set()
                for _ in range(int(WAIT_LIMIT * 100)):
                    if blocked():
                        break
                    threading.Event().wait(0.01)
                adjust(uow, high)
                uow.commit()
                outcomes["stock"] = "adjusted"
        except Exception as exc:  # the test looks at the outcomes
            outcomes["stock"] = exc
        finally:
            holding.set()

    def run_step():
        try:
            with api.tenant.uow() as uow:
                outcomes["step"] = step(uow)
                uow.commit()
        except Exception as exc:  # the test looks at the outcomes
            outcomes["step"] = exc

    first = threading.Thread(target=stock_change)
    first.start()
    holding.wait(WAIT_LIMIT)
    second = threading.Thread(target=run_step)
    second.start()
    first.join()
    second.join()
    return outcomes


# PostgreSQL only: SQLite serialises writers at BEGIN, so there is no lock order to keep there
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_an_order_cancelled_while_a_stock_change_holds_its_products_does_not_deadlock(api):
    # given a confirmed order whose first line is the product with the higher id
    low, high = _two_products(api)
    order = create_order(api, low, lines=[{"product_id": high.product_id, "quantity": "1"},
                                          {"product_id": low.product_id, "quantity": "1"}])
    act(api, f"/sales-orders/{order['id']}/confirm")
    # when the stock change holds the lower product and the order is cancelled meanwhile
    outcomes = _while_a_stock_change_holds_the_lower_product(
        api, low, high, lambda uow: service.cancel_sales_order(uow, uuid.UUID(order["id"])).status)
    # then the cancel waited for the lower product before taking the higher one: both commit
    assert outcomes == {"stock": "adjusted", "step": "cancelled"}
    for desk in (low, high):
        [item] = api.get(f"/stock?product_id={desk.product_id}").json()["items"]
        assert (item["on_hand"], item["reserved"]) == ("11", "0")


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_return_received_while_a_stock_change_holds_its_products_does_not_deadlock(api):
    # given a shipped order whose first line is the product with the higher id, both lines returned
    low, high = _two_products(api)
    order = create_order(api, low, lines=[{"product_id": high.product_id, "quantity": "1"},
                                          {"product_id": low.product_id, "quantity": "1"}])
    act(api, f"/sales-orders/{order['id']}/confirm")
    act(api, f"/shipments/{act(api, '/shipments', 201, {'sales_order_id': order['id']})['id']}/ship")
    rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": line["id"], "quantity": "1"} for line in order["lines"]]})
    # when the stock change holds the lower product and the return is received meanwhile
    outcomes = _while_a_stock_change_holds_the_lower_product(
        api, low, high, lambda uow: returns.receive_return(uow, uuid.UUID(rma["id"])).status)
    # then both commit, and each product has its unit back and the one found
    assert outcomes == {"stock": "adjusted", "step": "received"}
    for desk in (low, high):
        [item] = api.get(f"/stock?product_id={desk.product_id}").json()["items"]
        assert item["on_hand"] == "11"
