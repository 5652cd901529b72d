"""Bulk import and export of price lists: one CSV row per entry (tier).

Columns: the list's header (code, name, currency, kind, priority, scope,
customer_group, customer_code, channel, valid_from, valid_to,
prices_include_tax — true, false or empty for the tenant's basis) repeated on each
row of the list, and the entry (sku or category, method, value, min_quantity,
max_quantity). A list is upserted by code; when its entries in the file differ
from the stored ones they replace them (overlapping tiers are refused).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal
from typing import IO, Any

from sqlalchemy import select

from entrepot.catalog.csvio import ImportReport, Progress, read_rows, write_rows
from entrepot.catalog.models import Category, Product
from entrepot.catalog.service import get_products_by_sku
from entrepot.db import in_lists
from entrepot.db.uow import UnitOfWork
from entrepot.kernel.errors import DomainError, ValidationFailed
from entrepot.parties.models import Customer
from entrepot.pricing.models import PriceList, PriceListEntry
from entrepot.pricing.service import (
    add_price_list_entries,
    clean_entry,
    clean_price_list,
    create_price_list,
    update_price_list,
)

HEADER_COLUMNS = ("code", "name", "currency", "kind", "priority", "scope", "customer_group", "customer_code",
                  "channel", "valid_from", "valid_to", "prices_include_tax")
ENTRY_COLUMNS = ("sku", "category", "method", "value", "min_quantity", "max_quantity")
PRICE_LIST_COLUMNS = HEADER_COLUMNS + ENTRY_COLUMNS
_ENTRY_FIELD = re.compile(r"entries\[(\d+)\]\.(\w+)")
# a list's field → the file's column, where they differ (its customer travels by code)
_HEADER_COLUMN = {"customer_id": "customer_code"}


def _entry_key(e: dict[str, Any]) -> tuple[Any, ...]:
    return (e["product_id"], e["category_id"], str(e["method"]), Decimal(e["value"]), Decimal(e["min_quantity"]),
            Decimal(e["max_quantity"]) if e["max_quantity"] is not None else None)


def import_price_lists(uow: UnitOfWork, stream: IO[str], *, dry_run: bool = False,
                       progress: Progress | None = None) -> ImportReport:
    report = ImportReport("price_lists", dry_run=dry_run)
    categories = dict(uow.session.execute(select(Category.code, Category.id)).all())
    customers = dict(uow.session.execute(select(Customer.code, Customer.id)).all())
    groups: dict[str, dict[str, Any]] = {}
    rows = list(read_rows(stream, report, columns=PRICE_LIST_COLUMNS, required=("code",)))
    products = {s: p.id for s, p in get_products_by_sku(uow, {r["sku"] for _, r in rows if r.get("sku")}).items()}
    for line, row in rows:
        code = row.get("code", "")
        header = {k: row[k] for k in HEADER_COLUMNS if k in row and k != "code"}
        group = groups.setdefault(code, {"line": line, "header": header, "entries": [], "lines": []})
        for k, v in header.items():
            if v and group["header"].get(k) and group["header"][k] != v:
                report.add(line, k, f"differs from the first row of price list {code}", "consistent")
            elif v and not group["header"].get(k):
                group["header"][k] = v
        if not row.get("sku") and not row.get("category"):
            continue  # a header-only row: a list without entries
        entry: dict[str, Any] = {k: row.get(k) for k in ("method", "value", "min_quantity", "max_quantity")}
        if row.get("sku"):
            if row["sku"] not in products:
                report.add(line, "sku", f"no product {row['sku']!r}", "exists")
                continue
            entry["product_id"] = products[row["sku"]]
        if row.get("category"):
            if row["category"] not in categories:
                report.add(line, "category", f"no category {row['category']!r}", "exists")
                continue
            entry["category_id"] = categories[row["category"]]
        values, errors = clean_entry(entry)
        if errors:
            report.add_field_errors(line, errors, {"product_id": "sku", "category_id": "category"})
            continue
        group["entries"].append(values)
        group["lines"].append(line)
    if progress:
        progress(len(rows))
    existing = {p.code: p for codes in in_lists.slices(groups)
                for p in uow.session.scalars(select(PriceList).where(PriceList.code.in_(codes)))}
    for code, group in groups.items():
        data: dict[str, Any] = {k: v for k, v in group["header"].items() if k != "customer_code"}
        data = {k: (v if v != "" else None) for k, v in data.items()}
        if group["header"].get("customer_code"):
            cust = customers.get(group["header"]["customer_code"])
            if cust is None:
                report.add(group["line"], "customer_code", f"no customer {group['header']['customer_code']!r}",
                           "exists")
                continue
            data["customer_id"] = cust
        data["code"] = code
        current = existing.get(code)
        # An empty cell leaves an existing list's field as it is, but for the tax basis it means
        # "the tenant's basis", which export writes as empty: a null to set, not a cell to skip.
        partial = {k: v for k, v in data.items()
                   if k != "code" and (current is None or v is not None or k == "prices_include_tax")}
        values, errors = clean_price_list(uow, {"code": code, **partial} if current is None else partial,
                                          current=current)
        if errors:
            report.add_field_errors(group["line"], errors, _HEADER_COLUMN)
            continue
        entries = group["entries"]
        if current is not None:
            head_diff = {k: v for k, v in values.items() if getattr(current, k) != v}
            stored = [{"product_id": e.product_id, "category_id": e.category_id, "method": e.method,
                       "value": e.value, "min_quantity": e.min_quantity, "max_quantity": e.max_quantity}
                      for e in uow.session.scalars(select(PriceListEntry)
                                                   .where(PriceListEntry.price_list_id == current.id))]
            same_entries = sorted(map(_entry_key, stored), key=repr) == sorted(map(_entry_key, entries), key=repr)
            if not head_diff and same_entries:
                report.unchanged += 1
                continue
        if not report.ok:
            report.created += current is None
            report.updated += current is not None
            continue
        try:  # a dry run writes too, to meet every check the services make; the caller rolls it back
            if current is None:
                create_price_list(uow, {**{k: v for k, v in data.items() if v is not None}, "entries": entries})
                report.created += 1
            else:
                if head_diff:
                    update_price_list(uow, current.id, {k: data[k] for k in head_diff if k in data},
                                      price_list=current)
                if not same_entries:
                    add_price_list_entries(uow, current.id, entries, replace=True)
                report.updated += 1
        except ValidationFailed as exc:
            for e in exc.errors:
                # "entries[3].min_quantity" → the row of the fourth entry, column min_quantity
                entry = _ENTRY_FIELD.fullmatch(e.field)
                if entry:
                    report.add(group["lines"][int(entry[1])], entry[2], e.message, e.rule)
                else:
                    report.add(group["line"], _HEADER_COLUMN.get(e.field, e.field), e.message, e.rule)
        except DomainError as exc:
            report.add(group["line"], "", exc.detail, exc.code)
    return report


def export_price_lists(uow: UnitOfWork, stream: IO[str]) -> int:
    lists = list(uow.session.scalars(select(PriceList).where(PriceList.archived_at.is_(None))
                                     .order_by(PriceList.code)))
    entries: dict[Any, list[PriceListEntry]] = {}
    for e in uow.session.scalars(select(PriceListEntry).order_by(PriceListEntry.min_quantity)):
        entries.setdefault(e.price_list_id, []).append(e)
    # the skus of the entries' products, selected with them rather than listed (a list can price
    # more products than a statement takes parameters)
    skus = dict(uow.session.execute(select(Product.id, Product.sku).where(Product.id.in_(
        select(PriceListEntry.product_id).where(PriceListEntry.product_id.is_not(None))))).all())
    cats = dict(uow.session.execute(select(Category.id, Category.code)).all())
    custs = dict(uow.session.execute(select(Customer.id, Customer.code)).all())

    def rows() -> Iterator[dict[str, Any]]:
        for pl in lists:
            head = {c: getattr(pl, c, None) for c in HEADER_COLUMNS}
            head["customer_code"] = custs.get(pl.customer_id) if pl.customer_id else None
            mine = entries.get(pl.id, [])
            if not mine:
                yield head
            for e in mine:
                yield {**head, "sku": skus.get(e.product_id) if e.product_id else None,
                       "category": cats.get(e.category_id) if e.category_id else None, "method": e.method,
                       "value": e.value, "min_quantity": e.min_quantity, "max_quantity": e.max_quantity}

    return write_rows(stream, PRICE_LIST_COLUMNS, rows())
