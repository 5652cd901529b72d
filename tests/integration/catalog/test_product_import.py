"""Bulk product import/export: upsert by sku, per-row errors, all or nothing, round trip."""

from __future__ import annotations

import io
from decimal import Decimal

from sqlalchemy import func, select

from entrepot.catalog.imports import export_products, import_products
from entrepot.catalog.models import Product
from entrepot.catalog.service import create_category, create_product, find_product_by_sku
from entrepot.integration.models import OutboxEvent

GOOD = """sku,name,list_price,currency,unit,gtin,category
A-1,Anchor bolt,1.20,USD,each,4006381333931,FIX
A-2,Angle bracket,3.5,USD,box,,
"""


def _count(uow, model=Product):
    return uow.session.scalar(select(func.count()).select_from(model))


def _import(tenant, text, **kw):
    with tenant.uow() as uow:
        report = import_products(uow, io.StringIO(text), **kw)
        if report.ok and not kw.get("dry_run"):
            uow.commit()
    return report


def test_import_creates_then_updates_by_sku(tenant):
    with tenant.uow() as uow:
        create_category(uow, {"code": "FIX", "name": "Fixings"})
        uow.commit()
    # when
    report = _import(tenant, GOOD)
    # then
    assert report.ok, report.errors
    assert (report.created, report.updated, report.unchanged) == (2, 0, 0)
    with tenant.uow(readonly=True) as uow:
        a1 = find_product_by_sku(uow, "A-1")
        assert a1.list_price == Decimal("1.2") and a1.category_id is not None
        assert uow.session.scalar(select(func.count()).where(OutboxEvent.type == "product.created.v1")) == 2
    # when a price changes
    report = _import(tenant, "sku,list_price\nA-1,1.25\nA-2,3.50\n")
    assert (report.created, report.updated, report.unchanged) == (0, 1, 1)
    with tenant.uow(readonly=True) as uow:
        assert find_product_by_sku(uow, "A-1").list_price == Decimal("1.25")
        assert find_product_by_sku(uow, "A-1").name == "Anchor bolt"


def test_any_bad_row_writes_nothing_and_every_problem_is_reported(tenant):
    text = """sku,name,list_price,currency,unit,gtin
OK-1,Fine,1.00,USD,each,
BAD-1,Neg,-1,USD,each,
BAD-2,Cur,1,usd,each,
BAD-3,Unit,1,USD,barrel,
BAD-4,Gtin,1,USD,each,12345
OK-1,Dup,1,USD,each,
,No sku,1,USD,each,
"""
    report = _import(tenant, text)
    assert not report.ok
    found = {(e.row, e.column, e.rule) for e in report.errors}
    assert found == {(3, "list_price", "min"), (4, "currency", "currency"), (5, "unit", "unit"),
                     (6, "gtin", "gtin"), (7, "sku", "duplicate"), (8, "sku", "required")}
    with tenant.uow(readonly=True) as uow:
        assert _count(uow) == 0


def test_unknown_and_missing_columns(tenant):
    report = _import(tenant, "name,colour\nx,red\n")
    assert {(e.row, e.column, e.rule) for e in report.errors} == {
        (1, "colour", "unknown_column"), (1, "sku", "required_column")}


def test_dry_run_checks_but_writes_nothing(tenant):
    report = _import(tenant, "sku,name,list_price,currency\nX,X,1,USD\n", dry_run=True)
    assert report.ok and report.created == 1
    with tenant.uow(readonly=True) as uow:
        assert _count(uow) == 0


def test_export_then_import_changes_nothing(tenant):
    with tenant.uow() as uow:
        cat = create_category(uow, {"code": "C", "name": "C"})
        create_product(uow, {"sku": "R-1", "name": "Round, \"trip\"", "list_price": "9.9900", "currency": "EUR",
                             "gtin": "4006381333931", "weight_kg": "1.25", "category_id": cat.id,
                             "track_lots": True, "description": "multi\nline"})
        create_product(uow, {"sku": "R-2", "name": "Two", "list_price": "0.1234", "currency": "USD",
                             "status": "discontinued", "standard_cost": "0.05"})
        uow.commit()
    buffer = io.StringIO()
    with tenant.uow(readonly=True) as uow:
        assert export_products(uow, buffer) == 2
        events_before = uow.session.scalar(select(func.count()).select_from(OutboxEvent))
    report = _import(tenant, buffer.getvalue())
    assert report.ok, report.errors
    assert (report.created, report.updated, report.unchanged) == (0, 0, 2)
    with tenant.uow(readonly=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(OutboxEvent)) == events_before
