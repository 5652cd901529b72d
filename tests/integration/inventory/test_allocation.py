"""Allocation, backorders, release and issue through the services, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from entrepot.cli.main import app
from entrepot.db.uow import platform_uow
from entrepot.identity.models import Tenant
from entrepot.integration.models import OutboxEvent
from entrepot.inventory import service as inventory
from entrepot.inventory.models import Lot
from entrepot.kernel import clock
from entrepot.kernel.errors import ValidationFailed
from tests.integration.inventory.helpers import demand, levels, product, stock, warehouse


def _set(tenant, **settings):
    with platform_uow(url=tenant.url) as p:
        t = p.session.get(Tenant, tenant.id)
        t.settings = {**t.settings, **settings}
        p.commit()


def _events(tenant, type_):
    with tenant.uow(readonly=True) as uow:
        return [e.data for e in uow.session.scalars(select(OutboxEvent).where(OutboxEvent.type == type_)
                                                    .order_by(OutboxEvent.seq))]


def test_priority_policy_takes_one_warehouse_that_can_fill_the_line(tenant):
    # given two warehouses, the preferred one too short
    p = product(tenant)
    first = warehouse(tenant, "FIRST", priority=1)
    second = warehouse(tenant, "SECOND", priority=2)
    stock(tenant, first, p, 3)
    stock(tenant, second, p, 10)
    # when
    with tenant.uow() as uow:
        [result] = inventory.allocate(uow, [demand(p, 5)])
        uow.commit()
    # then the whole line comes from the one that can fill it
    assert result.reserved == 5 and result.backordered == 0
    assert [r.warehouse_id for r in result.reservations] == [second]
    assert levels(tenant, p)[second].available == 5


def test_split_policy_fills_across_warehouses_and_backorders_the_rest(tenant):
    _set(tenant, allocation_policy="split")
    p = product(tenant)
    a, b = warehouse(tenant, priority=1), warehouse(tenant, priority=2)
    stock(tenant, a, p, 3)
    stock(tenant, b, p, 4)
    with tenant.uow() as uow:
        [result] = inventory.allocate(uow, [demand(p, 10)])
        uow.commit()
    assert result.reserved == 7 and result.backordered == 3
    assert {r.warehouse_id: r.quantity for r in result.reservations} == {a: 3, b: 4}
    with tenant.uow(readonly=True) as uow:
        assert inventory.backordered_quantity(uow, "sales_order_line", [result.demand_id]) == {result.demand_id: 3}
        assert inventory.reserved_quantity(uow, "sales_order_line", [result.demand_id]) == {result.demand_id: 7}


def test_arriving_stock_fills_backorders_oldest_promise_first(tenant):
    p = product(tenant)
    wh = warehouse(tenant)
    stock(tenant, wh, p, 1)
    older, newer = demand(p, 4), demand(p, 4)
    with tenant.uow() as uow:
        inventory.allocate(uow, [older])
        uow.commit()
    with tenant.uow() as uow:
        inventory.allocate(uow, [newer])
        uow.commit()
    # when 5 units arrive
    with tenant.uow() as uow:
        inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=5, unit_cost="2", reference="PO-1")
        uow.commit()
    # then the older line is complete first, the newer gets the rest
    with tenant.uow(readonly=True) as uow:
        reserved = inventory.reserved_quantity(uow, "sales_order_line", [older.demand_id, newer.demand_id])
        back = inventory.backordered_quantity(uow, "sales_order_line", [older.demand_id, newer.demand_id])
    assert reserved == {older.demand_id: 4, newer.demand_id: 2}
    assert back == {older.demand_id: 0, newer.demand_id: 2}
    events = _events(tenant, "stock.backorder_allocated.v1")
    assert [e["demand_id"] for e in events] == [str(older.demand_id), str(newer.demand_id)]


def test_the_backorder_lookup_is_served_by_the_partial_index(sqlite_only):
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    from tests.conftest import make_tenant

    # given a backordered line (only those are in the partial index on product)
    tenant = make_tenant(sqlite_only)
    p = product(tenant)
    wh = warehouse(tenant)
    with tenant.uow() as uow:
        inventory.allocate(uow, [demand(p, 2)])
        uow.commit()
    seen: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, params, context, executemany):
        if "FROM inventory_stock_demands" in statement and "backordered >" in statement:
            seen.append((statement, params))

    # when stock arrives and the backorders of the product are looked up
    event.listen(Engine, "before_cursor_execute", keep)
    try:
        with tenant.uow() as uow:
            inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=5, unit_cost="2", reference="PO")
            statement, params = seen[0]
            plan = uow.session.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params).all()
            uow.commit()
    finally:
        event.remove(Engine, "before_cursor_execute", keep)
    # then SQLite can use the partial index: the query says `backordered > 0` literally, as the index does
    assert "backordered > 0" in statement
    assert any("ix_inventory_stock_demands_tenant_id_product_id_status" in str(row) for row in plan), plan


def test_release_frees_stock_and_cancels_the_backorder(tenant):
    p = product(tenant)
    wh = warehouse(tenant)
    stock(tenant, wh, p, 2)
    line = demand(p, 5)
    with tenant.uow() as uow:
        inventory.allocate(uow, [line])
        uow.commit()
    with tenant.uow() as uow:
        released = inventory.release(uow, "sales_order_line", line.demand_id)
        uow.commit()
    assert released == 2
    assert levels(tenant, p)[wh].reserved == 0
    assert [(e["demand_id"], e["product_id"], Decimal(e["released"]))
            for e in _events(tenant, "stock.released.v1")] == [(str(line.demand_id), str(p), 2)]
    # the opening stock was an adjustment, announced with what it left on hand
    [adjusted] = _events(tenant, "stock.adjusted.v1")
    assert (adjusted["product_id"], adjusted["warehouse_id"], Decimal(adjusted["quantity"]),
            Decimal(adjusted["on_hand"]), adjusted["reason"]) == (str(p), str(wh), 2, 2, "initial")
    with tenant.uow(readonly=True) as uow:
        assert inventory.backordered_quantity(uow, "sales_order_line", [line.demand_id])[line.demand_id] == 0
    # and later stock does not go to the cancelled line
    stock(tenant, wh, p, 3)
    assert levels(tenant, p)[wh].reserved == 0


def test_issue_consumes_reservations_at_moving_average_cost(tenant):
    p = product(tenant)
    wh = warehouse(tenant)
    stock(tenant, wh, p, 10, unit_cost="2.00")
    stock(tenant, wh, p, 10, unit_cost="4.00")
    line = demand(p, 6)
    with tenant.uow() as uow:
        inventory.allocate(uow, [line])
        uow.commit()
    # when more than reserved is asked for
    with tenant.uow() as uow, pytest.raises(inventory.NotReserved):
        inventory.issue_reserved(uow, demand_type="sales_order_line", demand_id=line.demand_id,
                                 quantity=Decimal(7), reference="SHP-1")
    # when the reserved quantity ships in two parts
    with tenant.uow() as uow:
        first = inventory.issue_reserved(uow, demand_type="sales_order_line", demand_id=line.demand_id,
                                         quantity=Decimal(4), reference="SHP-1")
        second = inventory.issue_reserved(uow, demand_type="sales_order_line", demand_id=line.demand_id,
                                          quantity=Decimal(2), reference="SHP-2")
        uow.commit()
    # then
    assert first.cost == Decimal("12.00") and second.cost == Decimal("6.00") and first.warehouse_id == wh
    level = levels(tenant, p)[wh]
    assert level.on_hand == 14 and level.reserved == 0
    with tenant.uow(readonly=True) as uow:
        assert inventory.check_balances(uow) == []
        assert inventory.valuation(uow).total_value == Decimal("42.00")


def test_returns_and_scrap(tenant):
    p = product(tenant)
    wh = warehouse(tenant)
    stock(tenant, wh, p, 5, unit_cost="2.00")
    with tenant.uow() as uow:
        inventory.receive_return(uow, product_id=p, warehouse_id=wh, quantity=1, unit_cost="2.00", reference="RMA-1")
        inventory.receive_return(uow, product_id=p, warehouse_id=wh, quantity=1, unit_cost="2.00", reference="RMA-2",
                                 scrap=True)
        inventory.scrap_stock(uow, warehouse_id=wh, product_id=p, quantity=2, reason="broken")
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        assert levels(tenant, p)[wh].on_hand == 4
        assert inventory.valuation(uow).total_value == Decimal("8.00")
        assert inventory.check_balances(uow) == []


def test_fefo_allocates_the_earliest_expiry_and_never_an_expired_lot(tenant):
    p = product(tenant, track_lots=True)
    wh = warehouse(tenant)
    today = clock.today()
    # a lot received last week that has expired since (receiving it expired is refused)
    with clock.frozen_at(clock.now() - timedelta(days=7)), tenant.uow() as uow:
        inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=5, unit_cost="1", reference="PO",
                                lot_code="GONE", expiry=today - timedelta(days=1))
        uow.commit()
    with tenant.uow() as uow:
        for code, days in (("LATE", 90), ("SOON", 10)):
            inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=5, unit_cost="1", reference="PO",
                                    lot_code=code, expiry=today + timedelta(days=days))
        uow.commit()
    line = demand(p, 7)
    with tenant.uow() as uow:
        [result] = inventory.allocate(uow, [line])
        issued = inventory.issue_reserved(uow, demand_type="sales_order_line", demand_id=line.demand_id,
                                          quantity=Decimal(7), reference="SHP-9")
        uow.commit()
    assert result.reserved == 7
    assert [(lot.lot_code, lot.quantity) for lot in issued.lots] == [("SOON", 5), ("LATE", 2)]
    # the recall trace finds the shipment
    with tenant.uow(readonly=True) as uow:
        soon = next(lot for lot in issued.lots if lot.lot_code == "SOON")
        trace = inventory.trace_lot(uow, soon.lot_id)
    assert [m.reference for m in trace.shipped] == ["SHP-9"]


def test_a_lot_reserved_before_it_expired_does_not_ship_after_and_none_is_adjusted_in(tenant):
    # given 5 units of a lot that expires tomorrow, reserved for a line today
    p = product(tenant, track_lots=True)
    wh = warehouse(tenant)
    tomorrow = clock.today() + timedelta(days=1)
    with tenant.uow() as uow:
        inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=5, unit_cost="1", reference="PO",
                                lot_code="SOON", expiry=tomorrow)
        uow.commit()
    line = demand(p, 2)
    with tenant.uow() as uow:
        inventory.allocate(uow, [line])
        uow.commit()
    # when the shipment goes out two days later
    with clock.frozen_at(clock.now() + timedelta(days=2)):
        with tenant.uow() as uow, pytest.raises(inventory.ExpiredLot):
            inventory.issue_reserved(uow, demand_type="sales_order_line", demand_id=line.demand_id,
                                     quantity=Decimal(2), reference="SHP-1")
        # and someone adjusts more of that lot into stock
        with tenant.uow() as uow, pytest.raises(inventory.ExpiredLot):
            inventory.adjust_stock(uow, warehouse_id=wh, product_id=p, quantity=3, reason="found",
                                   unit_cost="1", lot_code="SOON")
    # then nothing moved: the units are still on hand and reserved
    level = levels(tenant, p)[wh]
    assert (level.on_hand, level.reserved) == (5, 2)


def test_a_location_being_counted_takes_no_receipt_scrap_or_adjustment(tenant):
    # given a warehouse whose stock location is being counted
    p = product(tenant)
    wh = warehouse(tenant)
    stock(tenant, wh, p, 10)
    with tenant.uow() as uow:
        count = inventory.start_count(uow, warehouse_id=wh, counter="Ana")
        uow.commit()
    # when stock would change there meanwhile, then each is refused
    refused = {
        "receipt": lambda uow: inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=2,
                                                       unit_cost="1", reference="PO"),
        "scrap": lambda uow: inventory.scrap_stock(uow, warehouse_id=wh, product_id=p, quantity=1,
                                                   reason="broken"),
        "adjustment": lambda uow: inventory.adjust_stock(uow, warehouse_id=wh, product_id=p, quantity=-1,
                                                         reason="lost"),
    }
    for change in refused.values():
        with tenant.uow() as uow, pytest.raises(inventory.LocationLocked):
            change(uow)
    assert levels(tenant, p)[wh].on_hand == 10
    # and once the count is cancelled, a receipt goes in
    with tenant.uow() as uow:
        inventory.cancel_count(uow, count.id)
        refused["receipt"](uow)
        uow.commit()
    assert levels(tenant, p)[wh].on_hand == 12


def test_transfers_neither_leave_nor_arrive_at_a_location_being_counted(tenant):
    # given a transfer in transit to a warehouse, and a requested one from the warehouse it left
    p = product(tenant)
    source, target = warehouse(tenant), warehouse(tenant)
    stock(tenant, source, p, 10)
    with tenant.uow() as uow:
        moving = inventory.create_transfer(uow, product_id=p, from_warehouse_id=source, to_warehouse_id=target,
                                           quantity=2)
        waiting = inventory.create_transfer(uow, product_id=p, from_warehouse_id=source, to_warehouse_id=target,
                                            quantity=3, ship=False)
        uow.commit()
    # when both warehouses' stock locations are being counted
    with tenant.uow() as uow:
        counts = [inventory.start_count(uow, warehouse_id=wh, counter="Ana") for wh in (source, target)]
        uow.commit()
    # then nothing leaves or arrives, nor does a new transfer leave
    refused = [lambda uow: inventory.receive_transfer(uow, moving.id),
               lambda uow: inventory.ship_transfer(uow, waiting.id),
               lambda uow: inventory.create_transfer(uow, product_id=p, from_warehouse_id=source,
                                                     to_warehouse_id=target, quantity=1)]
    for change in refused:
        with tenant.uow() as uow, pytest.raises(inventory.LocationLocked):
            change(uow)
    assert levels(tenant, p)[source].on_hand == 8 and levels(tenant, p)[target].in_transit == 2
    # and once the counts are cancelled they go through
    with tenant.uow() as uow:
        for count in counts:
            inventory.cancel_count(uow, count.id)
        inventory.receive_transfer(uow, moving.id)
        inventory.ship_transfer(uow, waiting.id)
        uow.commit()
    assert levels(tenant, p)[target].on_hand == 2 and levels(tenant, p)[target].in_transit == 3


def test_serials_received_twice_are_refused(tenant):
    p = product(tenant, track_serials=True)
    wh = warehouse(tenant)
    with tenant.uow() as uow:
        inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=2, unit_cost="1", reference="PO",
                                serials=["S1", "S2"])
        uow.commit()
    with tenant.uow() as uow, pytest.raises(inventory.SerialInStock):
        inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=1, unit_cost="1", reference="PO",
                                serials=["S2"])
    line = demand(p, 1)
    with tenant.uow() as uow:
        inventory.allocate(uow, [line])
        issued = inventory.issue_reserved(uow, demand_type="sales_order_line", demand_id=line.demand_id,
                                          quantity=Decimal(1), reference="SHP")
        uow.commit()
    assert issued.serials == ["S1"]


def test_negative_stock_allowed_when_the_tenant_says_so(tenant):
    _set(tenant, allow_negative_stock=True)
    p = product(tenant)
    wh = warehouse(tenant)
    stock(tenant, wh, p, -3)
    assert levels(tenant, p)[wh].on_hand == -3


def test_inventory_check_catches_a_corrupted_balance(tenant):
    from entrepot.inventory.models import StockBalance

    p = product(tenant)
    wh = warehouse(tenant)
    stock(tenant, wh, p, 5)
    with tenant.uow(readonly=True) as uow:
        assert inventory.check_balances(uow) == []
    with tenant.uow() as uow:
        balance = uow.session.scalar(select(StockBalance).where(StockBalance.product_id == p))
        balance.on_hand = Decimal(6)
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        found = inventory.check_balances(uow)
    assert [(d.kind, d.expected, d.actual) for d in found if d.kind == "on_hand"] == [("on_hand", 5, 6)]


def test_stock_low_event_when_available_crosses_the_reorder_point(tenant):
    p = product(tenant)
    wh = warehouse(tenant)
    stock(tenant, wh, p, 10)
    with tenant.uow() as uow:
        inventory.set_reorder_rule(uow, product_id=p, warehouse_id=wh, reorder_point=5, order_up_to=20)
        uow.commit()
    with tenant.uow() as uow:
        inventory.allocate(uow, [demand(p, 3)])
        uow.commit()
    assert _events(tenant, "stock.low.v1") == []
    with tenant.uow() as uow:
        inventory.allocate(uow, [demand(p, 3)])
        uow.commit()
    [low] = _events(tenant, "stock.low.v1")
    assert low["available"] in ("4", "4.0000")
    with tenant.uow(readonly=True) as uow:
        [s] = inventory.replenishment_suggestions(uow)
    assert s.quantity == 16 and s.supplier_id is None


def test_stock_at_a_past_date(tenant):
    p = product(tenant)
    wh = warehouse(tenant)
    today = clock.today()
    stock(tenant, wh, p, 5, on=today - timedelta(days=3))
    stock(tenant, wh, p, 2)
    with tenant.uow(readonly=True) as uow:
        past = inventory.stock_at(uow, p, today - timedelta(days=1))
        now = inventory.stock_at(uow, p, today)
    assert past[0].on_hand == 5 and now[0].on_hand == 7


def test_stock_in_a_bin_is_allocated_and_issued_from_that_bin(tenant):
    p = product(tenant)
    wh = warehouse(tenant)
    with tenant.uow() as uow:
        bin_id = inventory.create_location(uow, wh, {"code": "B-7", "name": "Bin 7"}).id
        uow.commit()
    stock(tenant, wh, p, 3, location_id=bin_id)
    line = demand(p, 2)
    with tenant.uow() as uow:
        [result] = inventory.allocate(uow, [line])
        inventory.issue_reserved(uow, demand_type="sales_order_line", demand_id=line.demand_id,
                                 quantity=Decimal(2), reference="SHP")
        uow.commit()
    assert [r.location_id for r in result.reservations] == [bin_id]
    with tenant.uow(readonly=True) as uow:
        detail = {s.location_id: s.on_hand for s in inventory.stock_by_location(uow, p)}
        assert detail == {bin_id: 1}
        assert inventory.check_balances(uow) == []


def test_released_stock_goes_to_backorders_when_the_tenant_asks(tenant):
    _set(tenant, reallocate_on_release=True)
    p = product(tenant)
    wh = warehouse(tenant)
    stock(tenant, wh, p, 2)
    first, waiting = demand(p, 2), demand(p, 2)
    with tenant.uow() as uow:
        inventory.allocate(uow, [first])
        inventory.allocate(uow, [waiting])
        uow.commit()
    with tenant.uow() as uow:
        inventory.release(uow, "sales_order_line", first.demand_id)
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        assert inventory.reserved_quantity(uow, "sales_order_line", [waiting.demand_id])[waiting.demand_id] == 2


def test_lots_about_to_expire_are_announced_once_each(tenant):
    p = product(tenant, track_lots=True)
    wh = warehouse(tenant)
    today = clock.today()
    with tenant.uow() as uow:
        inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=2, unit_cost="1", reference="PO",
                                lot_code="SOON", expiry=today + timedelta(days=5))
        inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=2, unit_cost="1", reference="PO",
                                lot_code="LATER", expiry=today + timedelta(days=200))
        uow.commit()
    # when the check runs with the default window (30 days)
    with tenant.uow() as uow:
        lots = inventory.announce_expiring_lots(uow)
        uow.commit()
    # then the lot inside the window is listed and announced
    assert [(x.lot.code, x.on_hand, x.announced_now) for x in lots] == [("SOON", 2, True)]
    [event] = _events(tenant, "lot.expiring.v1")
    assert event["code"] == "SOON" and Decimal(event["on_hand"]) == 2
    assert event["expiry_date"] == (today + timedelta(days=5)).isoformat()
    # when it runs again (the worker's hourly job): listed, not announced twice
    with tenant.uow() as uow:
        again = inventory.announce_expiring_lots(uow)
        uow.commit()
    assert [(x.lot.code, x.announced, x.announced_now) for x in again] == [("SOON", True, False)]
    assert len(_events(tenant, "lot.expiring.v1")) == 1
    # when the tenant widens its window, the later lot comes into it and is announced in its turn
    _set(tenant, lot_expiry_warning_days=365)
    with tenant.uow() as uow:
        wider = inventory.announce_expiring_lots(uow)
        uow.commit()
    assert [(x.lot.code, x.announced_now) for x in wider] == [("SOON", False), ("LATER", True)]
    assert [e["code"] for e in _events(tenant, "lot.expiring.v1")] == ["SOON", "LATER"]


def _warned_for(tenant):
    with tenant.uow(readonly=True) as uow:
        return {lot.code: lot.expiry_warned_for for lot in uow.session.scalars(select(Lot))}


def _listed(result):
    """The command's lines as lot code -> ("expires DATE" or "expired DATE", the note in brackets); each line
    names the lot's product by sku and its stock as the API writes quantities (no trailing zeros)."""
    assert result.exit_code == 0, result.output
    lines = [re.fullmatch(r"(\S+) lot (\S+) (expire[sd] \S+), (\d+(?:\.\d*[1-9])?) on hand \((.+)\)", line)
             for line in result.output.splitlines()]
    assert all(lines), result.output
    return {m[2]: (m[3], m[5]) for m in lines}


