"""Catalog use cases: products, categories, units of measure and channel listings.

Other domains read products through `get_product`, `get_products` and
`price_basis`; they never query the catalog tables themselves.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Select, String, bindparam, or_, select, type_coerce

from entrepot.catalog import events
from entrepot.catalog.models import (
    Category,
    ChannelListing,
    Product,
    ProductStatus,
    UnitConversion,
    UnitOfMeasure,
)
from entrepot.catalog.rules import (
    check_amount,
    check_bool,
    check_code,
    check_currency,
    check_gtin,
    check_text,
)
from entrepot.catalog.states import PRODUCT_STATUS, action_to
from entrepot.db import in_lists
from entrepot.db.prepared import Prepared, PreparedIn
from entrepot.db.row_locks import hold_row, hold_tenant_key
from entrepot.db.search import contains_text
from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.audit import audit, snapshot
from entrepot.integration.archival import archive_record, refuse_archived
from entrepot.integration.outbox import record_event
from entrepot.kernel.errors import Conflict, FieldError, NotFound, UnknownRecord, ValidationFailed, invalid, reference
from entrepot.kernel.money import format_price

# Units every tenant starts with (provisioning.py); tenants add their own.
DEFAULT_UNITS = {"each": "Each", "box": "Box", "case": "Case", "pallet": "Pallet", "kg": "Kilogram",
                 "m": "Metre", "l": "Litre"}
BASE_UNIT = "each"

PRODUCT_FIELDS = (
    "sku", "name", "description", "status", "category_id", "unit", "sales_unit", "purchase_unit", "gtin",
    "weight_kg", "length_cm", "width_cm", "height_cm", "tax_class", "track_lots", "track_serials",
    "list_price", "currency", "standard_cost",
)


class ProductNotSellable(Conflict):
    code = "product_not_sellable"
    title = "Product cannot be sold"


# ---------------------------------------------------------------- reading


def get_product(uow: UnitOfWork, product_id: uuid.UUID) -> Product:
    product = uow.session.get(Product, _as_uuid(product_id, "product"))
    if product is None:
        raise NotFound("product", product_id)
    return product


def get_products(uow: UnitOfWork, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, Product]:
    """Products by id in one query (per `in_lists.MAX_IN_LIST` ids); NotFound names the first missing id."""
    wanted = list(dict.fromkeys(_as_uuid(i, "product") for i in ids))
    found: dict[uuid.UUID, Product] = {}
    for chunk in in_lists.slices(wanted):
        found.update((p.id, p) for p in uow.session.scalars(select(Product).where(Product.id.in_(chunk))))
    for product_id in wanted:
        if product_id not in found:
            raise NotFound("product", product_id)
    return found


class OrderProduct(NamedTuple):
    """What order entry reads of a product: sellability, the order line's copy (sku, name,
    tax class, weight) and the pricing engine's basis (engine.PricedProduct)."""

    id: uuid.UUID
    sku: str
    name: str
    status: str
    archived_at: datetime | None
    category_id: uuid.UUID | None
    list_price: Decimal
    currency: str
    standard_cost: Decimal
    tax_class: str
    weight_kg: Decimal | None


_ORDER_PRODUCT_COLUMNS = tuple(Product.__table__.c[f] for f in OrderProduct._fields)
# Prepared statements get no automatic tenant filter: it says tenant_id itself.
_ORDER_PRODUCTS = PreparedIn(lambda in_: select(*_ORDER_PRODUCT_COLUMNS).where(
    Product.__table__.c.tenant_id == bindparam("tenant_id"), in_(Product.__table__.c.id, "ids")))
_ORDER_PRODUCTS_MAX = 256


def order_products(uow: UnitOfWork, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, OrderProduct]:
    """The products of an order's lines, by id, in one prepared statement (per 256 products);
    NotFound names the first missing id. Another tenant's product is NotFound."""
    wanted = list(dict.fromkeys(_as_uuid(i, "product") for i in ids))
    found: dict[uuid.UUID, OrderProduct] = {}
    for chunk in in_lists.slices(wanted, _ORDER_PRODUCTS_MAX):
        for r in _ORDER_PRODUCTS.execute(uow, {"tenant_id": uow.tenant_id}, ids=chunk):
            found[r[0]] = OrderProduct(*r)
    for product_id in wanted:
        if product_id not in found:
            raise NotFound("product", product_id)
    return found


