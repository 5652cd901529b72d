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
from entrepot.kernel.errors import InvalidTransition, ValidationFailed
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


# ---------------------------------------------------------------- one order, two clerks: one wins, the other is refused


def _books_agree(api):
    """Stock balances are their moves, every entry balances and journals are gapless, the receivable and
    inventory accounts are what the open documents and the valuation say, and document numbers are gapless."""
    from sqlalchemy import select

    from entrepot.billing import service as billing
    from entrepot.billing.models import Invoice
    from entrepot.ledger.chart import Role
    from entrepot.ledger.services.reports import check_books, role_balance

    with api.tenant.uow(readonly=True) as uow:
        assert inventory.check_balances(uow) == []
        assert check_books(uow) == []
        assert role_balance(uow, Role.inventory) == inventory.valuation(uow).total_value
        customers = set(uow.session.scalars(select(Invoice.customer_id)))
        assert role_balance(uow, Role.receivable) == sum(
            (billing.open_receivables(uow, c) for c in customers), D(0))
        numbers = sorted(uow.session.scalars(select(Invoice.number)))
        assert numbers == [f"INV-{n:06d}" for n in range(1, len(numbers) + 1)]


def _refused(outcome):
    """A refusal the API answers 409 or 422 (never a deadlock, a stale write or an error of the database)."""
    from entrepot.kernel.errors import DomainError

    return isinstance(outcome, DomainError) and getattr(outcome, "status", None) in (409, 422)


def test_one_shipment_shipped_twice_at_once_ships_once(api):
    # given an order of 4 of 10 units, all on one shipment
    desk = order_desk(api, stock=10)
    order = create_order(api, desk, 4)
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    ship = lambda uow: service.ship_shipment(uow, uuid.UUID(shipment["id"])).status  # noqa: E731
    # when two clerks ship it at once
    first, second = together(api.tenant, ship, ship)
    # then it ships once: the second is told it has shipped
    assert (first, type(second)) == ("shipped", InvalidTransition)
    assert _refused(second)
    [item] = api.get(f"/stock?product_id={desk.product_id}").json()["items"]
    read = api.get(f"/sales-orders/{order['id']}").json()
    assert (item["on_hand"], item["reserved"], read["lines"][0]["quantity_shipped"], read["status"]) == (
        "6", "0", "4", "shipped")
    _books_agree(api)


def test_two_shipments_of_one_line_created_at_once_never_hold_more_than_is_reserved(api):
    # given 6 units ordered and reserved
    desk = order_desk(api, stock=10)
    order = create_order(api, desk, 6)
    act(api, f"/sales-orders/{order['id']}/confirm")
    line = uuid.UUID(order["lines"][0]["id"])
    create = lambda uow: service.create_shipment(  # noqa: E731
        uow, sales_order_id=uuid.UUID(order["id"]), lines=[service.ShipmentLineInput(line, D(4))]).number
    # when two clerks each put 4 of them on a shipment at once
    _, second = together(api.tenant, create, create)
    # then the second sees the first's shipment: only 2 are left to ship
    assert type(second) is service.NotReserved and _refused(second), second
    assert "2 reserved and not yet on a shipment" in str(second)
    # and everything left is taken once by a shipment of all that is reserved
    whole = lambda uow: [ln.quantity for ln in service.create_shipment(  # noqa: E731
        uow, sales_order_id=uuid.UUID(order["id"])).lines]
    one, two = together(api.tenant, whole, whole)
    assert (one, type(two)) == ([D(2)], service.NothingToShip)
    shipments = api.get("/shipments", params={"sales_order_id": order["id"]}).json()["items"]
    assert sorted(D(ln["quantity"]) for s in shipments for ln in s["lines"]) == [2, 4]
    for s in shipments:
        act(api, f"/shipments/{s['id']}/ship")
    read = api.get(f"/sales-orders/{order['id']}").json()
    [item] = api.get(f"/stock?product_id={desk.product_id}").json()["items"]
    assert (read["lines"][0]["quantity_shipped"], read["status"], item["on_hand"]) == ("6", "shipped", "4")
    _books_agree(api)


