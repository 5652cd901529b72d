"""Customer, supplier, supplier-item and price-list CSV import/export round trips."""

from __future__ import annotations

import io

from entrepot.catalog.service import create_product
from entrepot.parties.imports import (
    export_customers,
    export_supplier_items,
    export_suppliers,
    import_customers,
    import_supplier_items,
    import_suppliers,
)
from entrepot.pricing.imports import export_price_lists, import_price_lists


def _run(tenant, fn, text, **kw):
    with tenant.uow() as uow:
        report = fn(uow, io.StringIO(text), **kw)
        if report.ok and not kw.get("dry_run"):
            uow.commit()
    return report


def _export(tenant, fn):
    buf = io.StringIO()
    with tenant.uow(readonly=True) as uow:
        fn(uow, buf)
    return buf.getvalue()


def test_customers_import_validates_tax_ids_and_round_trips(tenant):
    bad = "code,name,currency,tax_id,tax_country\nC1,One,EUR,DE123,DE\nC2,Two,EUR,,\n"
    report = _run(tenant, import_customers, bad)
    assert [(e.row, e.column, e.rule) for e in report.errors] == [(2, "tax_id", "tax_id")]
    good = ("code,name,currency,tax_id,tax_country,credit_limit,customer_group\n"
            "C1,One,EUR,DE136695976,DE,1000,dealers\nC2,Two,EUR,,,,\n")
    report = _run(tenant, import_customers, good)
    assert report.ok and report.created == 2
    exported = _export(tenant, export_customers)
    report = _run(tenant, import_customers, exported)
    assert report.ok and (report.created, report.updated, report.unchanged) == (0, 0, 2), report.errors
    report = _run(tenant, import_customers, "code,credit_limit\nC2,500\n")
    assert report.updated == 1


def test_suppliers_and_items_round_trip(tenant):
    with tenant.uow() as uow:
        create_product(uow, {"sku": "P1", "name": "P1", "list_price": "5", "currency": "USD"})
        uow.commit()
    assert _run(tenant, import_suppliers, "code,name,currency\nS1,Supplier,USD\n").created == 1
    items = ("supplier_code,sku,supplier_sku,cost,currency,pack_size,lead_time_days,valid_from\n"
             "S1,P1,X-1,2.50,USD,12,7,2026-01-01\nS1,NOPE,X-2,1,USD,1,1,\nS9,P1,X-3,1,USD,1,1,\n")
    report = _run(tenant, import_supplier_items, items)
    assert {(e.row, e.column) for e in report.errors} == {(3, "sku"), (4, "supplier_code")}
    report = _run(tenant, import_supplier_items, items.rsplit("\n", 3)[0] + "\n")
    assert report.ok and report.created == 1, report.errors
    for fn, imp in ((export_suppliers, import_suppliers), (export_supplier_items, import_supplier_items)):
        report = _run(tenant, imp, _export(tenant, fn))
        assert report.ok and report.unchanged == 1 and report.created == report.updated == 0, report.errors


def test_price_lists_import_with_tiers_and_round_trip(tenant):
    with tenant.uow() as uow:
        create_product(uow, {"sku": "P1", "name": "P1", "list_price": "5", "currency": "USD"})
        uow.commit()
    overlapping = ("code,name,currency,priority,sku,method,value,min_quantity,max_quantity\n"
                   "PL,Trade,USD,2,P1,fixed,4.5,0,10\nPL,,,,P1,fixed,4,5,\n")
    report = _run(tenant, import_price_lists, overlapping)
    assert [(e.row, e.column, e.rule) for e in report.errors] == [(3, "min_quantity", "overlap")]
    good = overlapping.replace("P1,fixed,4,5,", "P1,fixed,4,10,")
    report = _run(tenant, import_price_lists, good)
    assert report.ok and report.created == 1, report.errors
    report = _run(tenant, import_price_lists, _export(tenant, export_price_lists))
    assert report.ok and report.unchanged == 1, report.errors