def find_product_by_sku(uow: UnitOfWork, sku: str) -> Product | None:
    return uow.session.scalar(select(Product).where(Product.sku == sku))


def hold_barcodes(uow: UnitOfWork) -> None:
    """Barcodes are given out one transaction at a time in a tenant (PostgreSQL): two products created at
    once with one barcode would each find it free. Held until the transaction ends."""
    hold_tenant_key(uow, "catalog.gtin")


def products_by_gtin(uow: UnitOfWork, gtins: Iterable[str]) -> dict[str, tuple[uuid.UUID, str]]:
    """The products (id, sku) that carry these barcodes, archived ones apart: a scanned barcode names
    one product."""
    found: dict[str, tuple[uuid.UUID, str]] = {}
    for chunk in in_lists.slices(list(gtins), 500):
        found.update({g: (pid, sku) for g, pid, sku in uow.session.execute(
            select(Product.gtin, Product.id, Product.sku).where(Product.gtin.in_(chunk),
                                                                Product.archived_at.is_(None)))})
    return found


def _refuse_taken_gtin(uow: UnitOfWork, gtin: str | None, product_id: uuid.UUID | None = None) -> None:
    if gtin is None:
        return
    hold_barcodes(uow)
    holder = products_by_gtin(uow, [gtin]).get(gtin)
    if holder is not None and holder[0] != product_id:
        raise Conflict(f"barcode {gtin} is already on product {holder[1]}", field="gtin")


def get_products_by_sku(uow: UnitOfWork, skus: Iterable[str]) -> dict[str, Product]:
    found: dict[str, Product] = {}
    for chunk in in_lists.slices(skus, 500):
        found.update({p.sku: p for p in uow.session.scalars(select(Product).where(Product.sku.in_(chunk)))})
    return found


def ensure_sellable(product: Product | OrderProduct) -> None:
    """Raise unless the product can be put on a new order (active, not archived)."""
    if product.archived_at is not None or product.status != ProductStatus.ACTIVE:
        state = "archived" if product.archived_at is not None else str(product.status)
        raise ProductNotSellable(f"product {product.sku} is {state} and cannot be sold", sku=product.sku)


class PriceBasis(NamedTuple):
    """What the pricing engine needs of a product (read without loading ORM objects;
    a tuple because a priced order builds a thousand of them)."""

    id: uuid.UUID
    sku: str
    status: str
    category_id: uuid.UUID | None
    list_price: Decimal
    currency: str
    standard_cost: Decimal
    archived: bool


def price_basis(uow: UnitOfWork, ids: Iterable[uuid.UUID]) -> dict[uuid.UUID, PriceBasis]:
    """One query for many products; NotFound names the first missing id."""
    wanted = list(dict.fromkeys(_as_uuid(i, "product") for i in ids))
    if not wanted:
        return {}
    found: dict[uuid.UUID, PriceBasis] = {}
    if uow.session.get_bind().dialect.name == "sqlite":
        # SQLite keeps UUIDs as 32-character hex text: matching and returning the text skips
        # building thousands of uuid.UUID objects per priced order (a third of this query).
        by_hex = {i.hex: i for i in wanted}
        key = type_coerce(Product.id, String)
        category_key = type_coerce(Product.category_id, String)
        categories: dict[str, uuid.UUID] = {}
        for r in uow.session.execute(
            select(key, Product.sku, Product.status, category_key, Product.list_price, Product.currency,
                   Product.standard_cost, Product.archived_at.is_not(None)).where(key.in_(list(by_hex)))
        ):
            category_id = None
            if r[3] is not None:
                category_id = categories.get(r[3]) or categories.setdefault(r[3], uuid.UUID(hex=r[3]))
            product_id = by_hex[r[0]]
            found[product_id] = PriceBasis(product_id, r[1], str(r[2]), category_id, r[4], r[5], r[6], bool(r[7]))
    else:
        for r in uow.session.execute(
            select(Product.id, Product.sku, Product.status, Product.category_id, Product.list_price,
                   Product.currency, Product.standard_cost, Product.archived_at.is_not(None))
            .where(Product.id.in_(wanted))
        ):
            found[r[0]] = PriceBasis(r[0], r[1], str(r[2]), r[3], r[4], r[5], r[6], bool(r[7]))
    for product_id in wanted:
        if product_id not in found:
            raise NotFound("product", product_id)
    return found


