"""Issuing several demand lines at once (a shipment), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
from sqlalchemy import event, select
from sqlalchemy.engine import Engine

from entrepot.integration.models import OutboxEvent
from entrepot.inventory import service as inventory
from entrepot.inventory.models import StockMove
from entrepot.ledger.models import JournalEntry
from tests.integration.inventory.helpers import demand, levels, product, stock, warehouse


@contextmanager
def _counting() -> Iterator[list[str]]:
    """SQL statements run meanwhile, leaving out PostgreSQL's per-product advisory locks and the
    outbox inserts (one stock.issued.v1 event per line, by design)."""
    seen: list[str] = []

    def count(conn, cursor, statement, params, context, executemany):
        if "pg_advisory" not in statement and "INSERT INTO outbox_events" not in statement:
            seen.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", count)


def _reserved_lines(tenant, wh, count: int, quantity: int = 2, unit_cost: str = "3.00") -> list[inventory.Demand]:
    lines = []
    for _ in range(count):
        p = product(tenant)
        stock(tenant, wh, p, 10, unit_cost=unit_cost)
        lines.append(demand(p, quantity))
    with tenant.uow() as uow:
        inventory.allocate(uow, lines)
        uow.commit()
    return lines


def test_issuing_several_lines_posts_one_cost_entry_and_keeps_the_cost_per_move(tenant):
    # given three reserved lines of products costing 3.00, 3.00 and 5.00
    wh = warehouse(tenant)
    lines = _reserved_lines(tenant, wh, 2) + _reserved_lines(tenant, wh, 1, unit_cost="5.00")
    # when they ship together
    with tenant.uow() as uow:
        results = inventory.issue_reserved_many(uow, demand_type="sales_order_line", reference="SHP-1",
                                                items=[(ln.demand_id, Decimal(2)) for ln in lines])
        uow.commit()
    # then each line has its own result, in order, and its own move at its own cost
    assert [(r.quantity, r.cost, r.warehouse_id) for r in results] == [
        (2, Decimal("6.00"), wh), (2, Decimal("6.00"), wh), (2, Decimal("10.00"), wh)]
    with tenant.uow(readonly=True) as uow:
        moves = {m.demand_id: m for m in uow.session.scalars(select(StockMove).where(StockMove.reference == "SHP-1"))}
        entries = list(uow.session.scalars(select(JournalEntry).where(JournalEntry.source_type == "shipment")))
        issued = [e.data for e in uow.session.scalars(select(OutboxEvent).where(OutboxEvent.type == "stock.issued.v1")
                                                      .order_by(OutboxEvent.seq))]
    assert {d: (m.value, m.unit_cost) for d, m in moves.items()} == {
        lines[0].demand_id: (6, 3), lines[1].demand_id: (6, 3), lines[2].demand_id: (10, 5)}
    assert [m_id for r in results for m_id in r.move_ids] == [moves[ln.demand_id].id for ln in lines]
    # one cost-of-goods entry for the whole shipment, for the total
    assert [e.total for e in entries] == [Decimal("22.00")]
    # still one stock.issued event per line
    assert [(e["demand_id"], e["cost"]) for e in issued] == [
        (str(lines[0].demand_id), "6.00"), (str(lines[1].demand_id), "6.00"), (str(lines[2].demand_id), "10.00")]
    for ln in lines:
        assert levels(tenant, ln.product_id)[wh].on_hand == 8
        assert levels(tenant, ln.product_id)[wh].available == 8
    with tenant.uow(readonly=True) as uow:
        assert inventory.reserved_quantity(uow, "sales_order_line", [ln.demand_id for ln in lines]) == {
            ln.demand_id: 0 for ln in lines}


def test_one_line_over_its_reservation_issues_nothing(tenant):
    # given two reserved lines
    wh = warehouse(tenant)
    first, second = _reserved_lines(tenant, wh, 2)
    # when the second asks for more than it reserved
    with tenant.uow() as uow, pytest.raises(inventory.NotReserved):
        inventory.issue_reserved_many(uow, demand_type="sales_order_line", reference="SHP-2",
                                      items=[(first.demand_id, Decimal(2)), (second.demand_id, Decimal(3))])
    # then not even the first line left the warehouse
    assert levels(tenant, first.product_id)[wh].on_hand == 10
    with tenant.uow(readonly=True) as uow:
        assert uow.session.scalar(select(StockMove.id).where(StockMove.reference == "SHP-2")) is None


def test_the_same_line_twice_consumes_its_reservation_once(tenant):
    wh = warehouse(tenant)
    [line] = _reserved_lines(tenant, wh, 1, quantity=4)
    with tenant.uow() as uow:
        results = inventory.issue_reserved_many(uow, demand_type="sales_order_line", reference="SHP-3",
                                                items=[(line.demand_id, Decimal(1)), (line.demand_id, Decimal(3))])
        uow.commit()
    assert [r.quantity for r in results] == [1, 3]
    assert levels(tenant, line.product_id)[wh].on_hand == 6
    with tenant.uow() as uow, pytest.raises(inventory.NotReserved):
        inventory.issue_reserved_many(uow, demand_type="sales_order_line", reference="SHP-4",
                                      items=[(line.demand_id, Decimal(1))])


def test_the_number_of_queries_does_not_grow_with_the_lines(tenant):
    # given a 2-line and a 6-line reserved demand
    wh = warehouse(tenant)
    small, large = _reserved_lines(tenant, wh, 2), _reserved_lines(tenant, wh, 6)
    counts = []
    for lines in (small, large):
        with tenant.uow() as uow, _counting() as seen:
            # when each is issued in one call
            inventory.issue_reserved_many(uow, demand_type="sales_order_line", reference="SHP",
                                          items=[(ln.demand_id, ln.quantity) for ln in lines])
            uow.session.flush()
            counts.append(len(seen))
            uow.commit()
    # then both took the same number of statements (not one batch of queries per line)
    assert counts[0] == counts[1]


def test_rows_already_loaded_in_the_session_show_the_issue(tenant):
    from entrepot.inventory.models import Reservation, StockBalance, StockDemand

    # given a reserved line whose balance, reservation and demand this transaction has loaded
    wh = warehouse(tenant)
    [line] = _reserved_lines(tenant, wh, 1, quantity=3)
    with tenant.uow() as uow:
        balance = uow.session.scalar(select(StockBalance).where(StockBalance.product_id == line.product_id,
                                                                StockBalance.location_kind == "stock"))
        reservation = uow.session.scalar(select(Reservation).where(Reservation.demand_id == line.demand_id))
        sd = uow.session.scalar(select(StockDemand).where(StockDemand.demand_id == line.demand_id))
        assert (balance.on_hand, balance.reserved, reservation.status, sd.status) == (10, 3, "open", "open")
        # when the whole line is issued
        inventory.issue_reserved_many(uow, demand_type="sales_order_line", reference="SHP-5",
                                      items=[(line.demand_id, Decimal(3))])
        # then those objects show it, and a balance check of the transaction finds nothing wrong
        assert (balance.on_hand, balance.reserved) == (7, 0)
        assert (reservation.quantity, reservation.status) == (0, "closed")
        assert sd.status == "closed"
        assert inventory.check_balances(uow) == []
        uow.commit()
    assert levels(tenant, line.product_id)[wh].on_hand == 7


def test_a_partial_issue_keeps_the_rest_reserved_and_the_line_open(tenant):
    from entrepot.inventory.models import StockDemand

    wh = warehouse(tenant)
    [line] = _reserved_lines(tenant, wh, 1, quantity=4)
    with tenant.uow() as uow:
        [result] = inventory.issue_reserved_many(uow, demand_type="sales_order_line", reference="SHP-6",
                                                 items=[(line.demand_id, Decimal(1))])
        uow.commit()
    assert (result.quantity, result.cost, len(result.move_ids)) == (1, Decimal("3.00"), 1)
    with tenant.uow(readonly=True) as uow:
        assert inventory.reserved_quantity(uow, "sales_order_line", [line.demand_id]) == {line.demand_id: 3}
        assert uow.session.scalar(select(StockDemand.status).where(StockDemand.demand_id == line.demand_id)) == "open"
    level = levels(tenant, line.product_id)[wh]
    assert (level.on_hand, level.reserved) == (9, 3)


def test_two_lines_of_a_serial_tracked_product_ship_different_serials(tenant):
    from entrepot.inventory.models import Location, SerialNumber

    # given three serials of one product in stock, and two lines reserving one and two of them
    p = product(tenant, track_serials=True)
    wh = warehouse(tenant)
    with tenant.uow() as uow:
        inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=3, unit_cost="1", reference="PO",
                                serials=["S1", "S2", "S3"])
        uow.commit()
    first, second = demand(p, 1), demand(p, 2)
    with tenant.uow() as uow:
        inventory.allocate(uow, [first, second])
        uow.commit()
    # when both lines ship together
    with tenant.uow() as uow:
        one, two = inventory.issue_reserved_many(uow, demand_type="sales_order_line", reference="SHP-S",
                                                 items=[(first.demand_id, Decimal(1)), (second.demand_id, Decimal(2))])
        uow.commit()
    # then each serial left once, oldest first, and all three are now at the customer
    assert (one.serials, two.serials) == (["S1"], ["S2", "S3"])
    with tenant.uow(readonly=True) as uow:
        kinds = dict(uow.session.execute(select(SerialNumber.serial, Location.kind)
                                         .join(Location, Location.id == SerialNumber.location_id)).all())
    assert kinds == {"S1": "customer", "S2": "customer", "S3": "customer"}