def test_looking_further_ahead_lists_lots_without_using_up_their_announcement(tenant):
    # given two lots, one inside the tenant's 30-day window and one far outside it
    start = datetime(2027, 3, 1, 9, tzinfo=UTC)
    p = product(tenant, track_lots=True)
    wh = warehouse(tenant)
    with clock.frozen_at(start), tenant.uow() as uow:
        for code, days in (("SOON", 5), ("LATER", 200)):
            inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=2, unit_cost="1", reference="PO",
                                    lot_code=code, expiry=start.date() + timedelta(days=days))
        uow.commit()
    runner = CliRunner()
    # when someone looks a year ahead with the command
    with clock.frozen_at(start):
        listed = runner.invoke(app, ["inventory", "expiring-lots", "--tenant", tenant.slug, "--days", "365"])
    # then neither lot is announced nor marked as announced, and both are listed
    assert _events(tenant, "lot.expiring.v1") == []
    assert _warned_for(tenant) == {"SOON": None, "LATER": None}
    assert _listed(listed) == {"SOON": ("expires 2027-03-06", "not announced yet"),
                               "LATER": ("expires 2027-09-17", "not announced yet")}
    # and the same through the service, even in a unit of work that commits
    with clock.frozen_at(start), tenant.uow() as uow:
        lots = inventory.expiring_lots(uow, 365)
        uow.commit()
    assert [(x.lot.code, x.expired, x.announced) for x in lots] == [("SOON", False, False), ("LATER", False, False)]
    assert _events(tenant, "lot.expiring.v1") == []
    assert _warned_for(tenant) == {"SOON": None, "LATER": None}
    # and announcing with a window of one's own is refused
    with clock.frozen_at(start):
        refused = runner.invoke(app, ["inventory", "expiring-lots", "--tenant", tenant.slug, "--days", "365",
                                      "--announce"])
    assert refused.exit_code == 2
    assert _events(tenant, "lot.expiring.v1") == []
    # when the worker's hourly job runs, it still announces the lot inside the tenant's window
    with clock.frozen_at(start), tenant.uow() as uow:
        announced = inventory.announce_expiring_lots(uow)
        uow.commit()
    assert [(x.lot.code, x.announced_now) for x in announced] == [("SOON", True)]
    assert [e["code"] for e in _events(tenant, "lot.expiring.v1")] == ["SOON"]
    # and the later lot is announced by `--announce` once it comes within the window itself
    with clock.frozen_at(start + timedelta(days=175)):
        now = runner.invoke(app, ["inventory", "expiring-lots", "--tenant", tenant.slug, "--announce"])
    assert now.exit_code == 0, now.output
    assert _listed(now) == {"SOON": ("expired 2027-03-06", "announced"),
                            "LATER": ("expires 2027-09-17", "announced now")}
    assert [e["code"] for e in _events(tenant, "lot.expiring.v1")] == ["SOON", "LATER"]