def category_parents(uow: UnitOfWork) -> dict[uuid.UUID, uuid.UUID | None]:
    """The whole category tree as child → parent (category trees are small)."""
    return dict(uow.session.execute(select(Category.id, Category.parent_id)).all())


def category_path(parents: Mapping[uuid.UUID, uuid.UUID | None], category_id: uuid.UUID | None) -> list[uuid.UUID]:
    """The category and its ancestors, nearest first."""
    path: list[uuid.UUID] = []
    while category_id is not None and category_id not in path:
        path.append(category_id)
        category_id = parents.get(category_id)
    return path


def product_query(*, q: str | None = None, status: str | None = None, category_id: uuid.UUID | None = None,
                  include_archived: bool = False) -> Select[Any]:
    """The list/search query behind GET /products (filters, search by sku or name)."""
    query = select(Product)
    if not include_archived:
        query = query.where(Product.archived_at.is_(None))
    if status:
        if status not in set(ProductStatus):
            raise invalid("status", f"one of {', '.join(ProductStatus)}", "enum")
        query = query.where(Product.status == status)
    if category_id:
        query = query.where(Product.category_id == category_id)
    if q:
        query = query.where(or_(contains_text(Product.sku, q), contains_text(Product.name, q)))
    return query


# ---------------------------------------------------------------- validation


@dataclass
class CatalogContext:
    """Reference data a batch of products is checked against, loaded once."""

    units: set[str]
    category_ids: set[uuid.UUID]
    category_by_code: dict[str, uuid.UUID] = field(default_factory=dict)
    archived_categories: set[uuid.UUID] = field(default_factory=set)

    @classmethod
    def load(cls, uow: UnitOfWork) -> CatalogContext:
        units = set(uow.session.scalars(select(UnitOfMeasure.code))) | {BASE_UNIT}
        cats = uow.session.execute(select(Category.id, Category.code, Category.archived_at)).all()
        return cls(units, {c[0] for c in cats}, {c[1]: c[0] for c in cats}, {c[0] for c in cats if c[2]})


