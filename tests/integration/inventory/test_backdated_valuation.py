"""A back-dated receipt re-costs the later shipments exactly, with one correction entry."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from entrepot.catalog import service as catalog
from entrepot.inventory import service as inventory
from entrepot.inventory.models import StockMove, ValuationCorrection
from entrepot.inventory.services import valuation
from entrepot.kernel import clock
from entrepot.kernel.errors import DomainError
from entrepot.ledger.services.reports import account_balances
from tests.conftest import make_tenant
from tests.integration.inventory.helpers import demand, product, stock, warehouse


def _ship(tenant, p, quantity, on=None):
    line = demand(p, quantity)
    with tenant.uow() as uow:
        inventory.allocate(uow, [line])
        result = inventory.issue_reserved(uow, demand_type="sales_order_line", demand_id=line.demand_id,
                                          quantity=Decimal(quantity), reference="SHP", on=on)
        uow.commit()
    return result


def _accounts(tenant):
    with tenant.uow(readonly=True) as uow:
        return {a.role: a.balance for a in account_balances(uow) if a.role in ("inventory", "cogs")}


def test_backdated_receipt_corrects_cogs_of_later_shipments(tenant):
    # given 10 units at 1.00 received 5 days ago, and 6 shipped since at that cost
    today = clock.today()
    p = product(tenant)
    wh = warehouse(tenant)
    stock(tenant, wh, p, 10, unit_cost="1.00", on=today - timedelta(days=5))
    assert _ship(tenant, p, 6).cost == Decimal("6.00")
    # when a receipt of 10 at 3.00 is entered, dated 10 days ago (before both)
    with tenant.uow() as uow:
        inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=10, unit_cost="3.00",
                                reference="PO-late", on=today - timedelta(days=10))
        uow.commit()
    # then the shipment is re-costed at the true average 2.00: COGS 12.00, not 6.00
    balances = _accounts(tenant)
    assert balances["cogs"] == Decimal("12.00")
    with tenant.uow(readonly=True) as uow:
        report = inventory.valuation(uow)
        [correction] = uow.session.scalars(select(ValuationCorrection)).all()
    # 14 units left at 2.00
    assert report.total_value == Decimal("28.00") == balances["inventory"]
    assert correction.category == "cogs" and correction.amount == Decimal("6.00")
    # and later shipments leave at the corrected average
    assert _ship(tenant, p, 4).cost == Decimal("8.00")


def test_a_receipt_dated_after_every_outflow_needs_no_correction(tenant):
    today = clock.today()
    p = product(tenant)
    wh = warehouse(tenant)
    stock(tenant, wh, p, 4, unit_cost="1.00", on=today - timedelta(days=5))
    _ship(tenant, p, 1, on=today - timedelta(days=3))
    with tenant.uow() as uow:
        inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=1, unit_cost="9",
                                reference="PO", on=today - timedelta(days=1))
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        assert uow.session.scalars(select(ValuationCorrection)).all() == []


def test_a_move_dated_in_a_closed_period_is_refused_and_nothing_written(tenant):
    from entrepot.ledger.services.periods import close_period, ensure_period

    # given last month closed
    today = clock.today()
    old = today.replace(day=1) - timedelta(days=1)
    p = product(tenant)
    wh = warehouse(tenant)
    with tenant.uow() as uow:
        close_period(uow, ensure_period(uow, old))
        uow.commit()
    # when a free adjustment (worth nothing, so no ledger line) is dated in it
    with tenant.uow() as uow, pytest.raises(DomainError):
        inventory.adjust_stock(uow, warehouse_id=wh, product_id=p, quantity=1, reason="found", unit_cost="0",
                               on=old)
    # then nothing moved
    with tenant.uow(readonly=True) as uow:
        assert inventory.stock_levels(uow, p) == []


@pytest.mark.parametrize("method,after_replay", [("moving_average", "3.57"), ("fifo", "10.00")])
def test_below_zero_after_a_backdated_receipt_the_next_loss_takes_the_replayed_cost(db_url, method, after_replay):
    # given a tenant that allows negative stock: 5 at 1.00 three days ago, then 8 lost today (3 beyond the stock)
    tenant = make_tenant(db_url, allow_negative_stock=True, valuation_method=method)
    p, wh = product(tenant), warehouse(tenant)
    stock(tenant, wh, p, 5, unit_cost="1.00", on=clock.today() - timedelta(days=3))
    _adjust(tenant, wh, p, -8)
    # when 2 at 10.00 are received dated yesterday (before the loss: the replay re-costs it)
    with tenant.uow() as uow:
        inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=2, unit_cost="10.00",
                                reference="PO-late", on=clock.today() - timedelta(days=1))
        uow.commit()
    # then one more lost, still below zero, is costed as the replayed history has it (the moving average of
    # 5 at 1.00 and 2 at 10.00; under FIFO the last layer's 10.00), not at the 1.00 posted before the receipt
    assert _adjust(tenant, wh, p, -1).value == Decimal(after_replay)
    # and a full replay finds nothing left to correct
    with tenant.uow() as uow:
        trigger = uow.session.scalars(select(StockMove).limit(1)).first()
        deltas = valuation.revalue(uow, catalog.get_product(uow, p), wh, trigger)
        uow.rollback()
    assert not any(deltas.values()), deltas


def _adjust(tenant, wh, p, quantity, on=None):
    with tenant.uow() as uow:
        move = inventory.adjust_stock(uow, warehouse_id=wh, product_id=p, quantity=quantity, reason="damage",
                                      on=on)
        uow.commit()
    return move


@pytest.mark.parametrize("outflow", ["loss", "shipment"])
def test_a_backdated_outflow_leaves_at_the_average_of_its_date_not_of_later_receipts(tenant, outflow):
    # given 10 at 1.00 received 10 days ago and 10 at 3.00 received 2 days ago (nothing left since)
    today = clock.today()
    p = product(tenant)
    wh = warehouse(tenant)
    stock(tenant, wh, p, 10, unit_cost="1.00", on=today - timedelta(days=10))
    stock(tenant, wh, p, 10, unit_cost="3.00", on=today - timedelta(days=2))
    # when 5 leave dated 5 days ago (before the second receipt)
    if outflow == "shipment":
        _ship(tenant, p, 5, on=today - timedelta(days=5))
    else:
        _adjust(tenant, wh, p, -5, on=today - timedelta(days=5))
    # then they cost the average of that day, 1.00 (5.00), not today's 2.00: 15 left worth 35.00
    balances = _accounts(tenant)
    with tenant.uow(readonly=True) as uow:
        assert inventory.valuation(uow).total_value == Decimal("35.00") == balances["inventory"]
        assert uow.session.scalar(select(ValuationCorrection.amount)) == Decimal("-5.00")
    if outflow == "shipment":
        assert balances["cogs"] == Decimal("5.00")


@pytest.mark.parametrize("method,equity", [("moving_average", "0.00"), ("fifo", "5.00")])
def test_the_correction_of_an_opening_stock_loss_goes_to_opening_balance_equity(db_url, method, equity):
    # given 10 brought onto the books at 1.00, 5 of them written off as opening stock, 5 shipped today
    today = clock.today()
    tenant = make_tenant(db_url, valuation_method=method)
    p, wh = product(tenant), warehouse(tenant)
    with tenant.uow() as uow:
        inventory.adjust_stock(uow, warehouse_id=wh, product_id=p, quantity=10, reason="opening_balance",
                               unit_cost="1.00", on=today - timedelta(days=10))
        inventory.adjust_stock(uow, warehouse_id=wh, product_id=p, quantity=-5, reason="opening_balance",
                               on=today - timedelta(days=5))
        uow.commit()
    _ship(tenant, p, 5)
    # when 10 at 3.00 are received dated before everything (the write-off should have left at 2.00, under
    # FIFO at 3.00: 10.00 or 15.00, not 5.00)
    with tenant.uow() as uow:
        inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=10, unit_cost="3.00",
                                reference="PO-late", on=today - timedelta(days=12))
        uow.commit()
    # then the write-off's correction is posted against opening balance equity, not the period's adjustments
    with tenant.uow(readonly=True) as uow:
        balances = {a.role: a.balance for a in account_balances(uow)}
        report = inventory.valuation(uow)
    assert balances.get("inventory_adjustment", Decimal(0)) == 0
    assert balances["opening_balance_equity"] == Decimal(equity)  # 10.00 in, 10.00 (15.00) out
    assert report.total_value == balances["inventory"]