def test_a_lot_past_its_expiry_is_announced_as_expired(tenant):
    # given lots received before their expiry, and the clock ten days later
    start = datetime(2027, 3, 1, 9, tzinfo=UTC)
    p = product(tenant, track_lots=True)
    wh = warehouse(tenant)
    with clock.frozen_at(start), tenant.uow() as uow:
        for code, days in (("PAST", 3), ("TODAY", 10), ("AHEAD", 20)):
            inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=1, unit_cost="1", reference="PO",
                                    lot_code=code, expiry=start.date() + timedelta(days=days))
        uow.commit()
    later = start + timedelta(days=10)
    # when the lots are announced
    with clock.frozen_at(later), tenant.uow() as uow:
        lots = inventory.announce_expiring_lots(uow)
        uow.commit()
    # then the one whose expiry date is past says so; one expiring today has not expired yet
    assert [(e["code"], e.get("expired")) for e in _events(tenant, "lot.expiring.v1")] == [
        ("PAST", True), ("TODAY", False), ("AHEAD", False)]
    assert [(x.lot.code, x.expired, x.announced_now) for x in lots] == [
        ("PAST", True, True), ("TODAY", False, True), ("AHEAD", False, True)]
    # and the command's listing says it too
    with clock.frozen_at(later):
        listed = CliRunner().invoke(app, ["inventory", "expiring-lots", "--tenant", tenant.slug])
    assert listed.exit_code == 0, listed.output
    assert _listed(listed) == {"PAST": ("expired 2027-03-04", "announced"),
                               "TODAY": ("expires 2027-03-11", "announced"),
                               "AHEAD": ("expires 2027-03-21", "announced")}