@pytest.mark.parametrize("first", ["run", "order"])
def test_an_invoicing_run_and_an_order_invoiced_by_hand_at_once_bill_each_unit_once(api, first):
    # given 4 units shipped and not invoiced
    desk, order = shipped_order(api, 4)
    run = lambda uow: [i.number for i in service.run_invoicing(uow)]  # noqa: E731
    by_hand = lambda uow: service.invoice_sales_order(uow, uuid.UUID(order["id"])).number  # noqa: E731
    # when an invoicing run and POST /sales-orders/{id}/invoice go at once (either first)
    if first == "run":
        made, refused = together(api.tenant, run, by_hand)
        assert made == ["INV-000001"]
        # then the second finds nothing left to invoice: a 409, not a second invoice
        assert type(refused) is service.billing.NothingToInvoice and _refused(refused), refused
    else:
        made, empty = together(api.tenant, by_hand, run)
        assert (made, empty) == ("INV-000001", [])
    invoices = api.get("/invoices", params={"customer_id": desk.customer_id}).json()["items"]
    assert [(i["number"], i["total"]) for i in invoices] == [("INV-000001", "50.00")]
    read = api.get(f"/sales-orders/{order['id']}").json()
    assert (read["lines"][0]["quantity_invoiced"], read["invoice_status"], read["status"]) == (
        "4", "invoiced", "closed")
    _books_agree(api)


def test_two_orders_of_one_customer_invoiced_by_two_runs_and_by_hand_get_gapless_numbers(api):
    # given two shipped orders of one customer
    desk, one = shipped_order(api, 4)
    _, two = shipped_order(api, 2, desk)
    # when one is invoiced by hand while a run invoices both
    by_hand = lambda uow: service.invoice_sales_order(uow, uuid.UUID(two["id"])).number  # noqa: E731
    run = lambda uow: [i.number for i in service.run_invoicing(uow)]  # noqa: E731
    made, ran = together(api.tenant, by_hand, run)
    # then each order is billed once, and the numbers follow one another
    assert (made, ran) == ("INV-000001", ["INV-000002"])
    invoices = api.get("/invoices", params={"customer_id": desk.customer_id}).json()["items"]
    assert sorted((i["number"], i["total"]) for i in invoices) == [("INV-000001", "25.00"),
                                                                    ("INV-000002", "50.00")]
    for order in (one, two):
        assert api.get(f"/sales-orders/{order['id']}").json()["invoice_status"] == "invoiced"
    _books_agree(api)


@pytest.mark.parametrize("first", ["ship", "cancel"])
def test_an_order_cancelled_while_it_ships_does_one_or_the_other(api, first):
    # given a confirmed order of 4 of 10 units, on a shipment
    desk = order_desk(api, stock=10)
    order = create_order(api, desk, 4)
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    ship = lambda uow: service.ship_shipment(uow, uuid.UUID(shipment["id"])).status  # noqa: E731
    cancel = lambda uow: service.cancel_sales_order(uow, uuid.UUID(order["id"])).status  # noqa: E731
    # when the shipment ships and the order is cancelled at once (either first)
    steps = (ship, cancel) if first == "ship" else (cancel, ship)
    done, refused = together(api.tenant, *steps)
    # then the first is done and the second refused (409)
    assert type(refused) is InvalidTransition and _refused(refused), refused
    read = api.get(f"/sales-orders/{order['id']}").json()
    status = api.get(f"/shipments/{shipment['id']}").json()["status"]
    [item] = api.get(f"/stock?product_id={desk.product_id}").json()["items"]
    if first == "ship":
        assert (done, read["status"], status, item["on_hand"], item["reserved"]) == (
            "shipped", "shipped", "shipped", "6", "0")
    else:
        assert (done, read["status"], status, item["on_hand"], item["reserved"]) == (
            "cancelled", "cancelled", "cancelled", "10", "0")
    _books_agree(api)


def test_one_order_confirmed_twice_at_once_reserves_once(api):
    desk = order_desk(api, stock=10)
    order = create_order(api, desk, 4)
    confirm = lambda uow: service.confirm_sales_order(uow, uuid.UUID(order["id"])).status  # noqa: E731
    first, second = together(api.tenant, confirm, confirm)
    assert (first, type(second)) == ("confirmed", InvalidTransition)
    assert _refused(second)
    [item] = api.get(f"/stock?product_id={desk.product_id}").json()["items"]
    assert (item["on_hand"], item["reserved"]) == ("10", "4")
    read = api.get(f"/sales-orders/{order['id']}").json()
    assert (read["status"], read["lines"][0]["quantity_reserved"]) == ("confirmed", "4")
    _books_agree(api)


