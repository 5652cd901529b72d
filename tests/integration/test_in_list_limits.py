"""Reports and jobs over all of a tenant's data keep working for a large tenant.

A list of ids in `column IN (...)` binds one parameter per id: SQLite refuses a statement of
more than 32,766 parameters as it is built by default (Python's own installers; Debian's build
allows 250,000, so the tests hold every SQLite connection to the default), psycopg one of more
than 65,535. Each test here builds more rows than that (bulk Core inserts, so it takes seconds)
and runs a read that used to put them all into one IN list (see entrepot.db.in_lists).
"""

from __future__ import annotations

import io
import sqlite3
import uuid
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.pool import Pool

from entrepot.catalog import service as catalog
from entrepot.catalog.models import Product
from entrepot.inventory import service as inventory
from entrepot.inventory.models import Location, LocationKind, ReorderRule, ValuationCorrection
from entrepot.kernel import clock
from entrepot.kernel.ids import new_id
from entrepot.parties.models import Supplier, SupplierItem
from entrepot.pricing.models import PriceList, PriceListEntry
from tests.integration.inventory.helpers import demand, product, stock, warehouse

SQLITE_DEFAULT_MAX_VARIABLES = 32_766  # SQLITE_MAX_VARIABLE_NUMBER's default since SQLite 3.32


