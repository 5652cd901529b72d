"""resolve_prices against real databases: a fixed number of queries, the margin guard."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import event

from entrepot.catalog.service import create_category, create_product
from entrepot.kernel.context import Actor
from entrepot.parties.service import create_customer
from entrepot.pricing.service import (
    MarginTooLow,
    add_price_list_entries,
    check_margin,
    clear_price_cache,
    create_contract_price,
    create_price_list,
    resolve_prices,
)


@contextmanager
def count_queries(session):
    statements = []
    engine = session.get_bind()

    def before(conn, cursor, statement, *args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before)


def _catalog(uow, n):
    cat = create_category(uow, {"code": "ROOT", "name": "Root"})
    products = [create_product(uow, {"sku": f"P{i}", "name": f"P{i}", "list_price": "10", "currency": "USD",
                                     "standard_cost": "6", "category_id": cat.id if i % 2 else None})
                for i in range(n)]
    customer = create_customer(uow, {"code": "C1", "name": "C", "currency": "USD", "customer_group": "dealers"})
    create_price_list(uow, {"code": "CAT", "name": "c", "currency": "USD",
                            "entries": [{"category_id": cat.id, "method": "discount", "value": "10"}]})
    create_price_list(uow, {"code": "TIERS", "name": "t", "currency": "USD", "priority": 2,
                            "scope": "customer_group", "customer_group": "dealers",
                            "entries": [{"product_id": p.id, "value": "9", "min_quantity": 5} for p in products]})
    create_contract_price(uow, {"customer_id": customer.id, "product_id": products[0].id, "unit_price": "7"})
    return customer, products


def test_query_count_does_not_grow_with_lines(tenant):
    with tenant.uow() as uow:
        customer, products = _catalog(uow, 40)
        uow.commit()
    counts = []
    for n in (4, 40):
        clear_price_cache()  # both runs load the entries (a warm cache saves that query)
        with tenant.uow(readonly=True) as uow, count_queries(uow.session) as statements:
            lines = [(p.id, Decimal(i % 7 + 1)) for i, p in enumerate(products[:n])]
            result = resolve_prices(uow, customer_id=customer.id, lines=lines)
            counts.append(len(statements))
        assert len(result) == n
    assert counts[0] == counts[1] <= 8
    by_product = {r.product_id: r for r in result}
    assert by_product[products[0].id].rule == "contract"
    assert by_product[products[1].id].rule == "price_list:CAT"  # quantity 2 < tier 5, category 10 % off
    assert by_product[products[1].id].unit_price == Decimal("9.00")
    assert by_product[products[5].id].rule == "price_list:TIERS"  # quantity 6


def test_missing_product_is_not_found(tenant):
    import uuid

    from entrepot.kernel.errors import NotFound

    with tenant.uow() as uow:
        customer = create_customer(uow, {"code": "C1", "name": "C", "currency": "USD"})
        with pytest.raises(NotFound):
            resolve_prices(uow, customer_id=customer.id, lines=[(uuid.uuid4(), Decimal(1))], on=date(2026, 1, 1))


def test_margin_guard(db_url):
    from tests.conftest import make_tenant

    tenant = make_tenant(db_url, minimum_margin="0.10")
    with tenant.uow() as uow:
        product = create_product(uow, {"sku": "M", "name": "M", "list_price": "20", "currency": "USD",
                                       "standard_cost": "10"})
        # the system actor holds every permission, so it may override
        check_margin(uow, product=product, unit_price=Decimal("5"))
        clerk = Actor("api_key", None, tenant.id, "sales", frozenset({"sales.*"}))
        uow.actor = clerk
        check_margin(uow, product=product, unit_price=Decimal("11.00"))  # exactly cost + 10 %
        with pytest.raises(MarginTooLow) as info:
            check_margin(uow, product=product, unit_price=Decimal("10.99"))
        assert info.value.code == "margin_too_low" and info.value.status == 422
        assert info.value.errors[0].field == "unit_price"
        uow.actor = replace(clerk, permissions=frozenset({"sales.*", "pricing.override"}))
        check_margin(uow, product=product, unit_price=Decimal("1"))


def test_cached_entries_follow_changes_and_rollbacks(tenant):
    with tenant.uow() as uow:
        product = create_product(uow, {"sku": "P", "name": "P", "list_price": "10", "currency": "USD"})
        customer = create_customer(uow, {"code": "C", "name": "C", "currency": "USD"})
        pl = create_price_list(uow, {"code": "PL", "name": "PL", "currency": "USD",
                                     "entries": [{"product_id": product.id, "value": "9", "max_quantity": 100}]})
        uow.commit()

    def price(qty):
        with tenant.uow(readonly=True) as uow:
            return resolve_prices(uow, customer_id=customer.id, lines=[(product.id, Decimal(qty))])[0].unit_price

    assert price(50) == Decimal("9")
    # a tier added and priced in a transaction that rolls back
    with tenant.uow() as uow:
        add_price_list_entries(uow, pl.id, [{"product_id": product.id, "value": "1", "min_quantity": 100}])
        assert resolve_prices(uow, customer_id=customer.id, lines=[(product.id, Decimal(100))])[0].unit_price == 1
    assert price(100) == Decimal("10")  # the rolled-back tier is gone: list price
    # a committed change is seen at once
    with tenant.uow() as uow:
        add_price_list_entries(uow, pl.id, [{"product_id": product.id, "value": "8", "min_quantity": 100}],
                               replace=False)
        uow.commit()
    assert price(100) == Decimal("8")
    assert price(99) == Decimal("9")