@pytest.mark.parametrize("first", ["release", "cancel"])
def test_a_credit_hold_released_while_the_order_is_cancelled_leaves_nothing_reserved(api, first):
    # given an order on credit hold (25.00 over a limit of 10.00)
    desk = order_desk(api, stock=10, credit_limit="10.00")
    order = create_order(api, desk, 2)
    assert act(api, f"/sales-orders/{order['id']}/confirm")["status"] == "on_hold"
    release = lambda uow: service.release_hold(uow, uuid.UUID(order["id"])).status  # noqa: E731
    cancel = lambda uow: service.cancel_sales_order(uow, uuid.UUID(order["id"])).status  # noqa: E731
    # when a credit manager releases it and a clerk cancels it at once (either first)
    if first == "release":
        # then the cancel waits for the release and cancels the confirmed order, releasing its stock
        assert together(api.tenant, release, cancel) == ["confirmed", "cancelled"]
    else:
        # then the release waits for the cancel and is refused: nothing is reserved for a cancelled order
        cancelled, refused = together(api.tenant, cancel, release)
        assert (cancelled, type(refused)) == ("cancelled", InvalidTransition)
        assert _refused(refused)
    [item] = api.get(f"/stock?product_id={desk.product_id}").json()["items"]
    assert (item["on_hand"], item["reserved"]) == ("10", "0")
    assert api.get(f"/sales-orders/{order['id']}").json()["status"] == "cancelled"
    _books_agree(api)


def test_two_returns_of_one_shipped_line_authorised_at_once_never_exceed_what_shipped(api):
    # given 4 units shipped
    _, order = shipped_order(api, 4)
    line = uuid.UUID(order["lines"][0]["id"])
    authorise = lambda uow: returns.authorise_return(  # noqa: E731
        uow, sales_order_id=uuid.UUID(order["id"]), lines=[returns.ReturnLineInput(line, D(3))]).number
    # when two returns of 3 are authorised at once
    first, second = together(api.tenant, authorise, authorise)
    # then the second sees the first: only 1 is left to return (422)
    assert type(second) is ValidationFailed and _refused(second), second
    assert "only 1 shipped and not yet returned" in str(second.errors)
    rmas = api.get("/returns", params={"sales_order_id": order["id"]}).json()["items"]
    assert [r["number"] for r in rmas] == [first]


def test_a_return_received_while_another_is_authorised_never_exceeds_what_shipped(api):
    # given 4 units shipped, 3 of them authorised for return
    _, order = shipped_order(api, 4)
    line = uuid.UUID(order["lines"][0]["id"])
    rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "lines": [
        {"sales_order_line_id": str(line), "quantity": "3"}]})
    receive = lambda uow: returns.receive_return(uow, uuid.UUID(rma["id"])).status  # noqa: E731
    authorise = lambda uow: returns.authorise_return(  # noqa: E731
        uow, sales_order_id=uuid.UUID(order["id"]), lines=[returns.ReturnLineInput(line, D(2))]).number
    # when the first is received and another of 2 is authorised at once
    received, refused = together(api.tenant, receive, authorise)
    # then the second counts the 3 received: only 1 is left
    assert (received, type(refused)) == ("received", ValidationFailed), refused
    read = api.get(f"/sales-orders/{order['id']}").json()
    assert read["lines"][0]["quantity_returned"] == "3"
    _books_agree(api)


@pytest.mark.parametrize("change", [{"credit_limit": "10.00"}, {"status": "blocked"}])
def test_an_order_confirmed_while_its_customers_credit_is_cut_is_checked_against_the_cut(api, change):
    from entrepot.parties import service as parties

    # given a customer with a credit limit of 100.00 and a draft order of 25.00
    desk = order_desk(api, stock=10, credit_limit="100.00")
    order = create_order(api, desk, 2)
    cut = lambda uow: parties.update_customer(uow, uuid.UUID(desk.customer_id), change).version  # noqa: E731
    confirm = lambda uow: service.confirm_sales_order(uow, uuid.UUID(order["id"])).status  # noqa: E731
    # when credit control cuts the customer's credit and, before that commits, the order is confirmed
    _, confirmed = together(api.tenant, cut, confirm)
    # then the confirmation waited for the cut and went by it: held (limit), or refused (blocked)
    if "credit_limit" in change:
        assert confirmed == "on_hold"
    else:
        assert getattr(confirmed, "code", None) == "customer_not_active" and _refused(confirmed), confirmed
    [item] = api.get(f"/stock?product_id={desk.product_id}").json()["items"]
    assert item["reserved"] == "0"


