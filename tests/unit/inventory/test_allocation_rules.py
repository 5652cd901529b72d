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


def _reference_replay(rows, standard_cost, currency):
    """The replay as first written (one `_cost_out` per outflow, the last average kept eagerly, the
    standard cost standing in for an average of zero as `core.take_value` has it)."""
    from entrepot.kernel.money import quantize_storage

    quantity = value = Decimal(0)
    last_unit = Decimal(0)
    replayed = {"cogs": Decimal(0), "adjustment": Decimal(0), "opening": Decimal(0)}
    posted = {"cogs": Decimal(0), "adjustment": Decimal(0), "opening": Decimal(0)}
    for is_in, is_out, kind, qty, stored in rows:
        if is_in == is_out:
            continue
        if is_in:
            quantity += qty
            value += stored
            if quantity > 0:
                last_unit = quantize_storage(value / quantity)
            continue
        if kind == "transfer":
            out = stored
        else:
            out = _cost_out(quantity, value, qty, last_unit or standard_cost, currency)
            replayed[kind] += out
            posted[kind] += stored
        if quantity > 0:
            last_unit = quantize_storage(value / quantity)
        quantity -= qty
        value -= out
    return replayed, posted, value, last_unit


def test_fast_replay_is_exactly_the_reference_replay():
    # given random histories, going below zero at times, with awkward quantities and values
    import random

    from entrepot.inventory.services.valuation import _replay

    rng = random.Random(11)
    for _ in range(200):
        rows = []
        for _ in range(rng.randint(1, 60)):
            is_in = rng.random() < 0.45
            kind = rng.choice(["cogs", "cogs", "adjustment", "opening", "transfer"])
            qty = Decimal(rng.randint(1, 70000)).scaleb(-4) if rng.random() < 0.3 else Decimal(rng.randint(1, 9))
            stored = Decimal(rng.randint(0, 900000)).scaleb(-2)
            rows.append((int(is_in), int(not is_in) if rng.random() < 0.95 else int(is_in), kind, qty, stored))
        # when
        fast = _replay(rows, Decimal("1.2345"), "USD", scaled=False)
        # then: the same amounts to the last digit
        assert fast == _reference_replay(rows, Decimal("1.2345"), "USD")


def test_fast_replay_reads_scaled_integers_as_stored_on_sqlite():
    from entrepot.inventory.services.valuation import _replay

    rows = [(1, 0, "adjustment", 30000, 100000), (0, 1, "cogs", 10000, 0)]  # 3 units in for 10.00, 1 out
    replayed, _, value, next_unit = _replay(rows, Decimal(0), "USD", scaled=True)
    assert replayed["cogs"] == Decimal("3.33") and value == Decimal("6.67")
    assert next_unit == Decimal("3.3333")