def test_a_lot_with_no_stock_left_is_not_announced_and_a_bad_window_is_refused(tenant):
    p = product(tenant, track_lots=True)
    wh = warehouse(tenant)
    with tenant.uow() as uow:
        inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=1, unit_cost="1", reference="PO",
                                lot_code="GONE", expiry=clock.today() + timedelta(days=3))
        uow.commit()
    with tenant.uow() as uow:
        inventory.scrap_stock(uow, warehouse_id=wh, product_id=p, quantity=1, reason="damaged", lot_code="GONE")
        uow.commit()
    with tenant.uow() as uow:
        assert inventory.announce_expiring_lots(uow) == []
        assert inventory.expiring_lots(uow, 365) == []
        with pytest.raises(ValidationFailed):
            inventory.expiring_lots(uow, -1)
    assert _events(tenant, "lot.expiring.v1") == []


def test_nearest_policy_prefers_a_warehouse_in_the_ship_to_country(tenant):
    _set(tenant, allocation_policy="nearest")
    p = product(tenant)
    us = warehouse(tenant, priority=1, country="US")
    de = warehouse(tenant, priority=2, country="DE")
    stock(tenant, us, p, 5)
    stock(tenant, de, p, 5)
    with tenant.uow() as uow:
        [to_germany] = inventory.allocate(uow, [demand(p, 2, ship_to_country="de")])
        [to_canada] = inventory.allocate(uow, [demand(p, 2, ship_to_country="CA")])
        uow.commit()
    assert [r.warehouse_id for r in to_germany.reservations] == [de]
    assert [r.warehouse_id for r in to_canada.reservations] == [us]