def _receive(desk, quantity):
    return lambda uow: inventory.receive_stock(uow, product_id=uuid.UUID(desk.product_id),
                                               warehouse_id=uuid.UUID(desk.warehouse_id), quantity=quantity,
                                               unit_cost="5.00", reference="PO-1").quantity.normalize()


@pytest.mark.parametrize("first", ["receipt", "stop"])
@pytest.mark.parametrize("stop", ["cancel", "close"])
def test_stock_received_while_a_backordered_order_is_stopped_is_never_left_reserved_for_it(api, stop, first):
    # given an order of 6 of which 4 are reserved and 2 backordered (partially shipped, to close it short)
    desk = order_desk(api, stock=4)
    order = create_order(api, desk, 6)
    act(api, f"/sales-orders/{order['id']}/confirm")
    on_hand = 4
    if stop == "close":
        shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"], "lines": [
            {"sales_order_line_id": order["lines"][0]["id"], "quantity": "1"}]})
        act(api, f"/shipments/{shipment['id']}/ship")
        on_hand = 3
    halt = {"cancel": service.cancel_sales_order, "close": service.close_short}[stop]
    halted = lambda uow: halt(uow, uuid.UUID(order["id"])).status  # noqa: E731
    # when 5 units arrive (filling the backorder) while the order is cancelled or closed short (either first)
    steps = (_receive(desk, 5), halted) if first == "receipt" else (halted, _receive(desk, 5))
    outcomes = together(api.tenant, *steps)
    # then both are done, and nothing stays reserved for the stopped order
    assert sorted(map(str, outcomes)) == sorted(["5", "cancelled" if stop == "cancel" else "closed"]), outcomes
    [item] = api.get(f"/stock?product_id={desk.product_id}").json()["items"]
    assert (D(item["on_hand"]), D(item["reserved"])) == (on_hand + 5, 0)
    with api.tenant.uow(readonly=True) as uow:
        line = uuid.UUID(order["lines"][0]["id"])
        assert inventory.reserved_quantity(uow, "sales_order_line", [line]).get(line, D(0)) == 0
        assert inventory.backordered_quantity(uow, "sales_order_line", [line]).get(line, D(0)) == 0
    _books_agree(api)


def test_a_count_posted_while_an_order_reserves_the_last_units_never_counts_below_what_is_reserved(api):
    # given 5 units on the shelf, being counted, and an order for all 5
    desk = order_desk(api, stock=5)
    order = create_order(api, desk, 5)
    count = inventory.start_count
    with api.tenant.uow() as uow:
        count_id = count(uow, warehouse_id=uuid.UUID(desk.warehouse_id), counter="Ana").id
        uow.commit()
    confirm = lambda uow: service.confirm_sales_order(uow, uuid.UUID(order["id"])).status  # noqa: E731
    post = lambda uow: inventory.post_count(uow, count_id, [  # noqa: E731
        {"product_id": desk.product_id, "counted_quantity": "4"}]).status
    # when the order is confirmed (reserving all 5) and, before that commits, a count of 4 is posted
    confirmed, refused = together(api.tenant, confirm, post)
    # then the count waited and is refused: 5 are reserved, it cannot leave fewer on the shelf
    assert (confirmed, type(refused)) == ("confirmed", inventory.InsufficientStock), refused
    [item] = api.get(f"/stock?product_id={desk.product_id}").json()["items"]
    assert (item["on_hand"], item["reserved"]) == ("5", "5")
    _books_agree(api)