def clean_product(data: Mapping[str, Any], ctx: CatalogContext, *, partial: bool = False,
                  current: Product | None = None) -> tuple[dict[str, Any], list[FieldError]]:
    """Check and normalise product fields; returns the values and every problem found. `current` is
    the product being changed, if any: it may stay in a category archived since."""
    errors: list[FieldError] = []
    out: dict[str, Any] = {}
    unknown = set(data) - set(PRODUCT_FIELDS)
    for name in sorted(unknown):
        errors.append(FieldError(name, "is not a product field", "unknown_field"))

    def has(name: str) -> bool:
        return (name in data) if partial else True

    if has("sku"):
        out["sku"] = check_code(errors, "sku", data.get("sku"))
    if has("name"):
        out["name"] = check_text(errors, "name", data.get("name"))
    if "description" in data:
        out["description"] = check_text(errors, "description", data.get("description"), required=False,
                                        max_length=10000) or ""
    if "status" in data and data["status"] not in (None, ""):
        if data["status"] not in set(ProductStatus):
            errors.append(FieldError("status", f"one of {', '.join(ProductStatus)}", "enum"))
        else:
            out["status"] = ProductStatus(data["status"])
    if "category_id" in data:
        cat = data.get("category_id")
        if cat in (None, ""):
            out["category_id"] = None
        else:
            try:
                cat_id = cat if isinstance(cat, uuid.UUID) else uuid.UUID(str(cat))
            except ValueError:
                cat_id = ctx.category_by_code.get(str(cat))
            if cat_id is None or cat_id not in ctx.category_ids:
                errors.append(UnknownRecord("category_id", f"no category {cat}"))
            elif cat_id in ctx.archived_categories and (current is None or current.category_id != cat_id):
                errors.append(FieldError("category_id", f"category {cat} is archived", "archived"))
            else:
                out["category_id"] = cat_id
    for unit_field in ("unit", "sales_unit", "purchase_unit"):
        if unit_field in data or (unit_field == "unit" and not partial):
            value = data.get(unit_field)
            if value in (None, ""):
                if unit_field == "unit":
                    if partial:
                        errors.append(FieldError("unit", "is required", "required"))
                    out["unit"] = BASE_UNIT
                else:
                    out[unit_field] = None
            elif str(value) not in ctx.units:
                errors.append(FieldError(unit_field, f"unknown unit {value!r}", "unit"))
            else:
                out[unit_field] = str(value)
    if "gtin" in data:
        out["gtin"] = check_gtin(errors, "gtin", data.get("gtin"))
    for dim in ("weight_kg", "length_cm", "width_cm", "height_cm"):
        if dim in data:
            out[dim] = check_amount(errors, dim, data.get(dim), required=False)
    if "tax_class" in data:
        out["tax_class"] = check_text(errors, "tax_class", data.get("tax_class"), required=False,
                                      max_length=40) or "standard"
    for flag in ("track_lots", "track_serials"):
        if flag in data:
            value = check_bool(errors, flag, data.get(flag))
            out[flag] = bool(value)
    if has("list_price"):
        out["list_price"] = check_amount(errors, "list_price", data.get("list_price"))
    if has("currency"):
        out["currency"] = check_currency(errors, "currency", data.get("currency"))
    if "standard_cost" in data:
        out["standard_cost"] = check_amount(errors, "standard_cost", data.get("standard_cost"), required=False)
        if out["standard_cost"] is None:
            out["standard_cost"] = Decimal("0")
    return out, errors


# ---------------------------------------------------------------- products


def _hold_category(uow: UnitOfWork, data: Mapping[str, Any]) -> None:
    """A product is being put in a category: hold the category's row (FOR KEY SHARE, PostgreSQL) before
    reading whether it is archived, so an archive (FOR UPDATE) either waits for the product or is seen.
    SQLite serialises writers and needs no lock."""
    raw = data.get("category_id")
    if raw in (None, ""):
        return
    try:
        category_id = raw if isinstance(raw, uuid.UUID) else uuid.UUID(str(raw))
    except ValueError:
        return  # a code, or nothing: the check that follows names it
    hold_row(uow, Category, category_id)


def create_product(uow: UnitOfWork, data: Mapping[str, Any], *, ctx: CatalogContext | None = None) -> Product:
    _hold_category(uow, data)
    values, errors = clean_product(data, ctx or CatalogContext.load(uow))
    if errors:
        raise ValidationFailed(errors)
    if find_product_by_sku(uow, values["sku"]) is not None:
        raise Conflict(f"a product with sku {values['sku']} already exists", field="sku")
    _refuse_taken_gtin(uow, values.get("gtin"))
    status = values.pop("status", ProductStatus.ACTIVE)
    product = Product(**values, status=status)
    uow.session.add(product)
    uow.session.flush()
    audit(uow, "product.create", "product", product.id, after=snapshot(product))
    record_event(uow, _created_event(product), subject=f"product/{product.id}")
    return product


def _created_event(product: Product) -> events.ProductCreated:
    return events.ProductCreated(
        product_id=str(product.id), sku=product.sku, name=product.name, status=str(product.status),
        unit=product.unit, list_price=format_price(product.list_price, product.currency), currency=product.currency,
    )


