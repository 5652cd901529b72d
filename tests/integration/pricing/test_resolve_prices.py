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

    from entrepot.kernel.errors import ValidationFailed

    with tenant.uow() as uow:
        customer = create_customer(uow, {"code": "C1", "name": "C", "currency": "USD"})
        with pytest.raises(ValidationFailed) as refused:
            resolve_prices(uow, customer_id=customer.id, lines=[(uuid.uuid4(), Decimal(1))], on=date(2026, 1, 1))
        # a 404 naming the line
        assert refused.value.status == 404 and [e.field for e in refused.value.errors] == ["lines[0].product_id"]


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


@pytest.mark.parametrize("merge_all", [True, False], ids=["table_of_all_lists", "table_per_buyer"])
def test_cached_tables_follow_list_changes(tenant, monkeypatch, merge_all):
    """The merged entry table is shared by every customer (or, past `_ALL_LISTS` lists in a
    currency, by the customers with the same lists): a list's new priority, a new list and an
    archived list all show at once, and a customer never gets another's list."""
    from entrepot.pricing import service
    from entrepot.pricing.service import archive_price_list, update_price_list

    if not merge_all:
        monkeypatch.setattr(service, "_ALL_LISTS", 0)
    with tenant.uow() as uow:
        product = create_product(uow, {"sku": "P", "name": "P", "list_price": "10", "currency": "USD"})
        mine = create_customer(uow, {"code": "C1", "name": "C1", "currency": "USD"})
        other = create_customer(uow, {"code": "C2", "name": "C2", "currency": "USD"})
        low = create_price_list(uow, {"code": "LOW", "name": "L", "currency": "USD", "priority": 1,
                                      "entries": [{"product_id": product.id, "value": "8"}]})
        create_price_list(uow, {"code": "HIGH", "name": "H", "currency": "USD", "priority": 2,
                                "entries": [{"product_id": product.id, "value": "9"}]})
        uow.commit()

    def quote(customer):
        with tenant.uow(readonly=True) as uow:
            r = resolve_prices(uow, customer_id=customer.id, lines=[(product.id, Decimal(1))])[0]
            return r.rule, r.unit_price

    assert quote(mine) == ("price_list:HIGH", Decimal("9"))
    with tenant.uow() as uow:
        update_price_list(uow, low.id, {"priority": 3})
        uow.commit()
    assert quote(mine) == ("price_list:LOW", Decimal("8"))
    with tenant.uow() as uow:
        create_price_list(uow, {"code": "MINE", "name": "M", "currency": "USD", "priority": 5, "scope": "customer",
                                "customer_id": mine.id, "entries": [{"product_id": product.id, "value": "7"}]})
        uow.commit()
    assert quote(mine) == ("price_list:MINE", Decimal("7"))
    assert quote(other) == ("price_list:LOW", Decimal("8"))
    with tenant.uow() as uow:
        archive_price_list(uow, low.id)
        uow.commit()
    assert quote(other) == ("price_list:HIGH", Decimal("9"))


def test_products_already_loaded_are_priced_alike(tenant):
    """Order services pass the products they loaded: same prices, one query fewer."""
    from entrepot.catalog.service import get_products

    with tenant.uow() as uow:
        customer, products = _catalog(uow, 12)
        uow.commit()
    lines = [(p.id, Decimal(i % 7 + 1)) for i, p in enumerate(products)]
    with tenant.uow(readonly=True) as uow:
        expected = [(r.product_id, r.unit_price, r.rule, r.explanation)
                    for r in resolve_prices(uow, customer_id=customer.id, lines=lines)]
    with tenant.uow(readonly=True) as uow:
        loaded = get_products(uow, [p.id for p in products[:8]])  # the rest are read by pricing
        got = resolve_prices(uow, customer_id=customer.id, lines=lines, products=loaded)
        assert [(r.product_id, r.unit_price, r.rule, r.explanation) for r in got] == expected
        with count_queries(uow.session) as reading:
            resolve_prices(uow, customer_id=customer.id, lines=lines[:8])
        with count_queries(uow.session) as given:
            resolve_prices(uow, customer_id=customer.id, lines=lines[:8], products=loaded)
        assert len(given) == len(reading) - 1


def test_price_book_reads_only_the_tenants_lists_and_contracts(tenant, other_tenant):
    from entrepot.pricing.engine import Buyer
    from entrepot.pricing.service import load_price_book

    # given: another tenant with a price list and a contract price in the same currency
    with other_tenant.uow() as uow:
        their_customer, their_products = _catalog(uow, 2)
        uow.commit()
    with tenant.uow() as uow:
        our_customer, our_products = _catalog(uow, 2)
        uow.commit()
    # when: this tenant's book is asked even for the other tenant's customer and products
    with tenant.uow(readonly=True) as uow:
        theirs = load_price_book(uow, buyer=Buyer(their_customer.id, "USD", "dealers"),
                                 product_ids={p.id for p in their_products}, on=date.today(), channel=None,
                                 categorised=True)
        ours = load_price_book(uow, buyer=Buyer(our_customer.id, "USD", "dealers"),
                               product_ids={p.id for p in our_products}, on=date.today(), channel=None,
                               categorised=True)
    # then: only this tenant's rules
    assert theirs.contracts == {} and list(ours.contracts) == [our_products[0].id.int]
    assert sorted(rule.code for rule in ours.lists.values()) == ["CAT", "TIERS"]
    with other_tenant.uow(readonly=True) as uow:
            their_lists = set(load_price_book(uow, buyer=Buyer(their_customer.id, "USD", "dealers"),
                                          product_ids=set(), on=date.today(), channel=None, categorised=False).lists)
    assert len(their_lists) == 2 and not their_lists & (set(ours.lists) | set(theirs.lists))
