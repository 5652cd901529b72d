"""Prepared statements run on the driver's cursor, yet write and read what the ORM would."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import bindparam, event, insert, select, update
from sqlalchemy.engine import Engine

from entrepot.catalog.models import Product
from entrepot.db.prepared import Prepared
from entrepot.kernel.ids import new_id

_products = Product.__table__
_COLUMNS = ("id", "tenant_id", "sku", "name", "description", "status", "unit", "tax_class", "track_lots",
            "track_serials", "list_price", "currency", "standard_cost", "created_at", "updated_at", "version")
_INSERT = Prepared(insert(_products), columns=_COLUMNS)
_RAISE = Prepared(
    update(_products)
    .where(_products.c.id == bindparam("pid"))
    .values(list_price=_products.c.list_price + bindparam("step"), version=_products.c.version + 1,
            updated_at=bindparam("now"))
    .returning(_products.c.list_price, _products.c.version, _products.c.updated_at)
)
_BY_SKU = Prepared(select(_products.c.id, _products.c.list_price).where(_products.c.sku == bindparam("sku")))


def _row(tenant_id, sku: str, price: str) -> dict:
    now = datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    return {"id": new_id(), "tenant_id": tenant_id, "sku": sku, "name": f"Item {sku}", "description": "",
            "status": "active", "unit": "each", "tax_class": "standard", "track_lots": False,
            "track_serials": False, "list_price": Decimal(price), "currency": "USD",
            "standard_cost": Decimal("0.3333"), "created_at": now, "updated_at": now, "version": 1}


def test_rows_written_by_a_prepared_insert_load_exactly_through_the_orm(tenant):
    with tenant.uow() as uow:
        rows = [_row(uow.tenant_id, "P-1", "19.99"), _row(uow.tenant_id, "P-2", "0.0001")]
        _INSERT.execute_many(uow, rows)
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        loaded = {p.sku: p for p in uow.session.scalars(select(Product))}
    assert loaded["P-1"].list_price == Decimal("19.99")
    assert loaded["P-2"].list_price == Decimal("0.0001")
    assert loaded["P-1"].standard_cost == Decimal("0.3333")
    assert loaded["P-1"].created_at == datetime(2026, 3, 1, 12, 30, tzinfo=UTC)
    assert loaded["P-1"].id == rows[0]["id"]
    assert loaded["P-1"].track_lots is False


def test_returning_rows_come_back_as_python_values(tenant):
    with tenant.uow() as uow:
        row = _row(uow.tenant_id, "P-3", "10.00")
        _INSERT.execute_many(uow, [row])
        later = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
        [(price, version, updated_at)] = _RAISE.execute(uow, {"pid": row["id"], "step": Decimal("0.05"),
                                                               "now": later})
        uow.commit()
    assert (price, version, updated_at) == (Decimal("10.05"), 2, later)


def test_a_prepared_statement_runs_in_the_unit_of_works_transaction(tenant):
    with tenant.uow() as uow:
        _INSERT.execute_many(uow, [_row(uow.tenant_id, "P-4", "1.00")])
        # no commit: rolled back with the unit of work
    with tenant.uow(readonly=True) as uow:
        assert _BY_SKU.execute(uow, {"sku": "P-4"}) == []


def test_statement_listeners_see_prepared_statements(tenant):
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        seen.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        with tenant.uow() as uow:
            _INSERT.execute_many(uow, [_row(uow.tenant_id, "P-5", "1.00")])
            uow.commit()
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    assert any(s.startswith("INSERT INTO catalog_products") for s in seen)


def test_an_insert_that_leaves_out_a_python_side_default_is_refused(tenant):
    incomplete = Prepared(insert(_products), columns=[c for c in _COLUMNS if c != "created_at"])
    with tenant.uow() as uow, pytest.raises(ValueError, match="created_at"):
        incomplete.execute_many(uow, [_row(uow.tenant_id, "P-6", "1.00")])


def test_row_level_security_filters_prepared_reads_on_postgresql(pg_url):
    from tests.conftest import make_tenant

    a, b = make_tenant(pg_url), make_tenant(pg_url)
    with b.uow() as uow:
        _INSERT.execute_many(uow, [_row(uow.tenant_id, "B-ONLY", "1.00")])
        uow.commit()
    # The statement has no tenant filter of its own: only the database's policy keeps B's row out.
    with a.uow(readonly=True) as uow:
        assert _BY_SKU.execute(uow, {"sku": "B-ONLY"}) == []
    with b.uow(readonly=True) as uow:
        assert len(_BY_SKU.execute(uow, {"sku": "B-ONLY"})) == 1