def test_nearest_policy_prefers_the_ship_to_region_within_its_country(tenant):
    # given three US warehouses: Ohio first by priority, then Texas, then California
    _set(tenant, allocation_policy="nearest")
    p = product(tenant)
    ohio = warehouse(tenant, priority=1, country="US", region="OH")
    texas = warehouse(tenant, priority=2, country="US", region="TX")
    california = warehouse(tenant, priority=3, country="US", region="CA")
    for wh in (ohio, texas, california):
        stock(tenant, wh, p, 5)
    with tenant.uow() as uow:
        # when lines ship to California, to Texas (written in lower case), to a state with no warehouse,
        # and to the US with no region
        results = inventory.allocate(uow, [demand(p, 1, ship_to_country="US", ship_to_region="CA"),
                                           demand(p, 1, ship_to_country="us", ship_to_region=" tx"),
                                           demand(p, 1, ship_to_country="US", ship_to_region="NY"),
                                           demand(p, 1, ship_to_country="US")])
        # and a line that needs more than its region holds (priority policy within the order: the first
        # that can fill it)
        [big] = inventory.allocate(uow, [demand(p, 6, ship_to_country="US", ship_to_region="CA")])
        uow.commit()
    # then each is served from its own region, else by priority
    assert [[r.warehouse_id for r in res.reservations] for res in results] == [[california], [texas], [ohio],
                                                                                [ohio]]
    assert big.reserved == 4 and big.backordered == 2
    assert [r.warehouse_id for r in big.reservations] == [california]


