"""Bulk import (upsert by natural key) and export of customers, suppliers and supplier items.

Rows go through the same checks and services as the API, so each created or
changed record is audited and gets its event; unchanged rows write nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

from sqlalchemy import select

from entrepot.catalog.csvio import ImportReport, Progress, chunks, read_rows, write_rows
from entrepot.catalog.models import Product
from entrepot.catalog.service import get_products_by_sku
from entrepot.db.uow import UnitOfWork
from entrepot.kernel.errors import DomainError
from entrepot.parties.models import Customer, Supplier, SupplierItem
from entrepot.parties.service import (
    clean_customer,
    clean_supplier,
    clean_supplier_item,
    create_customer,
    create_supplier,
    create_supplier_item,
    update_customer,
    update_supplier,
    update_supplier_item,
)

CUSTOMER_COLUMNS = (
    "code", "name", "legal_name", "currency", "credit_limit", "status", "customer_group", "tax_id", "tax_country",
    "tax_exempt", "exemption_certificate", "payment_terms_days", "early_discount_percent", "early_discount_days",
    "email", "phone",
)
SUPPLIER_COLUMNS = ("code", "name", "legal_name", "currency", "status", "tax_id", "tax_country",
                    "payment_terms_days", "email", "phone")
SUPPLIER_ITEM_COLUMNS = ("supplier_code", "sku", "supplier_sku", "cost", "currency", "min_order_qty", "pack_size",
                         "lead_time_days", "valid_from", "valid_to")


def _upsert(uow: UnitOfWork, stream: IO[str], report: ImportReport, *, columns: tuple[str, ...],
            required: tuple[str, ...], key_of: Callable[[dict[str, str]], Any],
            load: Callable[[list[Any]], Mapping[Any, Any]],
            clean: Callable[[dict[str, Any], Any], tuple[dict[str, Any], list[Any]]],
            create: Callable[[dict[str, Any]], Any], update: Callable[[Any, dict[str, Any]], Any],
            prepare: Callable[[int, dict[str, str]], dict[str, Any] | None] | None = None,
            progress: Progress | None) -> ImportReport:
    seen: set[Any] = set()
    for batch in chunks(read_rows(stream, report, columns=columns, required=required), 500):
        existing = load([key_of(row) for _, row in batch])
        for line, row in batch:
            key = key_of(row)
            if key in seen and all(row.get(c) for c in required):  # no key: told it is required
                report.add(line, required[0], f"{key} appears more than once in the file", "duplicate")
                continue
            seen.add(key)
            data: dict[str, Any] | None = dict(row)
            if prepare is not None:
                data = prepare(line, row)
                if data is None:
                    continue
            current = existing.get(key)
            values, errors = clean(data, current)
            if errors:
                report.add_field_errors(line, errors)
                continue
            diff = {k: v for k, v in values.items() if current is None or getattr(current, k) != v}
            if current is not None and not diff:
                report.unchanged += 1
                continue
            if not report.ok:
                report.created += current is None
                report.updated += current is not None
                continue
            try:  # a dry run writes too, to meet every check the services make; the caller rolls it back
                if current is None:
                    create(data)
                    report.created += 1
                else:
                    update(current, {k: data[k] for k in data if k in diff or k == "tax_country"})
                    report.updated += 1
            except DomainError as exc:
                report.add_refusal(line, exc)
        if progress:
            progress(len(batch))
    return report


def import_customers(uow: UnitOfWork, stream: IO[str], *, dry_run: bool = False,
                     progress: Progress | None = None) -> ImportReport:
    def load(codes: list[str]) -> dict[str, Customer]:
        return {c.code: c for c in uow.session.scalars(select(Customer).where(Customer.code.in_(codes)))}

    return _upsert(
        uow, stream, ImportReport("customers", dry_run=dry_run), columns=CUSTOMER_COLUMNS, required=("code",),
        key_of=lambda r: r.get("code", ""), load=load,
        clean=lambda d, cur: clean_customer(d, partial=cur is not None, current=cur),
        create=lambda d: create_customer(uow, d), update=lambda cur, d: update_customer(uow, cur.id, d, customer=cur),
        progress=progress)


def import_suppliers(uow: UnitOfWork, stream: IO[str], *, dry_run: bool = False,
                     progress: Progress | None = None) -> ImportReport:
    def load(codes: list[str]) -> dict[str, Supplier]:
        return {s.code: s for s in uow.session.scalars(select(Supplier).where(Supplier.code.in_(codes)))}

    return _upsert(
        uow, stream, ImportReport("suppliers", dry_run=dry_run), columns=SUPPLIER_COLUMNS, required=("code",),
        key_of=lambda r: r.get("code", ""), load=load,
        clean=lambda d, cur: clean_supplier(d, partial=cur is not None, current=cur),
        create=lambda d: create_supplier(uow, d), update=lambda cur, d: update_supplier(uow, cur.id, d, supplier=cur),
        progress=progress)


def import_supplier_items(uow: UnitOfWork, stream: IO[str], *, dry_run: bool = False,
                          progress: Progress | None = None) -> ImportReport:
    """Upsert by (supplier_code, sku, valid_from)."""
    report = ImportReport("supplier_items", dry_run=dry_run)
    suppliers = dict(uow.session.execute(select(Supplier.code, Supplier.id)).all())
    products: dict[str, uuid.UUID] = {}

    def key_of(r: dict[str, str]) -> tuple[str, str, str]:
        return r.get("supplier_code", ""), r.get("sku", ""), r.get("valid_from", "")

    def load(keys: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], SupplierItem]:
        products.update({s: p.id for s, p in get_products_by_sku(uow, [k[1] for k in keys]).items()})
        ids = {products[k[1]] for k in keys if k[1] in products}
        by_id = {v: k for k, v in suppliers.items()}
        sku_of = {v: k for k, v in products.items()}
        found = {}
        for item in uow.session.scalars(select(SupplierItem).where(SupplierItem.product_id.in_(ids))):
            key = (by_id.get(item.supplier_id, ""), sku_of.get(item.product_id, ""),
                   item.valid_from.isoformat() if item.valid_from else "")
            found[key] = item
        return found

    def prepare(line: int, row: dict[str, str]) -> dict[str, Any] | None:
        data: dict[str, Any] = {k: v for k, v in row.items() if k not in ("supplier_code", "sku")}
        ok = True
        if row.get("supplier_code") not in suppliers:
            report.add(line, "supplier_code", f"no supplier {row.get('supplier_code')!r}", "exists")
            ok = False
        if row.get("sku") not in products:
            report.add(line, "sku", f"no product {row.get('sku')!r}", "exists")
            ok = False
        if not ok:
            return None
        data["supplier_id"] = suppliers[row["supplier_code"]]
        data["product_id"] = products[row["sku"]]
        return data

    def clean(d: dict[str, Any], cur: SupplierItem | None) -> tuple[dict[str, Any], list[Any]]:
        if cur is None:
            return clean_supplier_item(d)
        partial = {k: v for k, v in d.items() if k not in ("supplier_id", "product_id")}
        return clean_supplier_item(partial, partial=True, current=cur)

    return _upsert(
        uow, stream, report, columns=SUPPLIER_ITEM_COLUMNS, required=("supplier_code", "sku"), key_of=key_of,
        load=load, clean=clean, prepare=prepare, create=lambda d: create_supplier_item(uow, d),
        update=lambda cur, d: update_supplier_item(
            uow, cur.id, {k: v for k, v in d.items() if k not in ("supplier_id", "product_id")}),
        progress=progress)


def _export(stream: IO[str], columns: tuple[str, ...], records: Iterator[Any],
            extra: Callable[[Any], dict[str, Any]] | None = None) -> int:
    def rows() -> Iterator[dict[str, Any]]:
        for r in records:
            row = {c: getattr(r, c, None) for c in columns}
            if extra:
                row.update(extra(r))
            yield row

    return write_rows(stream, columns, rows())


def export_customers(uow: UnitOfWork, stream: IO[str]) -> int:
    query = select(Customer).where(Customer.archived_at.is_(None)).order_by(Customer.code)
    return _export(stream, CUSTOMER_COLUMNS, iter(uow.session.scalars(query)))


def export_suppliers(uow: UnitOfWork, stream: IO[str]) -> int:
    query = select(Supplier).where(Supplier.archived_at.is_(None)).order_by(Supplier.code)
    return _export(stream, SUPPLIER_COLUMNS, iter(uow.session.scalars(query)))


def export_supplier_items(uow: UnitOfWork, stream: IO[str]) -> int:
    current = SupplierItem.archived_at.is_(None)
    items = list(uow.session.scalars(select(SupplierItem).where(current)))
    codes = dict(uow.session.execute(select(Supplier.id, Supplier.code)).all())
    # the items' skus, their products selected rather than listed (more than a statement's parameters)
    skus = dict(uow.session.execute(select(Product.id, Product.sku).where(
        Product.id.in_(select(SupplierItem.product_id).where(current)))).all())
    items.sort(key=lambda i: (codes.get(i.supplier_id, ""), skus.get(i.product_id, ""), str(i.valid_from or "")))
    return _export(stream, SUPPLIER_ITEM_COLUMNS, iter(items),
                   lambda i: {"supplier_code": codes.get(i.supplier_id), "sku": skus.get(i.product_id)})