def update_product(uow: UnitOfWork, product_id: uuid.UUID, changes: Mapping[str, Any], *,
                   ctx: CatalogContext | None = None, product: Product | None = None) -> Product:
    """Change some fields. A status change goes through the product status machine."""
    product = product or get_product(uow, product_id)
    refuse_archived(product, "product")
    _hold_category(uow, changes)
    values, errors = clean_product(changes, ctx or CatalogContext.load(uow), partial=True, current=product)
    if values.get("unit", product.unit) != product.unit:
        factor = uow.session.scalar(select(UnitConversion.factor).where(
            UnitConversion.product_id == product.id, UnitConversion.unit == values["unit"]))
        if factor is not None:  # the base unit converts to itself (factor 1), as set_unit_conversion holds
            errors.append(FieldError("unit", f"one {values['unit']} of {product.sku} holds {factor} {product.unit}; "
                                     "it cannot be the base unit", "base_unit"))
    if errors:
        raise ValidationFailed(errors)
    if "sku" in values and values["sku"] != product.sku:
        other = find_product_by_sku(uow, values["sku"])
        if other is not None:
            raise Conflict(f"a product with sku {values['sku']} already exists", field="sku")
    if values.get("gtin") is not None and values["gtin"] != product.gtin:
        _refuse_taken_gtin(uow, values["gtin"], product.id)
    before = snapshot(product)
    target = values.pop("status", None)
    if target is not None:
        action = action_to(product.status, target)
        if action:
            PRODUCT_STATUS.apply(product, action)
    for name, value in values.items():
        if getattr(product, name) != value:
            setattr(product, name, value)
    return _finish_update(uow, product, before)


def _finish_update(uow: UnitOfWork, product: Product, before: dict[str, Any]) -> Product:
    after = snapshot(product)
    changed = {k: after[k] for k in after if after[k] != before.get(k) and k not in ("updated_at", "version")}
    if not changed:
        return product
    uow.session.flush()
    after = snapshot(product)
    audit(uow, "product.update", "product", product.id, before=before, after=after)
    record_event(uow, events.ProductUpdated(product_id=str(product.id), sku=product.sku, changes=changed),
                 subject=f"product/{product.id}")
    return product


def change_product_status(uow: UnitOfWork, product_id: uuid.UUID, action: str) -> Product:
    """discontinue / block / reactivate, as the status machine allows."""
    product = get_product(uow, product_id)
    refuse_archived(product, "product")
    before = snapshot(product)
    PRODUCT_STATUS.apply(product, action)
    return _finish_update(uow, product, before)


def archive_product(uow: UnitOfWork, product_id: uuid.UUID) -> Product:
    """Soft-archive: the product leaves lists and new documents; old documents keep it."""
    product = get_product(uow, product_id)
    return archive_record(uow, product, "product", events.ProductArchived(product_id=str(product.id), sku=product.sku))


# ---------------------------------------------------------------- categories


def get_category(uow: UnitOfWork, category_id: uuid.UUID) -> Category:
    category = uow.session.get(Category, _as_uuid(category_id, "category"))
    if category is None:
        raise NotFound("category", category_id)
    return category


def _clean_category(uow: UnitOfWork, data: Mapping[str, Any], *, partial: bool,
                    current: Category | None = None) -> dict[str, Any]:
    errors: list[FieldError] = []
    out: dict[str, Any] = {}
    if not partial or "code" in data:
        out["code"] = check_code(errors, "code", data.get("code"))
    if not partial or "name" in data:
        out["name"] = check_text(errors, "name", data.get("name"))
    if "parent_id" in data:
        parent = data.get("parent_id")
        if parent in (None, ""):
            out["parent_id"] = None
        else:
            parent_id = _as_uuid(parent, "category", field="parent_id")
            parents = category_parents(uow)
            if parent_id not in parents:
                errors.append(UnknownRecord("parent_id", f"no category {parent}"))
            elif current is not None and current.id in category_path(parents, parent_id):
                errors.append(FieldError("parent_id", "a category cannot sit under itself", "cycle"))
            elif (current is None or current.parent_id != parent_id) and get_category(uow, parent_id).archived_at:
                errors.append(FieldError("parent_id", f"category {parent} is archived", "archived"))
            else:
                out["parent_id"] = parent_id
    if errors:
        raise ValidationFailed(errors)
    return out


def create_category(uow: UnitOfWork, data: Mapping[str, Any]) -> Category:
    values = _clean_category(uow, data, partial=False)
    if uow.session.scalar(select(Category.id).where(Category.code == values["code"])) is not None:
        raise Conflict(f"a category with code {values['code']} already exists", field="code")
    category = Category(**values)
    uow.session.add(category)
    uow.session.flush()
    audit(uow, "category.create", "category", category.id, after=snapshot(category))
    record_event(uow, events.CategoryCreated(
        category_id=str(category.id), code=category.code, name=category.name,
        parent_id=str(category.parent_id) if category.parent_id else None), subject=f"category/{category.id}")
    return category