def test_a_draft_changed_while_it_is_confirmed_reserves_the_lines_it_was_confirmed_with(api):
    # given a draft order of 4 of 10 units
    desk = order_desk(api, stock=10)
    order = create_order(api, desk, 4)
    change = lambda uow: len(service.update_sales_order(uow, uuid.UUID(order["id"]), {  # noqa: E731
        "lines": [service.OrderLineInput(uuid.UUID(desk.product_id), D(7))]}).lines)
    confirm = lambda uow: service.confirm_sales_order(uow, uuid.UUID(order["id"])).status  # noqa: E731
    # when its lines are changed to 7 units and, before that commits, it is confirmed
    assert together(api.tenant, change, confirm) == [1, "confirmed"]
    # then the confirmation reserved the new line, not the one the change deleted
    read = api.get(f"/sales-orders/{order['id']}").json()
    [item] = api.get(f"/stock?product_id={desk.product_id}").json()["items"]
    assert ([(ln["quantity"], ln["quantity_reserved"]) for ln in read["lines"]], item["reserved"]) == (
        [("7", "7")], "7")
    _books_agree(api)


def test_a_draft_confirmed_while_it_is_changed_refuses_the_change(api):
    desk = order_desk(api, stock=10)
    order = create_order(api, desk, 4)
    change = lambda uow: len(service.update_sales_order(uow, uuid.UUID(order["id"]), {  # noqa: E731
        "lines": [service.OrderLineInput(uuid.UUID(desk.product_id), D(7))]}).lines)
    confirm = lambda uow: service.confirm_sales_order(uow, uuid.UUID(order["id"])).status  # noqa: E731
    confirmed, refused = together(api.tenant, confirm, change)
    assert (confirmed, type(refused)) == ("confirmed", InvalidTransition) and _refused(refused)
    read = api.get(f"/sales-orders/{order['id']}").json()
    assert [(ln["quantity"], ln["quantity_reserved"]) for ln in read["lines"]] == [("4", "4")]


@pytest.mark.parametrize("first", ["release", "confirm"])
def test_an_order_confirmed_while_another_is_released_from_credit_hold_counts_the_released_one(api, first):
    # given a credit limit of 40.00, an order of 50.00 on credit hold and a draft of 25.00
    desk = order_desk(api, stock=10, credit_limit="40.00")
    held = create_order(api, desk, 4)
    assert act(api, f"/sales-orders/{held['id']}/confirm")["status"] == "on_hold"
    draft = create_order(api, desk, 2)
    release = lambda uow: service.release_hold(uow, uuid.UUID(held["id"])).status  # noqa: E731
    confirm = lambda uow: service.confirm_sales_order(uow, uuid.UUID(draft["id"])).status  # noqa: E731
    # when a credit manager releases the held order while the draft is confirmed (either first)
    if first == "release":
        outcomes = together(api.tenant, release, confirm)
    else:
        outcomes = together(api.tenant, confirm, release)[::-1]
    # then the release is the manager's decision for that order only: the draft's credit check counts the
    # released order when the release came first (on hold), and not when the check came first
    assert outcomes == ["confirmed", "on_hold" if first == "release" else "confirmed"], outcomes


# PostgreSQL only: a credit check reads the exposure in several statements, each of which sees what
# committed before it (READ COMMITTED); SQLite serialises writers from BEGIN, so nothing commits between
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_an_order_invoiced_between_the_reads_of_a_credit_check_is_still_counted(api, monkeypatch):
    from entrepot.billing import service as billing

    # given a credit limit of 60.00, a shipped order of 50.00 not yet invoiced, and a draft of 25.00
    desk = order_desk(api, stock=10, credit_limit="60.00")
    _, shipped = shipped_order(api, 4, desk)
    draft = create_order(api, desk, 2)
    # when the shipped order is invoiced (its 50.00 moving from the orders to the receivables) and
    # commits after the credit check of the draft has made its first read of the exposure
    reads: list[str] = []

    def then_invoice(read):
        def wrapped(*args, **kwargs):
            result = read(*args, **kwargs)
            if not reads:
                reads.append(read.__name__)
                with api.tenant.uow() as uow:
                    service.invoice_sales_order(uow, uuid.UUID(shipped["id"]))
                    uow.commit()
            return result
        return wrapped

    monkeypatch.setattr(billing, "open_receivables", then_invoice(billing.open_receivables))
    monkeypatch.setattr(service, "_uninvoiced_orders", then_invoice(service._uninvoiced_orders))
    with api.tenant.uow() as uow:
        status = service.confirm_sales_order(uow, uuid.UUID(draft["id"])).status
        uow.commit()
    # then the 50.00 is counted where it was or where it went, never in neither: over the limit, on hold
    assert reads and status == "on_hold"
