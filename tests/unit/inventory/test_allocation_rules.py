"""Allocation and costing rules, without a database."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

from entrepot.inventory.models import Lot, StockBalance
from entrepot.inventory.services.allocation import _fefo, _plan
from entrepot.inventory.services.valuation import _cost_out

A, B = uuid.uuid4(), uuid.uuid4()


def _bal(warehouse, on_hand, reserved=0, lot=None):
    return StockBalance(id=uuid.uuid4(), warehouse_id=warehouse, on_hand=Decimal(on_hand),
                        reserved=Decimal(reserved), lot_id=lot.id if lot else None)


def test_priority_prefers_the_first_warehouse_that_fills_the_line():
    stock = {A: [_bal(A, 3)], B: [_bal(B, 9)]}
    picks = _plan(Decimal(5), [A, B], stock, "priority")
    assert [(b.warehouse_id, q) for b, q in picks] == [(B, 5)]


def test_priority_takes_the_fullest_warehouse_when_none_can_fill():
    stock = {A: [_bal(A, 3)], B: [_bal(B, 4, reserved=2)]}
    picks = _plan(Decimal(10), [A, B], stock, "priority")
    assert [(b.warehouse_id, q) for b, q in picks] == [(A, 3)]


def test_split_fills_in_order_and_skips_reserved_stock():
    stock = {A: [_bal(A, 3, reserved=3)], B: [_bal(B, 4, reserved=1)]}
    picks = _plan(Decimal(10), [A, B], stock, "split")
    assert [(b.warehouse_id, q) for b, q in picks] == [(B, 3)]


def test_fefo_orders_by_expiry_and_drops_expired_lots():
    today = date(2026, 1, 10)
    late = Lot(id=uuid.uuid4(), code="LATE", expiry_date=today + timedelta(days=30))
    soon = Lot(id=uuid.uuid4(), code="SOON", expiry_date=today)
    gone = Lot(id=uuid.uuid4(), code="GONE", expiry_date=today - timedelta(days=1))
    lots = {lot.id: lot for lot in (late, soon, gone)}
    balances = [_bal(A, 1, lot=late), _bal(A, 1, lot=gone), _bal(A, 1, lot=soon)]
    assert [lots[b.lot_id].code for b in _fefo(balances, lots, today)] == ["SOON", "LATE"]


def test_cost_out_takes_the_exact_remaining_value_with_the_last_units():
    # 3 units worth 10.00: one leaves at 3.33, the last two take the 6.67 that is left
    assert _cost_out(Decimal(3), Decimal("10.00"), Decimal(1), Decimal(0), "USD") == Decimal("3.33")
    assert _cost_out(Decimal(2), Decimal("6.67"), Decimal(2), Decimal(0), "USD") == Decimal("6.67")
    # below zero (allowed by the tenant) the last average applies
    assert _cost_out(Decimal(0), Decimal(0), Decimal(2), Decimal("1.50"), "USD") == Decimal("3.00")