def update_category(uow: UnitOfWork, category_id: uuid.UUID, changes: Mapping[str, Any]) -> Category:
    category = get_category(uow, category_id)
    refuse_archived(category, "category")
    values = _clean_category(uow, changes, partial=True, current=category)
    if "code" in values and values["code"] != category.code and uow.session.scalar(
            select(Category.id).where(Category.code == values["code"])) is not None:
        raise Conflict(f"a category with code {values['code']} already exists", field="code")
    before = snapshot(category)
    for name, value in values.items():
        setattr(category, name, value)
    uow.session.flush()
    after = snapshot(category)
    changed = {k: after[k] for k in values if after[k] != before.get(k)}
    if changed:
        audit(uow, "category.update", "category", category.id, before=before, after=after)
        record_event(uow, events.CategoryUpdated(category_id=str(category.id), code=category.code,
                                                 changes=changed), subject=f"category/{category.id}")
    return category


def archive_category(uow: UnitOfWork, category_id: uuid.UUID) -> Category:
    category = get_category(uow, category_id)
    # waits for products being put in it (`_hold_category`): they are in before it is archived
    uow.session.execute(select(Category.id).where(Category.id == category.id).with_for_update())
    return archive_record(uow, category, "category",
                          events.CategoryArchived(category_id=str(category.id), code=category.code))


# ---------------------------------------------------------------- units of measure


def ensure_default_units(uow: UnitOfWork) -> None:
    existing = set(uow.session.scalars(select(UnitOfMeasure.code)))
    for code, name in DEFAULT_UNITS.items():
        if code not in existing:
            uow.session.add(UnitOfMeasure(code=code, name=name))
    uow.session.flush()


def list_units(uow: UnitOfWork) -> list[UnitOfMeasure]:
    return list(uow.session.scalars(select(UnitOfMeasure).order_by(UnitOfMeasure.code)))


def create_unit(uow: UnitOfWork, *, code: str, name: str) -> UnitOfMeasure:
    errors: list[FieldError] = []
    clean_code = check_code(errors, "code", code)
    clean_name = check_text(errors, "name", name, max_length=100)
    if errors:
        raise ValidationFailed(errors)
    if uow.session.scalar(select(UnitOfMeasure.id).where(UnitOfMeasure.code == clean_code)) is not None:
        raise Conflict(f"a unit with code {clean_code} already exists", field="code")
    unit = UnitOfMeasure(code=clean_code, name=clean_name)
    uow.session.add(unit)
    uow.session.flush()
    audit(uow, "unit.create", "unit", unit.id, after=snapshot(unit))
    return unit


def set_unit_conversion(uow: UnitOfWork, product_id: uuid.UUID, *, unit: str, factor: Any) -> UnitConversion:
    """`factor` base units of the product make one `unit` (a box of 12: unit "box", factor 12)."""
    product = get_product(uow, product_id)
    errors: list[FieldError] = []
    amount = check_amount(errors, "factor", factor, positive=True)
    if unit not in CatalogContext.load(uow).units:
        errors.append(FieldError("unit", f"unknown unit {unit!r}", "unit"))
    elif unit == product.unit:
        errors.append(FieldError("unit", "the base unit converts to itself (factor 1)", "base_unit"))
    if errors:
        raise ValidationFailed(errors)
    conv = uow.session.scalar(select(UnitConversion).where(
        UnitConversion.product_id == product.id, UnitConversion.unit == unit))
    before = snapshot(conv) if conv else None
    if conv is None:
        conv = UnitConversion(product_id=product.id, unit=unit, factor=amount)
        uow.session.add(conv)
    else:
        conv.factor = amount  # type: ignore[assignment]
    uow.session.flush()
    audit(uow, "product.unit_conversion.set", "product", product.id, before=before, after=snapshot(conv))
    return conv


def unit_conversions(uow: UnitOfWork, product_id: uuid.UUID) -> list[UnitConversion]:
    get_product(uow, product_id)
    return list(uow.session.scalars(select(UnitConversion).where(UnitConversion.product_id == product_id)
                                    .order_by(UnitConversion.factor)))


