"""How many SQL statements each order-to-cash step sends, for a 5-line order.

Wall-clock time on a shared machine is noise; statement counts are not. Each
step of the contract flow has a budget, so a change that adds a query per line
or re-reads what a step already holds fails here instead of quietly slowing
every order down. A budget is lowered when a step gets cheaper.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event

from entrepot.billing import service as billing
from entrepot.catalog.service import create_product
from entrepot.db.engine import get_engine
from entrepot.inventory.service import adjust_stock, create_warehouse
from entrepot.parties.service import create_customer
from entrepot.sales import service as sales
from tests.conftest import TenantHandle

LINES = 5

# Statements per step, commit included (an executemany counts once): upper bounds, with
# some room. Sent at 1a9e017, SQLite / PostgreSQL: create_order 12 / 12, confirm 11 / 14,
# create_shipment 10 / 10, ship 22 / 26, invoice 16 / 16, pay 14 / 14 (PostgreSQL adds the
# per-transaction tenant setting, and the products' locks where stock changes). Reading the
# paid order's timeline: 10 / 10, one of them finding the ledger entries its documents posted.
BUDGET = {
    "create_order": 13,
    "confirm": 17,
    "create_shipment": 11,
    "ship": 31,
    "invoice": 20,
    "pay": 17,
    "timeline": 11,
}


@contextmanager
def counting(url: str) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    engine = get_engine(url)
    event.listen(engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _given_stock_and_a_customer(tenant: TenantHandle, lines: int = LINES) -> tuple[list[Any], Any]:
    with tenant.uow() as uow:
        warehouse = create_warehouse(uow, {"code": "MAIN", "name": "Main"})
        products = [create_product(uow, {"sku": f"SB-{i}", "name": f"Item {i}", "list_price": Decimal("9.99"),
                                         "currency": "USD", "standard_cost": Decimal("4.00")})
                    for i in range(lines)]
        for product in products:
            adjust_stock(uow, warehouse_id=warehouse.id, product_id=product.id, quantity=Decimal(1000),
                         reason="opening", unit_cost=Decimal("4.00"))
        customer = create_customer(uow, {"code": "SB", "name": "Budget customer", "currency": "USD"})
        uow.commit()
        return [p.id for p in products], customer.id


def _flow(tenant: TenantHandle, product_ids: list[Any], customer_id: Any) -> dict[str, int]:
    counts: dict[str, int] = {}

    def step(name: str, action: Callable[[Any], Any]) -> Any:
        with counting(tenant.url) as statements, tenant.uow() as uow:
            result = action(uow)
            uow.commit()
        counts[name] = len(statements)
        return result

    lines = [sales.OrderLineInput(pid, Decimal(2)) for pid in product_ids]
    order = step("create_order", lambda uow: sales.create_sales_order(uow, customer_id=customer_id, lines=lines))
    step("confirm", lambda uow: sales.confirm_sales_order(uow, order.id))
    shipment = step("create_shipment", lambda uow: sales.create_shipment(uow, sales_order_id=order.id))
    step("ship", lambda uow: sales.ship_shipment(uow, shipment.id))
    invoice = step("invoice", lambda uow: sales.invoice_sales_order(uow, order.id))
    step("pay", lambda uow: billing.record_payment(
        uow, customer_id=customer_id, amount=invoice.total, currency="USD",
        allocations=[billing.AllocationInput(invoice.id, invoice.total)]))
    step("timeline", lambda uow: sales.order_timeline(uow, order.id))
    return counts


def test_each_step_of_a_five_line_order_stays_within_its_statement_budget(tenant: TenantHandle) -> None:
    # given stock and a customer, and one order already through (first-use rows such as
    # number sequences and the audit chain head exist, as in steady operation)
    product_ids, customer_id = _given_stock_and_a_customer(tenant)
    _flow(tenant, product_ids, customer_id)

    # when the next order goes through every step
    counts = _flow(tenant, product_ids, customer_id)

    # then no step sends more statements than its budget
    over = {name: (counts[name], BUDGET[name]) for name in BUDGET if counts[name] > BUDGET[name]}
    assert not over, f"steps over budget (sent, budget): {over}; all counts: {counts}"


@pytest.mark.parametrize("lines", [2, 10])
def test_statements_do_not_grow_with_the_number_of_lines(tenant: TenantHandle, lines: int) -> None:
    # given the same flow with 2 and with 10 lines
    product_ids, customer_id = _given_stock_and_a_customer(tenant, lines)
    _flow(tenant, product_ids, customer_id)

    # when an order goes through
    counts = _flow(tenant, product_ids, customer_id)

    # then it fits the five-line budget: no step pays per line
    over = {name: (counts[name], BUDGET[name]) for name in BUDGET if counts[name] > BUDGET[name]}
    assert not over, f"{lines}-line order over budget: {over}; all counts: {counts}"
