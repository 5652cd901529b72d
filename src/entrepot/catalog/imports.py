"""Bulk product import (upsert by sku) and export, as CSV with the same columns.

New products are inserted in bulk (one statement per chunk) and each gets its
`product.created.v1` event; changed products go through `update_product` (so
each is audited and gets `product.updated.v1`); unchanged rows write nothing,
so importing an export changes nothing. The import itself is audited once
(`product.import`) with its counts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from decimal import Decimal
from typing import IO, Any

from sqlalchemy import insert, select

from entrepot.catalog import events
from entrepot.catalog.csvio import ImportReport, Progress, chunks, read_rows, write_rows
from entrepot.catalog.models import Category, Product, ProductStatus
from entrepot.catalog.service import (
    BASE_UNIT,
    CatalogContext,
    clean_product,
    get_products_by_sku,
    hold_barcodes,
    products_by_gtin,
    update_product,
)
from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.audit import audit
from entrepot.integration.outbox import record_events
from entrepot.kernel import clock
from entrepot.kernel.errors import DomainError
from entrepot.kernel.ids import new_id
from entrepot.kernel.money import format_price

PRODUCT_COLUMNS = (
    "sku", "name", "description", "status", "category", "unit", "sales_unit", "purchase_unit", "gtin",
    "weight_kg", "length_cm", "width_cm", "height_cm", "tax_class", "track_lots", "track_serials",
    "list_price", "currency", "standard_cost",
)
REQUIRED = ("sku",)
# CSV column → product field, where they differ (categories travel by code).
_FIELD = {"category": "category_id"}
_COLUMN = {v: k for k, v in _FIELD.items()}
_DEFAULTS: dict[str, Any] = {
    "description": "", "status": ProductStatus.ACTIVE, "category_id": None, "unit": BASE_UNIT, "sales_unit": None,
    "purchase_unit": None, "gtin": None, "weight_kg": None, "length_cm": None, "width_cm": None,
    "height_cm": None, "tax_class": "standard", "track_lots": False, "track_serials": False,
    "standard_cost": Decimal(0),
}


def import_products(uow: UnitOfWork, stream: IO[str], *, dry_run: bool = False, progress: Progress | None = None,
                    chunk_size: int = 2000) -> ImportReport:
    """Check every row and upsert by sku in the caller's unit of work. The caller commits
    only when `report.ok` and not `dry_run`; otherwise it rolls back (all or nothing). A dry
    run writes too, so that it meets every check the writes make (a status the machine does not
    allow, an archived product), and the caller rolls it back."""
    report = ImportReport("products", dry_run=dry_run)
    ctx = CatalogContext.load(uow)
    seen: set[str] = set()
    seen_gtins: dict[str, str] = {}  # barcode -> the sku of the file's row that set it
    digest = hashlib.sha256()
    rows = read_rows(stream, report, columns=PRODUCT_COLUMNS, required=REQUIRED)
    for batch in chunks(rows, chunk_size):
        _import_chunk(uow, batch, ctx, seen, seen_gtins, report, write=report.ok, digest=digest)
        if progress:
            progress(len(batch))
    if report.ok and not dry_run and (report.created or report.updated):
        audit(uow, "product.import", "product", None,
              after={"created": report.created, "updated": report.updated, "unchanged": report.unchanged,
                     "rows": report.rows, "sha256": digest.hexdigest()})
    return report


def _import_chunk(uow: UnitOfWork, batch: list[tuple[int, dict[str, str]]], ctx: CatalogContext, seen: set[str],
                  seen_gtins: dict[str, str], report: ImportReport, *, write: bool, digest: Any) -> None:
    skus = []
    for line, row in batch:
        sku = row.get("sku", "")
        if sku and sku in seen:  # a row without one is told it is required, not that it repeats
            report.add(line, "sku", f"sku {sku} appears more than once in the file", "duplicate")
            row["__dup__"] = "1"
        seen.add(sku)
        skus.append(sku)
    existing = get_products_by_sku(uow, [s for s in skus if s])
    new_rows: list[dict[str, Any]] = []
    changes: list[tuple[int, Product, dict[str, Any]]] = []
    barcodes: list[tuple[int, str, str]] = []  # (line, gtin, sku) of the rows that set one
    for line, row in batch:
        if row.pop("__dup__", None):
            continue
        data = {_FIELD.get(k, k): v for k, v in row.items()}
        product = existing.get(row.get("sku", ""))
        values, errors = clean_product(data, ctx, partial=product is not None, current=product)
        if errors:
            report.add_field_errors(line, errors, _COLUMN)
            continue
        if product is None:
            new_rows.append(values)
            if values.get("gtin"):
                barcodes.append((line, values["gtin"], values["sku"]))
            continue
        diff = {k: v for k, v in values.items() if getattr(product, k) != v}
        if diff:
            changes.append((line, product, diff))
            if diff.get("gtin"):
                barcodes.append((line, diff["gtin"], product.sku))
        else:
            report.unchanged += 1
    _check_barcodes(uow, barcodes, seen_gtins, report)
    if not write or not report.ok:
        report.created += len(new_rows)
        report.updated += len(changes)
        return
    now = clock.now()
    records = []
    for values in new_rows:
        record = {**_DEFAULTS, **{k: v for k, v in values.items() if v is not None or k not in _DEFAULTS}}
        record.update(id=new_id(), tenant_id=uow.tenant_id, version=1, created_at=now, updated_at=now)
        record["status"] = str(record["status"])
        records.append(record)
        digest.update(record["sku"].encode())
    if records:
        uow.session.execute(insert(Product), records)
        record_events(uow, [(events.ProductCreated(
            product_id=str(r["id"]), sku=r["sku"], name=r["name"], status=r["status"], unit=r["unit"],
            list_price=format_price(r["list_price"], r["currency"]), currency=r["currency"]), f"product/{r['id']}")
            for r in records])
    report.created += len(records)
    for line, product, diff in changes:
        try:
            update_product(uow, product.id, {k: v for k, v in diff.items()}, ctx=ctx, product=product)
        except DomainError as exc:  # the row checked clean but the update refuses it: the row's error
            report.add_refusal(line, exc, _COLUMN)
            continue
        digest.update(product.sku.encode())
        report.updated += 1


def _check_barcodes(uow: UnitOfWork, barcodes: list[tuple[int, str, str]], seen: dict[str, str],
                    report: ImportReport) -> None:
    """One product per barcode: not two rows of the file, nor a row and another product already kept."""
    if barcodes:
        hold_barcodes(uow)
    held = products_by_gtin(uow, {gtin for _, gtin, _ in barcodes})
    for line, gtin, sku in barcodes:
        if seen.setdefault(gtin, sku) != sku:
            report.add(line, "gtin", f"barcode {gtin} is also on {seen[gtin]} in the file", "duplicate")
        elif gtin in held and held[gtin][1] != sku:
            report.add(line, "gtin", f"barcode {gtin} is already on product {held[gtin][1]}", "conflict")


def export_products(uow: UnitOfWork, stream: IO[str], *, include_archived: bool = False,
                    progress: Progress | None = None) -> int:
    """Write products as CSV with the import's columns (archived ones only when asked)."""
    codes = dict(uow.session.execute(select(Category.id, Category.code)).all())
    query = select(Product).order_by(Product.sku)
    if not include_archived:
        query = query.where(Product.archived_at.is_(None))

    def rows() -> Iterator[dict[str, Any]]:
        for n, p in enumerate(uow.session.scalars(query.execution_options(yield_per=1000)), 1):
            row = {c: getattr(p, _FIELD.get(c, c)) for c in PRODUCT_COLUMNS}
            row["category"] = codes.get(p.category_id) if p.category_id else None
            if progress and n % 1000 == 0:
                progress(1000)
            yield row

    return write_rows(stream, PRODUCT_COLUMNS, rows())