def _statements_to_allocate(tenant, lines):
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    seen = []

    def count(*_args):
        seen.append(1)

    with tenant.uow() as uow:
        uow.session.connection()  # the transaction is begun before counting
        event.listen(Engine, "before_cursor_execute", count)
        try:
            inventory.allocate(uow, lines)
        finally:
            event.remove(Engine, "before_cursor_execute", count)
        uow.commit()
    return len(seen)


def test_allocation_reads_and_writes_per_table_not_per_line(tenant):
    # given ten products in stock in two warehouses
    products = [product(tenant) for _ in range(10)]
    a, b = warehouse(tenant, priority=1), warehouse(tenant, priority=2)
    for p in products:
        stock(tenant, a, p, 5)
        stock(tenant, b, p, 5)
    # when an order of 2 lines and one of 10 lines are allocated (each its own transaction)
    two = _statements_to_allocate(tenant, [demand(p, 1) for p in products[:2]])
    ten = _statements_to_allocate(tenant, [demand(p, 1) for p in products])
    # then the statement count does not grow with the lines (the per-line
    # stock.reserved.v1 events go to the outbox in one multi-row insert)
    assert ten == two
    assert len(_events(tenant, "stock.reserved.v1")) == 12


def test_one_audit_entry_per_allocation_lists_its_lines(tenant):
    from entrepot.identity.models import AuditEntry

    # given
    p, q = product(tenant), product(tenant)
    w = warehouse(tenant)
    stock(tenant, w, p, 5)
    # when a two-line order is allocated, one line short
    with tenant.uow() as uow:
        inventory.allocate(uow, [demand(p, 2), demand(q, 3)])
        uow.commit()
    # then one entry names both lines with what each got
    with tenant.uow(readonly=True) as uow:
        entries = list(uow.session.scalars(select(AuditEntry).where(AuditEntry.action == "stock.allocate")))
    assert len(entries) == 1
    lines = entries[0].after["lines"]
    assert [(line["product_id"], Decimal(line["reserved"]), Decimal(line["backordered"])) for line in lines] == [
        (str(p), 2, 0), (str(q), 0, 3)]