def convert_quantity(uow: UnitOfWork, product_id: uuid.UUID, quantity: Decimal, from_unit: str,
                     to_unit: str | None = None) -> Decimal:
    """Convert a quantity of a product between its units (default: to its base unit)."""
    product = get_product(uow, product_id)
    target = to_unit or product.unit
    factors = {c.unit: c.factor for c in unit_conversions(uow, product.id)}
    factors[product.unit] = Decimal(1)
    for name, unit in (("from_unit", from_unit), ("to_unit", target)):
        if unit not in factors:
            raise invalid(name, f"product {product.sku} has no conversion for unit {unit!r}", "unit")
    return quantity * factors[from_unit] / factors[target]


# ---------------------------------------------------------------- channel catalogues


def list_channel_product(uow: UnitOfWork, *, channel: str, product_id: uuid.UUID,
                         customer_group: str | None = None) -> ChannelListing:
    errors: list[FieldError] = []
    clean_channel = check_code(errors, "channel", channel)
    if errors:
        raise ValidationFailed(errors)
    with reference("product_id"):
        product = get_product(uow, product_id)
    existing = uow.session.scalar(select(ChannelListing).where(
        ChannelListing.channel == clean_channel, ChannelListing.product_id == product.id,
        ChannelListing.customer_group.is_(None) if customer_group is None
        else ChannelListing.customer_group == customer_group))
    if existing is not None:
        return existing
    listing = ChannelListing(channel=clean_channel, product_id=product.id, customer_group=customer_group)
    uow.session.add(listing)
    uow.session.flush()
    audit(uow, "channel_listing.create", "channel_listing", listing.id, after=snapshot(listing))
    return listing


def get_channel_listing(uow: UnitOfWork, listing_id: uuid.UUID) -> ChannelListing:
    listing = uow.session.get(ChannelListing, _as_uuid(listing_id, "channel listing"))
    if listing is None:
        raise NotFound("channel listing", listing_id)
    return listing


def delist_channel_product(uow: UnitOfWork, listing_id: uuid.UUID) -> None:
    listing = get_channel_listing(uow, listing_id)
    audit(uow, "channel_listing.delete", "channel_listing", listing.id, before=snapshot(listing))
    uow.session.delete(listing)
    uow.session.flush()


_CL = ChannelListing.__table__
# Prepared statements get no automatic tenant filter: they say tenant_id themselves.
_CHANNEL_LISTINGS = PreparedIn(lambda in_: select(_CL.c.product_id, _CL.c.customer_group).where(
    _CL.c.tenant_id == bindparam("tenant_id"), _CL.c.channel == bindparam("channel"), in_(_CL.c.product_id, "ids")))
_CHANNEL_HAS_LISTINGS = Prepared(select(_CL.c.id).where(
    _CL.c.tenant_id == bindparam("tenant_id"), _CL.c.channel == bindparam("channel")).limit(1))


def sellable_in_channel(uow: UnitOfWork, product_ids: Iterable[uuid.UUID], *, channel: str,
                        customer_group: str | None = None) -> set[uuid.UUID]:
    """Which of the products may be sold in `channel` (to `customer_group`). A channel without
    any listing sells everything; otherwise a product needs a listing for all groups or this one.
    Prepared reads (order entry asks on every order with a channel): the products' listings, and
    only when none is found, whether the channel lists anything at all."""
    ids = list(dict.fromkeys(product_ids))
    if not ids:
        return set()
    uow.session.flush()  # listings the ORM still holds for this transaction count
    params = {"tenant_id": uow.tenant_id, "channel": channel}
    rows = _CHANNEL_LISTINGS.execute(uow, params, ids=ids)
    if not rows and not _CHANNEL_HAS_LISTINGS.execute(uow, params):
        return set(ids)
    return {pid for pid, group in rows if group is None or group == customer_group}


def _as_uuid(value: Any, entity: str, *, field: str | None = None) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        if field:
            raise invalid(field, f"{value!r} is not an id", "uuid") from exc
        raise NotFound(entity, value) from exc
