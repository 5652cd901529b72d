"""FIFO valuation (tenant setting `valuation_method` = `fifo`): outflows cost the oldest layers first,
exactly, and the layers always add up to the warehouse's valuation and the inventory account."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from entrepot.identity.services.tenant_settings import get_tenant_settings, update_tenant_settings
from entrepot.inventory import service as inventory
from entrepot.inventory.models import CostLayer, ItemCost, ValuationCorrection
from entrepot.kernel import clock
from entrepot.kernel.errors import Conflict
from entrepot.ledger.services.reports import account_balances
from tests.conftest import make_tenant
from tests.integration.inventory.helpers import demand, product, stock, warehouse

D = Decimal


@pytest.fixture
def fifo_tenant(tenant):
    with tenant.uow() as uow:
        update_tenant_settings(uow, {"valuation_method": "fifo"})
        uow.commit()
    return tenant


def _receive(tenant, wh, p, quantity, unit_cost, days_ago=0):
    with tenant.uow() as uow:
        inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=quantity, unit_cost=unit_cost,
                                reference="PO", on=clock.today() - timedelta(days=days_ago) if days_ago else None)
        uow.commit()


def _ship(tenant, p, quantity):
    line = demand(p, quantity)
    with tenant.uow() as uow:
        inventory.allocate(uow, [line])
        result = inventory.issue_reserved(uow, demand_type="sales_order_line", demand_id=line.demand_id,
                                          quantity=D(quantity), reference="SHP")
        uow.commit()
    return result.cost


def _books(tenant):
    """(valuation report total, inventory account, COGS account), and the layers add up to each ItemCost."""
    with tenant.uow(readonly=True) as uow:
        for cost in uow.session.scalars(select(ItemCost)):
            held_qty, held_value, count = uow.session.execute(
                select(func.sum(CostLayer.quantity), func.sum(CostLayer.value), func.count())
                .where(CostLayer.product_id == cost.product_id, CostLayer.warehouse_id == cost.warehouse_id)).one()
            if cost.quantity > 0:
                assert (held_qty, held_value) == (cost.quantity, cost.value)
            else:
                assert count == 0
        balances = {a.role: a.balance for a in account_balances(uow) if a.role in ("inventory", "cogs")}
        return inventory.valuation(uow).total_value, balances.get("inventory", D(0)), balances.get("cogs", D(0))


def test_outflows_take_the_oldest_layer_first(fifo_tenant):
    # given 10 at 1.00, then 10 at 2.00
    p, wh = product(fifo_tenant), warehouse(fifo_tenant)
    _receive(fifo_tenant, wh, p, 10, "1.00", days_ago=3)
    _receive(fifo_tenant, wh, p, 10, "2.00")
    # when 15 are shipped
    cost = _ship(fifo_tenant, p, 15)
    # then the first 10 cost 1.00 and the next 5 cost 2.00
    assert cost == D("20.00")
    assert _books(fifo_tenant) == (D("10.00"), D("10.00"), D("20.00"))
    assert _ship(fifo_tenant, p, 5) == D("10.00")


def test_a_split_layer_leaves_no_rounding_residue(fifo_tenant):
    # given 3 units worth 1.00 (0.3333… each)
    p, wh = product(fifo_tenant), warehouse(fifo_tenant)
    stock(fifo_tenant, wh, p, 3, unit_cost="0.3333")
    with fifo_tenant.uow(readonly=True) as uow:
        [layer] = uow.session.scalars(select(CostLayer)).all()
    received = layer.value
    # when they leave one at a time
    costs = [_ship(fifo_tenant, p, 1) for _ in range(3)]
    # then they add up to exactly what came in
    assert sum(costs, D(0)) == received
    assert _books(fifo_tenant)[:2] == (D(0), D(0))


def test_a_backdated_receipt_becomes_the_oldest_layer_and_recosts_later_shipments(fifo_tenant):
    # given 10 at 1.00 received 5 days ago, and 6 shipped since at 1.00
    p, wh = product(fifo_tenant), warehouse(fifo_tenant)
    _receive(fifo_tenant, wh, p, 10, "1.00", days_ago=5)
    assert _ship(fifo_tenant, p, 6) == D("6.00")
    # when 10 at 3.00 are entered as received 10 days ago (before both)
    _receive(fifo_tenant, wh, p, 10, "3.00", days_ago=10)
    # then the 6 shipped came from that older layer: COGS 18.00, one correction of 12.00
    value, inventory_account, cogs = _books(fifo_tenant)
    assert cogs == D("18.00")
    assert value == inventory_account == D("22.00")  # 4 at 3.00 and 10 at 1.00
    with fifo_tenant.uow(readonly=True) as uow:
        [correction] = uow.session.scalars(select(ValuationCorrection)).all()
    assert (correction.category, correction.amount) == ("cogs", D("12.00"))
    # and the next shipment finishes the 3.00 layer before the 1.00 one
    assert _ship(fifo_tenant, p, 5) == D("13.00")


def test_a_backdated_receipt_with_nothing_shipped_since_still_comes_first(fifo_tenant):
    p, wh = product(fifo_tenant), warehouse(fifo_tenant)
    _receive(fifo_tenant, wh, p, 5, "1.00", days_ago=2)
    _receive(fifo_tenant, wh, p, 5, "4.00", days_ago=9)
    assert _ship(fifo_tenant, p, 5) == D("20.00")
    assert _books(fifo_tenant) == (D("5.00"), D("5.00"), D("20.00"))


def test_negative_stock_is_costed_at_the_last_layer_and_covered_by_the_next_inflow(fifo_tenant):
    with fifo_tenant.uow() as uow:
        update_tenant_settings(uow, {"allow_negative_stock": True})
        uow.commit()
    p, wh = product(fifo_tenant), warehouse(fifo_tenant)
    _receive(fifo_tenant, wh, p, 2, "1.00")
    # when 5 leave: 2 from the layer, 3 more at its 1.00
    with fifo_tenant.uow() as uow:
        move = inventory.adjust_stock(uow, warehouse_id=wh, product_id=p, quantity=-5, reason="damage")
        uow.commit()
    assert move.value == D("5.00")
    assert _books(fifo_tenant)[:2] == (D("-3.00"), D("-3.00"))
    # then 5 received at 2.00 cover the 3 short: a layer of 2 worth 7.00 (10.00 less the 3.00 already costed)
    _receive(fifo_tenant, wh, p, 5, "2.00")
    with fifo_tenant.uow(readonly=True) as uow:
        [layer] = uow.session.scalars(select(CostLayer)).all()
    assert (layer.quantity, layer.value) == (D(2), D("7.00"))
    assert _ship(fifo_tenant, p, 2) == D("7.00")
    assert _books(fifo_tenant)[:2] == (D(0), D(0))


def test_a_transfer_carries_its_layers_value_to_the_other_warehouse(fifo_tenant):
    p, a, b = product(fifo_tenant), warehouse(fifo_tenant), warehouse(fifo_tenant)
    _receive(fifo_tenant, a, p, 5, "1.00", days_ago=2)
    _receive(fifo_tenant, a, p, 5, "2.00")
    # when 7 go from A to B
    with fifo_tenant.uow() as uow:
        transfer = inventory.create_transfer(uow, product_id=p, from_warehouse_id=a, to_warehouse_id=b, quantity=7)
        inventory.receive_transfer(uow, transfer.id)
        uow.commit()
    # then B holds them at what they cost in A (5 × 1.00 + 2 × 2.00), and A keeps 3 at 2.00
    with fifo_tenant.uow(readonly=True) as uow:
        costs = {c.warehouse_id: c.value for c in uow.session.scalars(select(ItemCost))}
    assert costs == {a: D("6.00"), b: D("9.00")}
    assert _books(fifo_tenant)[:2] == (D("15.00"), D("15.00"))


def test_the_method_cannot_change_once_stock_has_moved(tenant):
    p, wh = product(tenant), warehouse(tenant)
    stock(tenant, wh, p, 1)
    with tenant.uow() as uow, pytest.raises(Conflict, match="valuation_method"):
        update_tenant_settings(uow, {"valuation_method": "fifo"})
    with tenant.uow() as uow:  # setting it to what it already is changes nothing, so it is allowed
        assert update_tenant_settings(uow, {"valuation_method": "moving_average"})["valuation_method"] == \
            "moving_average"


def test_a_method_change_waits_for_a_stock_move_in_flight_then_refuses(pg_url):
    # given a tenant with no stock moves yet, and a receipt in flight (not yet committed)
    tenant = make_tenant(pg_url)
    p, wh = product(tenant), warehouse(tenant)
    receipt = tenant.uow()
    receipt.__enter__()
    inventory.receive_stock(receipt, product_id=p, warehouse_id=wh, quantity=5, unit_cost="1.00", reference="PO")
    outcome: list[object] = []

    def change_method() -> None:
        with tenant.uow() as uow:
            try:
                update_tenant_settings(uow, {"valuation_method": "fifo"})
                uow.commit()
                outcome.append("changed")
            except Conflict as refused:
                outcome.append(refused)

    # when the method is changed meanwhile
    changer = threading.Thread(target=change_method)
    changer.start()
    changer.join(timeout=1.0)
    waited = changer.is_alive()
    receipt.commit()
    receipt.__exit__(None, None, None)
    changer.join(timeout=10)
    # then the change waited for the receipt, and then saw it: refused, the method unchanged
    assert waited
    assert len(outcome) == 1 and isinstance(outcome[0], Conflict)
    with tenant.uow(readonly=True) as uow:
        assert get_tenant_settings(uow)["valuation_method"] == "moving_average"


def test_a_refused_method_change_does_not_queue_behind_a_stock_move_in_flight(pg_url):
    # given a tenant that has moved stock, and a second receipt in flight (not yet committed)
    tenant = make_tenant(pg_url)
    p, wh = product(tenant), warehouse(tenant)
    with tenant.uow() as uow:
        inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=5, unit_cost="1.00", reference="PO1")
        uow.commit()
    receipt = tenant.uow()
    receipt.__enter__()
    try:
        inventory.receive_stock(receipt, product_id=p, warehouse_id=wh, quantity=5, unit_cost="1.00",
                                reference="PO2")
        outcome: list[object] = []

        def change_method() -> None:
            with tenant.uow() as uow:
                try:
                    update_tenant_settings(uow, {"valuation_method": "fifo"})
                    outcome.append("changed")
                except Conflict as refused:
                    outcome.append(refused)

        # when the method is changed meanwhile
        changer = threading.Thread(target=change_method)
        changer.start()
        changer.join(timeout=5.0)
        # then it is refused at once, without waiting for the receipt (which would have made every new
        # stock change of the tenant wait behind it too)
        assert not changer.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], Conflict)
        receipt.commit()
    finally:
        receipt.__exit__(None, None, None)


def test_inventory_check_catches_layers_that_no_longer_add_up(fifo_tenant):
    # given two layers that add up to the warehouse's valuation
    p, wh = product(fifo_tenant), warehouse(fifo_tenant)
    _receive(fifo_tenant, wh, p, 10, "1.00", days_ago=2)
    _receive(fifo_tenant, wh, p, 10, "2.00")
    with fifo_tenant.uow(readonly=True) as uow:
        assert inventory.check_balances(uow) == []
    # when one layer's value is corrupted behind the ledger's back
    with fifo_tenant.uow() as uow:
        layer = uow.session.scalars(select(CostLayer).order_by(CostLayer.effective_date)).first()
        layer.value += D("0.01")
        uow.commit()
    # then the check names it: the valuation says 30.00, the layers 30.01
    with fifo_tenant.uow(readonly=True) as uow:
        [found] = inventory.check_balances(uow)
    assert (found.kind, found.product_id, found.expected, found.actual) == ("layers_value", p, D("30.00"),
                                                                           D("30.01"))


def test_inventory_check_catches_stock_and_layers_with_no_valuation_row(fifo_tenant):
    # given a warehouse holding 10 units in one layer
    p, wh = product(fifo_tenant), warehouse(fifo_tenant)
    _receive(fifo_tenant, wh, p, 10, "2.00")
    # when its valuation row is lost behind the ledger's back
    with fifo_tenant.uow() as uow:
        uow.session.delete(uow.session.scalar(select(ItemCost).where(ItemCost.product_id == p)))
        uow.commit()
    # then the check names the stock and the layers that nothing values any more
    with fifo_tenant.uow(readonly=True) as uow:
        found = {(d.kind, d.product_id, d.expected, d.actual) for d in inventory.check_balances(uow)}
    assert found == {("valuation_quantity", p, D(10), D(0)), ("layers_quantity", p, D(0), D(10)),
                     ("layers_value", p, D(0), D("20.00"))}