def test_reallocating_a_line_updates_its_demand_and_the_session_sees_fresh_rows(tenant):
    from entrepot.inventory.models import StockBalance, StockDemand

    # given a line allocated once, its demand and balance loaded in the session
    p = product(tenant)
    w = warehouse(tenant)
    stock(tenant, w, p, 10)
    line = demand(p, 2)
    with tenant.uow() as uow:
        inventory.allocate(uow, [line])
        sd = uow.session.scalar(select(StockDemand).where(StockDemand.demand_id == line.demand_id))
        balance = uow.session.scalar(select(StockBalance).where(StockBalance.product_id == p,
                                                                StockBalance.location_kind == "stock"))
        assert balance.reserved == 2
        # when the line is raised to 6 in the same transaction
        line.quantity = Decimal(6)
        [result] = inventory.allocate(uow, [line])
        # then the objects already loaded show the new figures, and they commit
        assert result.reserved == 6 and sd.requested == 6 and balance.reserved == 6
        uow.commit()
    assert levels(tenant, p)[w].available == 4


def test_an_unknown_product_is_refused_and_a_known_one_without_stock_is_backordered(tenant):
    from entrepot.inventory.models import StockDemand
    from entrepot.kernel.errors import NotFound

    # given a product in stock, one never stocked, and an id that is no product
    stocked, never = product(tenant), product(tenant)
    w = warehouse(tenant)
    stock(tenant, w, stocked, 5)
    # when an order names the unknown id, then nothing of it is kept
    with tenant.uow() as uow:
        with pytest.raises(NotFound):
            inventory.allocate(uow, [demand(stocked, 1), demand(uuid.uuid4(), 1)])
        assert uow.session.scalar(select(StockDemand.id)) is None
        # and an order of the known products reserves one line and backorders the other
        first, second = inventory.allocate(uow, [demand(stocked, 2), demand(never, 3)])
        uow.commit()
    assert (first.reserved, first.backordered) == (2, 0)
    assert (second.reserved, second.backordered) == (0, 3)
    assert levels(tenant, stocked)[w].reserved == 2