@pytest.fixture(autouse=True)
def _sqlite_at_its_default_limit() -> Iterator[None]:
    """Every SQLite connection handed out during the test binds at most SQLite's default number of
    parameters (the build at hand may allow more); the limit it had comes back when it is returned."""
    kept: dict[int, int] = {}

    def checkout(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if isinstance(dbapi_connection, sqlite3.Connection):
            kept[id(dbapi_connection)] = dbapi_connection.setlimit(
                sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, SQLITE_DEFAULT_MAX_VARIABLES)

    def checkin(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is not None and id(dbapi_connection) in kept:
            dbapi_connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, kept.pop(id(dbapi_connection)))

    event.listen(Pool, "checkout", checkout)
    event.listen(Pool, "checkin", checkin)
    try:
        yield
    finally:
        event.remove(Pool, "checkout", checkout)
        event.remove(Pool, "checkin", checkin)


def _above_the_limit(tenant: Any) -> int:
    """More ids than the database binds in one statement."""
    return 40_000 if tenant.url.startswith("sqlite") else 70_000


def _insert(uow: Any, model: Any, rows: list[dict[str, Any]]) -> None:
    """Rows straight into the table (one executemany), stamped with the tenant and an id."""
    now = clock.now()
    uow.session.execute(model.__table__.insert(), [
        {"id": new_id(), "tenant_id": uow.tenant_id, "created_at": now, "updated_at": now, **row} for row in rows])


def _products(uow: Any, count: int) -> list[uuid.UUID]:
    rows = [{"id": new_id(), "sku": f"BULK-{n:06d}", "name": "Bulk", "list_price": Decimal("10"), "currency": "USD"}
            for n in range(count)]
    _insert(uow, Product, rows)
    return [r["id"] for r in rows]


def test_replenishment_suggests_for_more_reorder_rules_than_one_statement_binds(tenant):
    # given one rule with stock on hand, and tens of thousands of rules without
    count = _above_the_limit(tenant)
    wh = warehouse(tenant, "BIG")
    stocked = product(tenant)
    stock(tenant, wh, stocked, 2)
    with tenant.uow() as uow:
        inventory.set_reorder_rule(uow, product_id=stocked, warehouse_id=wh, reorder_point=5, order_up_to=20)
        _insert(uow, ReorderRule, [{"product_id": pid, "warehouse_id": wh, "reorder_point": Decimal(5),
                                    "order_up_to": Decimal(20), "safety_stock": Decimal(0), "version": 1}
                                   for pid in _products(uow, count)])
        uow.commit()
    # when the suggestions are read, for every warehouse and for this one
    with tenant.uow(readonly=True) as uow:
        every = inventory.replenishment_suggestions(uow)
        here = inventory.replenishment_suggestions(uow, warehouse_id=wh)
    # then every rule is suggested: up to 20 from what it has
    for found in (every, here):
        assert len(found) == count + 1
        by_product = {s.product_id: s for s in found}
        assert (by_product[stocked].projected, by_product[stocked].quantity) == (2, 18)
        assert {(s.projected, s.quantity) for s in found if s.product_id != stocked} == {(0, 20)}


def test_supplier_items_for_more_products_than_one_statement_binds(tenant):
    # given one product with a supplier item
    count = _above_the_limit(tenant)
    with tenant.uow() as uow:
        [pid] = _products(uow, 1)
        supplier = new_id()
        _insert(uow, Supplier, [{"id": supplier, "code": "S1", "name": "Supplier", "currency": "USD",
                                 "contacts": [], "version": 1}])
        _insert(uow, SupplierItem, [{"supplier_id": supplier, "product_id": pid, "cost": Decimal("3"),
                                     "currency": "USD", "version": 1}])
        uow.commit()
    # when the items of it and of tens of thousands of other products are asked for
    from entrepot.parties.service import supplier_items_for

    with tenant.uow(readonly=True) as uow:
        found = supplier_items_for(uow, [*(uuid.uuid4() for _ in range(count)), pid])
    # then the one item is found
    assert [(i.product_id, i.cost) for i in found] == [(pid, 3)]


def test_products_by_id_for_more_ids_than_one_statement_binds(tenant):
    # given tens of thousands of products
    with tenant.uow() as uow:
        ids = _products(uow, _above_the_limit(tenant))
        uow.commit()
    # when they are read by id, then all are found
    with tenant.uow(readonly=True) as uow:
        assert set(catalog.get_products(uow, ids)) == set(ids)


def test_period_invoicing_reads_shipments_of_more_orders_than_one_statement_binds(tenant):
    from entrepot.sales.service import _shipped_through

    # given more orders to invoice than one statement binds (ids: the read is what is under test;
    # the invoicing run reads the shipped quantities of every order it found with one such call)
    ids = [uuid.uuid4() for _ in range(_above_the_limit(tenant))]
    # when what they shipped through yesterday is read, then nothing is (they have no shipments)
    with tenant.uow(readonly=True) as uow:
        assert _shipped_through(uow, ids, clock.today() - timedelta(days=1)) == {}


@pytest.mark.usefixtures("sqlite_only")
def test_exports_of_more_rows_than_one_statement_binds(sqlite_only):
    from entrepot.parties.imports import export_supplier_items
    from entrepot.pricing.imports import export_price_lists
    from tests.conftest import make_tenant

    # given tens of thousands of products, each with a supplier item and a price list entry
    tenant = make_tenant(sqlite_only)
    count = 40_000
    with tenant.uow() as uow:
        ids = _products(uow, count)
        supplier, price_list = new_id(), new_id()
        _insert(uow, Supplier, [{"id": supplier, "code": "S1", "name": "Supplier", "currency": "USD",
                                 "contacts": [], "version": 1}])
        _insert(uow, SupplierItem, [{"supplier_id": supplier, "product_id": pid, "cost": Decimal("3"),
                                     "currency": "USD", "version": 1} for pid in ids])
        _insert(uow, PriceList, [{"id": price_list, "code": "PL", "name": "List", "currency": "USD",
                                  "kind": "standard", "priority": 0, "scope": "all", "version": 1}])
        _insert(uow, PriceListEntry, [{"price_list_id": price_list, "product_id": pid, "method": "fixed",
                                       "value": Decimal("9"), "min_quantity": Decimal(0)} for pid in ids])
        uow.commit()
    # when both are exported
    items, prices = io.StringIO(), io.StringIO()
    with tenant.uow(readonly=True) as uow:
        written = export_supplier_items(uow, items), export_price_lists(uow, prices)
    # then every row is written with its product's sku
    assert written == (count, count)
    assert "BULK-039999" in items.getvalue() and "BULK-039999" in prices.getvalue()


@pytest.mark.usefixtures("sqlite_only")
def test_adding_more_price_list_entries_than_one_statement_binds_twice(sqlite_only):
    from entrepot.pricing.service import add_price_list_entries, create_price_list
    from tests.conftest import make_tenant

    # given a price list, and 17,000 products (each id goes into two IN lists: 34,000 > 32,766)
    tenant = make_tenant(sqlite_only)
    with tenant.uow() as uow:
        ids = _products(uow, 17_000)
        price_list = create_price_list(uow, {"code": "PL", "name": "List", "currency": "USD"})
        uow.commit()
    # when an entry for each is added to it
    with tenant.uow() as uow:
        added = add_price_list_entries(uow, price_list.id, [{"product_id": pid, "value": "9"} for pid in ids])
        uow.commit()
    # then all are
    assert len(added) == 17_000


def test_revaluation_of_a_warehouse_with_more_locations_than_one_statement_binds(tenant):
    # given 10 units at 1.00 received 5 days ago and 6 shipped since, in a warehouse with tens of
    # thousands of bins (the replay classifies each move by the warehouse's locations)
    today = clock.today()
    p = product(tenant)
    wh = warehouse(tenant)
    with tenant.uow() as uow:
        _insert(uow, Location, [{"code": f"BIN-{n:06d}", "name": "Bin", "kind": LocationKind.STOCK.value,
                                 "warehouse_id": wh, "active": True, "count_locked": False}
                                for n in range(_above_the_limit(tenant) // 2)])
        uow.commit()
    stock(tenant, wh, p, 10, unit_cost="1.00", on=today - timedelta(days=5))
    line = demand(p, 6)
    with tenant.uow() as uow:
        inventory.allocate(uow, [line])
        inventory.issue_reserved(uow, demand_type="sales_order_line", demand_id=line.demand_id,
                                 quantity=Decimal(6), reference="SHP")
        uow.commit()
    # when a receipt of 10 at 3.00 dated 10 days ago is entered
    with tenant.uow() as uow:
        inventory.receive_stock(uow, product_id=p, warehouse_id=wh, quantity=10, unit_cost="3.00",
                                reference="PO-late", on=today - timedelta(days=10))
        uow.commit()
    # then the shipment is re-costed at the true average 2.00 (6.00 more cost of goods)
    with tenant.uow(readonly=True) as uow:
        [correction] = uow.session.scalars(select(ValuationCorrection)).all()
        assert (correction.category, correction.amount) == ("cogs", Decimal("6.00"))
        assert inventory.valuation(uow).total_value == Decimal("28.00")
