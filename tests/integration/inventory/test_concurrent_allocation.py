"""32 concurrent transactions compete for 10 units across 2 warehouses: no oversell, no deadlock.

Each thread has its own unit of work (its own connection and transaction), as
concurrent API requests would. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import select, text

from entrepot.identity.services.tenant_settings import update_tenant_settings
from entrepot.inventory import service as inventory
from entrepot.inventory.models import StockBalance
from tests.conftest import make_tenant
from tests.integration.inventory.helpers import demand, levels, product, stock, warehouse

WORKERS = 32


@pytest.mark.parametrize("quantity", [Decimal(1), Decimal(2)])
def test_concurrent_allocations_never_oversell_nor_deadlock(tenant, quantity):
    # given 10 units: 6 in one warehouse, 4 in another
    p = product(tenant)
    a, b = warehouse(tenant, priority=1), warehouse(tenant, priority=2)
    stock(tenant, a, p, 6)
    stock(tenant, b, p, 4)
    start = threading.Barrier(WORKERS)
    results: dict[uuid.UUID, inventory.AllocationResult] = {}
    errors: list[BaseException] = []

    def order() -> None:
        line = demand(p, quantity)
        try:
            start.wait(timeout=30)
            with tenant.uow() as uow:
                [result] = inventory.allocate(uow, [line])
                uow.commit()
            results[line.demand_id] = result
        except BaseException as exc:
            errors.append(exc)

    # when 32 transactions allocate at once
    threads = [threading.Thread(target=order) for _ in range(WORKERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    # then no error (deadlock, serialisation failure) reached a caller
    assert errors == []
    assert len(results) == WORKERS
    # every transaction got its units or a backorder for the rest
    for r in results.values():
        assert r.reserved + r.backordered == quantity
    # exactly the 10 units are reserved, none twice
    assert sum(r.reserved for r in results.values()) == 10
    level = levels(tenant, p)
    assert level[a].reserved + level[b].reserved == 10
    with tenant.uow(readonly=True) as uow:
        balances = list(uow.session.scalars(select(StockBalance).where(StockBalance.product_id == p)))
        assert all(bal.on_hand - bal.reserved >= 0 for bal in balances)
        assert inventory.check_balances(uow) == []
        reserved = inventory.reserved_quantity(uow, "sales_order_line", list(results))
    assert sum(reserved.values()) == 10


def test_orders_naming_products_in_opposite_orders_do_not_deadlock(tenant):
    # given two products, stock for 5 orders of each
    p1, p2 = product(tenant), product(tenant)
    wh = warehouse(tenant)
    stock(tenant, wh, p1, 5)
    stock(tenant, wh, p2, 5)
    start = threading.Barrier(16)
    errors: list[BaseException] = []
    reserved: list[Decimal] = []

    def order(i: int) -> None:
        lines = [demand(p1, 1), demand(p2, 1)]
        if i % 2:
            lines.reverse()
        try:
            start.wait(timeout=30)
            with tenant.uow() as uow:
                results = inventory.allocate(uow, lines)
                uow.commit()
            reserved.extend(r.reserved for r in results)
        except BaseException as exc:
            errors.append(exc)

    # when 16 orders with lines in opposite orders allocate at once
    threads = [threading.Thread(target=order, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    # then
    assert errors == []
    assert sum(reserved) == 10
    assert levels(tenant, p1)[wh].available == 0 and levels(tenant, p2)[wh].available == 0


def test_a_settings_change_committed_mid_transaction_waits_for_the_next_action(pg_url):
    # given a tenant that forbids negative stock, and a transaction that has already moved stock once
    tenant = make_tenant(pg_url)
    p, q, wh = product(tenant), product(tenant), warehouse(tenant)
    with tenant.uow() as uow:
        inventory.adjust_stock(uow, warehouse_id=wh, product_id=p, quantity=5, reason="initial", unit_cost="1.00")
        # when another session allows negative stock and commits meanwhile
        with tenant.uow() as other:
            update_tenant_settings(other, {"allow_negative_stock": True})
            other.commit()
        # then a second stock change in the same transaction still runs by the rules it started with
        with pytest.raises(inventory.InsufficientStock):
            inventory.adjust_stock(uow, warehouse_id=wh, product_id=q, quantity=-1, reason="damaged")
    # and the next action runs by the new ones
    stock(tenant, wh, q, -1)
    assert levels(tenant, q)[wh].on_hand == Decimal(-1)


def test_after_a_savepoint_rolls_back_the_next_stock_change_takes_its_locks_again(pg_url):
    # given a transaction whose first stock change ran in a savepoint of the caller's that rolled back
    # (PostgreSQL released the locks taken inside it)
    tenant = make_tenant(pg_url)
    p, wh = product(tenant), warehouse(tenant)
    held = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted")
    with tenant.uow() as uow:
        savepoint = uow.session.begin_nested()
        inventory.adjust_stock(uow, warehouse_id=wh, product_id=p, quantity=5, reason="initial", unit_cost="1.00")
        assert uow.session.scalar(held) == 2  # the tenant's valuation lock and the product's
        savepoint.rollback()
        assert uow.session.scalar(held) == 0
        # when the same product's stock changes again
        inventory.adjust_stock(uow, warehouse_id=wh, product_id=p, quantity=5, reason="initial", unit_cost="1.00")
        # then its locks are held again (else a valuation-method change could slip in before commit)
        assert uow.session.scalar(held) == 2