def test_an_inactive_warehouse_is_never_allocated_from(tenant):
    p = product(tenant)
    closed, open_ = warehouse(tenant, priority=1), warehouse(tenant, priority=2)
    stock(tenant, closed, p, 5)
    stock(tenant, open_, p, 5)
    with tenant.uow() as uow:
        inventory.update_warehouse(uow, inventory.get_warehouse(uow, closed), {"active": False})
        uow.commit()
    with tenant.uow() as uow:
        [result] = inventory.allocate(uow, [demand(p, 7)])
        uow.commit()
    assert [(r.warehouse_id, r.quantity) for r in result.reservations] == [(open_, 5)]
    assert result.backordered == 2


def test_stock_levels_include_the_transactions_own_changes(tenant):
    p = product(tenant)
    w = warehouse(tenant)
    stock(tenant, w, p, 5)
    with tenant.uow() as uow:
        inventory.allocate(uow, [demand(p, 2)])
        inventory.adjust_stock(uow, warehouse_id=w, product_id=p, quantity=3, reason="found", unit_cost="1.00")
        [level] = inventory.stock_levels(uow, p)
        assert (level.on_hand, level.reserved, level.available) == (8, 2, 6)


def test_demands_and_reservations_are_each_one_btree_keyed_by_their_line(tenant):
    from sqlalchemy import text

    from entrepot.db.engine import get_engine

    # given a line allocated (a demand row and a reservation row written)
    p = product(tenant)
    w = warehouse(tenant)
    stock(tenant, w, p, 5)
    line = demand(p, 2)
    with tenant.uow() as uow:
        inventory.allocate(uow, [line])
        uow.commit()
    # when the tables' keys and indexes are read from the database
    with get_engine(tenant.url).connect() as conn:
        if conn.dialect.name == "sqlite":
            sql = dict(conn.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name IN "
                                         "('inventory_stock_demands', 'inventory_reservations')")).all())
            indexes = {name: [row[1] for row in conn.execute(text(f"PRAGMA index_list({name})"))
                              if row[3] != "pk"] for name in sql}
        else:
            sql = {}
            indexes = {name: [row[0] for row in conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE tablename = :t AND indexname NOT LIKE 'pk_%'"),
                {"t": name})] for name in ("inventory_stock_demands", "inventory_reservations")}
    # then each table is the b-tree of its key (on SQLite WITHOUT ROWID: no rowid table beside it), and the
    # only other index is the partial one of open backorders, which a line allocated in full does not enter
    assert all("WITHOUT ROWID" in s for s in sql.values()), sql
    assert indexes == {"inventory_stock_demands": ["ix_inventory_stock_demands_tenant_id_product_id_status"],
                       "inventory_reservations": []}
    # and the rows are found by their line
    reserved = inventory.reserved_quantity
    with tenant.uow(readonly=True) as uow:
        assert reserved(uow, "sales_order_line", [line.demand_id]) == {line.demand_id: 2}


def test_stock_levels_is_one_prepared_statement(tenant):
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    # given a product in stock
    p = product(tenant)
    w = warehouse(tenant)
    stock(tenant, w, p, 5)
    sent: list[str] = []
    through_sqlalchemy: list[str] = []

    def before(conn, cursor, statement, *_):
        sent.append(statement)

    def after(conn, cursor, statement, *_):
        through_sqlalchemy.append(statement)

    # when its levels are read in a transaction already begun
    with tenant.uow(readonly=True) as uow:
        uow.connection()
        event.listen(Engine, "before_cursor_execute", before)
        event.listen(Engine, "after_cursor_execute", after)
        try:
            [level] = inventory.stock_levels(uow, p)
        finally:
            event.remove(Engine, "before_cursor_execute", before)
            event.remove(Engine, "after_cursor_execute", after)
    # then one statement went straight to the driver's cursor (SQLAlchemy's execution, which would
    # report it after too, cost more than the query), with the figures exact
    assert len(sent) == 1 and through_sqlalchemy == []
    assert (level.warehouse_id, level.on_hand, level.reserved, level.available) == (w, 5, 0, 5)


def test_replenishment_reads_the_same_statements_for_one_rule_or_many(tenant):
    from tests.integration.test_statement_budget import counting

    # given a warehouse with one product under its reorder point
    wh = warehouse(tenant, "RPL")
    products = [product(tenant) for _ in range(12)]
    for p in products:
        stock(tenant, wh, p, 2)

    def suggestions_after_rules_for(count: int) -> tuple[int, int]:
        with tenant.uow() as uow:
            for p in products[:count]:
                inventory.set_reorder_rule(uow, product_id=p, warehouse_id=wh, reorder_point=5, order_up_to=20)
            uow.commit()
        with tenant.uow(readonly=True) as uow, counting(tenant.url) as statements:
            found = inventory.replenishment_suggestions(uow)
            sent = len(statements)
        assert {s.projected for s in found} == {2}
        return len(found), sent

    # then the suggestions for 12 rules take as many statements as for one (no query per rule)
    one, many = suggestions_after_rules_for(1), suggestions_after_rules_for(12)
    assert (one[0], many[0]) == (1, 12)
    assert many[1] == one[1], (one, many)
