"""Two stock steps at the same time (tests.concurrency.together): the second works from what the first
committed. On PostgreSQL (READ COMMITTED) a row read before a lock wait is as it was before the wait;
on SQLite the second writer waits at BEGIN, so each test also holds there trivially."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest

from entrepot.inventory import service as inventory
from entrepot.inventory.models import StockMove
from entrepot.kernel import clock
from entrepot.kernel.errors import InvalidTransition
from entrepot.ledger.services.reports import account_balances
from tests.concurrency import together
from tests.integration.inventory.helpers import demand, levels, product, stock, warehouse


def _counted(tenant, wh):
    with tenant.uow() as uow:
        count = inventory.start_count(uow, warehouse_id=wh, counter="Ana")
        uow.commit()
        return count.id


def _status(tenant, count_id):
    with tenant.uow(readonly=True) as uow:
        return inventory.get_count(uow, count_id).status


CHANGES = {
    "receipt": lambda p, wh, other: lambda uow: inventory.receive_stock(
        uow, product_id=p, warehouse_id=wh, quantity=2, unit_cost="1", reference="PO"),
    "adjustment": lambda p, wh, other: lambda uow: inventory.adjust_stock(
        uow, warehouse_id=wh, product_id=p, quantity=-1, reason="lost"),
    "scrap": lambda p, wh, other: lambda uow: inventory.scrap_stock(
        uow, warehouse_id=wh, product_id=p, quantity=1, reason="broken"),
    "transfer": lambda p, wh, other: lambda uow: inventory.create_transfer(
        uow, product_id=p, from_warehouse_id=wh, to_warehouse_id=other, quantity=1),
}


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_stock_changed_while_a_count_starts_there_is_refused(tenant, change):
    # given 10 units on the shelf
    p = product(tenant)
    wh, other = warehouse(tenant), warehouse(tenant)
    stock(tenant, wh, p, 10)
    # when a count starts there and, before it commits, the stock would change
    start = lambda uow: inventory.start_count(uow, warehouse_id=wh, counter="Ana").id  # noqa: E731
    count_id, refused = together(tenant, start, CHANGES[change](p, wh, other))
    # then the change is refused: the count sheet's expected quantities are what is on the shelf
    assert type(refused) is inventory.LocationLocked
    assert levels(tenant, p)[wh].on_hand == 10
    with tenant.uow(readonly=True) as uow:
        assert inventory.get_count(uow, count_id).lines[0]["expected"] == "10.0000"


def _ten_units_counted(tenant):  # type: ignore[no-untyped-def]
    """A product with 10 units in a warehouse whose stock location has an open count: (product, warehouse,
    count id)."""
    p = product(tenant)
    wh = warehouse(tenant)
    stock(tenant, wh, p, 10)
    return p, wh, _counted(tenant, wh)


def test_one_location_counted_twice_at_once_has_one_count(tenant):
    p = product(tenant)
    wh = warehouse(tenant)
    stock(tenant, wh, p, 10)
    start = lambda uow: inventory.start_count(uow, warehouse_id=wh, counter="Ana").status  # noqa: E731
    first, second = together(tenant, start, start)
    assert (first, type(second)) == ("open", inventory.LocationLocked)


def test_a_count_posted_and_cancelled_at_once_stays_posted(tenant):
    # given a count of 10 units, found 7
    p, wh, count_id = _ten_units_counted(tenant)
    post = lambda uow: inventory.post_count(uow, count_id, [  # noqa: E731
        {"product_id": str(p), "counted_quantity": "7"}]).status
    cancel = lambda uow: inventory.cancel_count(uow, count_id).status  # noqa: E731
    # when it is posted and, before that commits, cancelled
    posted, cancelled = together(tenant, post, cancel)
    # then the cancel is refused: the count that adjusted the stock stays posted
    assert (posted, type(cancelled)) == ("posted", InvalidTransition)
    assert (_status(tenant, count_id), levels(tenant, p)[wh].on_hand) == ("posted", 7)


def test_a_count_cancelled_twice_at_once_is_cancelled_once(tenant):
    _, _, count_id = _ten_units_counted(tenant)
    cancel = lambda uow: inventory.cancel_count(uow, count_id).status  # noqa: E731
    first, second = together(tenant, cancel, cancel)
    assert (first, type(second)) == ("cancelled", InvalidTransition)


def test_one_count_sheet_posted_twice_at_once_adjusts_once(tenant):
    p, wh, count_id = _ten_units_counted(tenant)
    post = lambda uow: inventory.post_count(uow, count_id, [  # noqa: E731
        {"product_id": str(p), "counted_quantity": "7"}]).status
    first, second = together(tenant, post, post)
    assert (first, type(second)) == ("posted", InvalidTransition)
    assert levels(tenant, p)[wh].on_hand == 7


def test_a_count_posted_while_a_new_lot_of_its_product_is_received_elsewhere(tenant):
    # given a lot-tracked product counted in one warehouse; a lot LOT-9 is found on the shelf there
    # and received in another warehouse at the same time (neither knew the lot yet)
    p = product(tenant, track_lots=True)
    wh, other = warehouse(tenant), warehouse(tenant)
    count_id = _counted(tenant, wh)
    receive = lambda uow: inventory.receive_stock(  # noqa: E731
        uow, product_id=p, warehouse_id=other, quantity=5, unit_cost="1", reference="PO", lot_code="LOT-9")
    post = lambda uow: inventory.post_count(uow, count_id, [  # noqa: E731
        {"product_id": str(p), "lot_code": "LOT-9", "counted_quantity": "2"}]).status
    # when both go in at once, then both are in, with the one lot
    _, posted = together(tenant, receive, post)
    assert posted == "posted"
    assert (levels(tenant, p)[wh].on_hand, levels(tenant, p)[other].on_hand) == (2, 5)


def test_a_transfer_received_twice_at_once_is_received_once(tenant):
    p = product(tenant)
    source, target = warehouse(tenant), warehouse(tenant)
    stock(tenant, source, p, 10)
    with tenant.uow() as uow:
        transfer_id = inventory.create_transfer(uow, product_id=p, from_warehouse_id=source,
                                                to_warehouse_id=target, quantity=4).id
        uow.commit()
    receive = lambda uow: inventory.receive_transfer(uow, transfer_id).status  # noqa: E731
    first, second = together(tenant, receive, receive)
    assert (first, type(second)) == ("received", InvalidTransition)
    level = levels(tenant, p)[target]
    assert (level.on_hand, level.in_transit) == (4, 0)


@pytest.mark.parametrize("order", ["ship_first", "cancel_first"])
def test_a_requested_transfer_shipped_and_cancelled_at_once_does_one_of_them(tenant, order):
    # given a requested transfer of 4, its stock reserved at the source
    p = product(tenant)
    source, target = warehouse(tenant), warehouse(tenant)
    stock(tenant, source, p, 10)
    with tenant.uow() as uow:
        transfer_id = inventory.create_transfer(uow, product_id=p, from_warehouse_id=source,
                                                to_warehouse_id=target, quantity=4, ship=False).id
        uow.commit()
    ship = lambda uow: inventory.ship_transfer(uow, transfer_id).status  # noqa: E731
    cancel = lambda uow: inventory.cancel_transfer(uow, transfer_id).status  # noqa: E731
    steps = (ship, cancel) if order == "ship_first" else (cancel, ship)
    # when it is shipped and cancelled at once, then the first wins and the second is refused
    first, second = together(tenant, *steps)
    assert (first, type(second)) == ("in_transit" if order == "ship_first" else "cancelled", InvalidTransition)
    at_source = levels(tenant, p)[source]
    in_transit = levels(tenant, p)[target].in_transit if order == "ship_first" else 0
    assert (at_source.on_hand, at_source.reserved, in_transit) == ((6, 0, 4) if order == "ship_first" else (10, 0, 0))
    with tenant.uow(readonly=True) as uow:
        assert inventory.check_balances(uow) == []


def test_two_backdated_receipts_at_once_revalue_from_each_other(tenant):
    # given 10 units at 1.00 received 5 days ago, 6 of them shipped since
    today = clock.today()
    p = product(tenant)
    wh = warehouse(tenant)
    stock(tenant, wh, p, 10, unit_cost="1.00", on=today - timedelta(days=5))
    line = demand(p, 6)
    with tenant.uow() as uow:
        inventory.allocate(uow, [line])
        inventory.issue_reserved(uow, demand_type="sales_order_line", demand_id=line.demand_id, quantity=D(6),
                                 reference="SHP")
        uow.commit()

    def receive(unit_cost, days):
        return lambda uow: inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=10,
                                                   unit_cost=unit_cost, reference="PO-late",
                                                   on=today - timedelta(days=days))

    # when two receipts dated before the shipment go in at once (10 at 3.00 and 10 at 5.00)
    assert [type(o) for o in together(tenant, receive("3.00", 10), receive("5.00", 8))] == [StockMove] * 2
    # then the shipment is costed at the average of all 30 units (3.00): COGS 18.00, 24 units worth 72.00
    with tenant.uow(readonly=True) as uow:
        accounts = {a.role: a.balance for a in account_balances(uow) if a.role in ("inventory", "cogs")}
        assert (accounts["cogs"], accounts["inventory"], inventory.valuation(uow).total_value) == (
            D("18.00"), D("72.00"), D("72.00"))
        assert inventory.check_balances(uow) == []


TAKERS = {  # a stock change that takes one unit off the shelf
    "adjustment": lambda p, wh, other: lambda uow: inventory.adjust_stock(
        uow, warehouse_id=wh, product_id=p, quantity=-1, reason="lost"),
    "scrap": lambda p, wh, other: lambda uow: inventory.scrap_stock(
        uow, warehouse_id=wh, product_id=p, quantity=1, reason="broken"),
    "transfer": lambda p, wh, other: lambda uow: inventory.create_transfer(
        uow, product_id=p, from_warehouse_id=wh, to_warehouse_id=other, quantity=1),
}


@pytest.mark.parametrize("first", ["allocation", "change"])
@pytest.mark.parametrize("change", sorted(TAKERS))
def test_a_unit_taken_off_the_shelf_while_an_order_reserves_the_last_ones_never_leaves_less_than_reserved(
        tenant, change, first):
    # given 5 units on the shelf and an order line for all 5
    p = product(tenant)
    wh, other = warehouse(tenant), warehouse(tenant)
    stock(tenant, wh, p, 5)
    line = demand(p, 5)
    reserve = lambda uow: inventory.allocate(uow, [line])[0]  # noqa: E731
    take = TAKERS[change](p, wh, other)
    # when one unit is taken off (adjusted, scrapped, transferred) while the order reserves (either first)
    if first == "allocation":
        reserved, refused = together(tenant, reserve, take)
        # then the change waited for the reservation and is refused: nothing is left that is not reserved
        assert (reserved.reserved, type(refused)) == (5, inventory.InsufficientStock), refused
        assert refused.status == 409
        expected = (5, 5, 0)
    else:
        taken, reserved = together(tenant, take, reserve)
        # then the reservation waited for the change and takes the 4 left; the fifth is backordered
        assert type(taken) is not inventory.InsufficientStock, taken
        assert (reserved.reserved, reserved.backordered) == (4, 1)
        expected = (4, 4, 0)
    level = levels(tenant, p)[wh]
    assert (level.on_hand, level.reserved, level.available) == expected
    with tenant.uow(readonly=True) as uow:
        assert inventory.check_balances(uow) == []
        assert inventory.reserved_quantity(uow, "sales_order_line", [line.demand_id])[line.demand_id] == expected[1]
