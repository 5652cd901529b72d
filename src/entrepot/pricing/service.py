"""Pricing use cases: price lists, tiers, contract prices, promotions, and the price engine.

`resolve_prices` prices many lines for one customer with a fixed number of
queries (customer, products, category tree, price lists, entries, contracts),
whatever the number of lines or rules. The resolution order is documented in
`entrepot.pricing.engine` and docs/master-data.md:

1. a valid contract price of the customer for the product wins outright;
2. else the applicable standard price list with the highest priority (ties: most
   specific scope customer > group > channel > all, then lower price, then code),
   its product tier covering the quantity, else its category tier (nearest
   category first); else the product's list price when in the customer's currency;
3. a promotion (date-bounded list) replaces that price when strictly lower;
4. else `NoPriceFound` (422).

`check_margin` is the margin guard order services call before accepting a price.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, bindparam, or_, select
from sqlalchemy.orm.attributes import flag_modified

from entrepot.catalog.rules import (
    check_amount,
    check_code,
    check_country,
    check_currency,
    check_date,
    check_int,
    check_period,
    check_text,
)
from entrepot.catalog.service import (
    ProductNotSellable,
    category_parents,
    ensure_sellable,
    get_products,
    price_basis,
    sellable_in_channel,
)
from entrepot.db import in_lists
from entrepot.db.prepared import Prepared
from entrepot.db.row_locks import hold_tenant_key
from entrepot.db.search import contains_text
from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.audit import audit, snapshot
from entrepot.identity.services.tenants import tenant_facts
from entrepot.integration.archival import archive_record, refuse_archived
from entrepot.integration.outbox import record_event
from entrepot.kernel import clock
from entrepot.kernel.errors import (
    Conflict,
    FieldError,
    NotFound,
    UnknownRecord,
    ValidationFailed,
    invalid,
    reference,
    unknown_in_lines,
)
from entrepot.kernel.money import InvalidAmount, format_price, to_decimal
from entrepot.parties.service import customer_facts, get_customer
from entrepot.pricing import events
from entrepot.pricing.engine import (
    HUNDRED,
    Buyer,
    ContractRule,
    EntryRule,
    EntryTable,
    ListIndex,
    ListRule,
    NoPriceFound,
    PriceBook,
    PricedProduct,
    PriceResolution,
    TaxBasis,
    list_applies,
)
from entrepot.pricing.models import (
    ContractPrice,
    PriceList,
    PriceListEntry,
    PriceListKind,
    PriceListScope,
    PriceMethod,
)
from entrepot.pricing.permissions import OVERRIDE

__all__ = [
    "MarginTooLow", "NoPriceFound", "PriceResolution", "check_margin", "minimum_margin", "resolve_prices",
]

PRICE_LIST_FIELDS = ("code", "name", "kind", "currency", "valid_from", "valid_to", "priority", "scope",
                     "customer_group", "customer_id", "channel", "prices_include_tax")
ENTRY_FIELDS = ("product_id", "category_id", "method", "value", "min_quantity", "max_quantity")
_CHUNK = 2000


class MarginTooLow(ValidationFailed):
    """A unit price below standard cost × (1 + the tenant's minimum margin)."""

    code = "margin_too_low"
    title = "Price below the minimum margin"

    def __init__(self, sku: str, unit_price: Decimal, floor: Decimal, field: str = "unit_price") -> None:
        super().__init__(FieldError(field, f"{unit_price} is below the minimum price {floor} for {sku} "
                                           f"(cost plus minimum margin); needs permission {OVERRIDE}",
                                    "margin_too_low"))
        self.sku = sku
        self.floor = floor


# ---------------------------------------------------------------- the engine


def why_not_sellable(uow: UnitOfWork, *, customer_id: uuid.UUID, product_ids: Sequence[uuid.UUID],
                     channel: str | None = None) -> dict[uuid.UUID, str | None]:
    """Per product, why an order for this customer (in `channel`) would refuse it — discontinued, archived,
    not listed in the channel for the customer's group — or None where it may be sold: a price quote says
    so, so a web shop does not offer what the order desk will refuse."""
    products = get_products(uow, product_ids)
    why: dict[uuid.UUID, str | None] = {}
    for pid, product in products.items():
        try:
            ensure_sellable(product)
            why[pid] = None
        except ProductNotSellable as exc:
            why[pid] = exc.detail
    if channel:
        group = customer_facts(uow, customer_id).customer_group
        listed = sellable_in_channel(uow, [pid for pid, w in why.items() if w is None], channel=channel,
                                     customer_group=group)
        for pid, w in why.items():
            if w is None and pid not in listed:
                why[pid] = f"product {products[pid].sku} is not listed in channel {channel}" + (
                    f" for customer group {group}" if group else "")
    return why


def resolve_prices(
    uow: UnitOfWork,
    *,
    customer_id: uuid.UUID,
    lines: Sequence[tuple[uuid.UUID, Decimal]],
    on: date | None = None,
    channel: str | None = None,
    products: Mapping[uuid.UUID, PricedProduct] | None = None,
    ship_to: tuple[str | None, str | None] | None = None,
) -> list[PriceResolution]:
    """Unit price, currency, winning rule and explanation for each (product, quantity) line.

    A caller that has already loaded the lines' products (catalog Products, by id) may pass them
    as `products`: reading a thousand products is most of the cost of pricing an order.
    `ship_to` (country, region) is where the document ships, for the tax rates that convert a
    list kept on the other tax basis; the customer's default ship-to when not given."""
    on = on or clock.today()
    errors = []
    clean: list[tuple[uuid.UUID, Decimal]] = []
    for i, (pid, qty) in enumerate(lines):
        # what an order line could hold: positive, at most 4 places, within storage
        quantity = check_amount(errors, f"lines[{i}].quantity", qty, positive=True)
        if quantity is not None:
            clean.append((pid, quantity))
    if errors:
        raise ValidationFailed(errors)
    with reference("customer_id"):
        customer = customer_facts(uow, customer_id)
    buyer = Buyer(customer.id, customer.currency, customer.customer_group)
    # The catalog's price basis has every field the engine reads (engine.PricedProduct).
    facts: Mapping[uuid.UUID, PricedProduct]
    try:
        if products is None:
            facts = price_basis(uow, [pid for pid, _ in clean])
        else:
            missing = [pid for pid, _ in clean if pid not in products]
            facts = {**products, **price_basis(uow, missing)} if missing else products
    except NotFound as exc:
        raise unknown_in_lines(exc, [pid for pid, _ in lines], "lines[{}].product_id") from exc
    book = load_price_book(uow, buyer=buyer, product_ids=facts.keys(), on=on, channel=channel,
                           categorised=any(p.category_id is not None for p in facts.values()))
    document_includes_tax = bool(tenant_facts(uow).settings.get("prices_include_tax", False))
    # a list on the other basis converts its fixed prices; on a tax-inclusive document a markup on cost
    # (a price before tax) has the tax added. The rates are asked only when a price needs one.
    if document_includes_tax or any(r.prices_include_tax not in (None, document_includes_tax)
                                    for r in book.lists.values()):
        where = ship_to if ship_to is not None else _default_jurisdiction(customer)
        book.tax_basis = TaxBasis(document_includes_tax,
                                  _rates_when_asked(uow, list(facts), where, on, buyer.currency))
    return book.resolve_many(buyer, facts, clean, on, channel)


def quote_ship_to(country: Any, region: Any) -> tuple[str | None, str | None] | None:
    """A price quote's optional ship-to (country, region), for the tax rates of a list on the other
    tax basis; None without a country (the customer's default ship-to then)."""
    errors: list[FieldError] = []
    code = check_country(errors, "ship_to_country", country, required=False)
    if region not in (None, "") and code is None and not errors:
        errors.append(FieldError("ship_to_region", "needs ship_to_country", "required"))
    where = check_text(errors, "ship_to_region", region, required=False, max_length=64) if region else None
    if errors:
        raise ValidationFailed(errors)
    return (code, where or None) if code else None


# Tax rates are billing's (a layer above pricing): billing/provisioning.py registers its lookup
# here when the domains are loaded (db.registry.load_all_models).
ProductTaxRates = Callable[[UnitOfWork, Sequence[uuid.UUID], str | None, str | None, date, str],
                           Mapping[uuid.UUID, Decimal]]
_product_tax_rates: ProductTaxRates | None = None


def use_product_tax_rates(lookup: ProductTaxRates) -> None:
    """Register the lookup of each product's tax rate (percent) at a ship-to country and region on a date."""
    global _product_tax_rates
    _product_tax_rates = lookup


def _default_jurisdiction(customer: Any) -> tuple[str | None, str | None]:
    address = customer.default_ship_to
    if address is None:
        return getattr(customer, "tax_country", None), None
    return address.country, address.region or None


def _rates_when_asked(uow: UnitOfWork, product_ids: list[uuid.UUID], where: tuple[str | None, str | None],
                      on: date, currency: str) -> Callable[[uuid.UUID], Decimal]:
    """Each product's tax rate, looked up for every product of the document on the first question."""
    rates: Mapping[uuid.UUID, Decimal] | None = None

    def rate(product_id: uuid.UUID) -> Decimal:
        nonlocal rates
        if rates is None:
            if _product_tax_rates is None:
                raise RuntimeError("a price list is on the other tax basis, and no tax rate lookup is registered "
                                   "(entrepot.billing.provisioning registers it; see db.registry.load_all_models)")
            rates = _product_tax_rates(uow, product_ids, where[0], where[1], on, currency)
        return rates.get(product_id, Decimal(0))

    return rate


# The two queries of every quote and order, prepared: the ORM's execution of them cost more than
# the rest of pricing. Prepared statements get no automatic tenant filter, so each says tenant_id.
_LISTS_IN_CURRENCY = Prepared(
    select(PriceList.id, PriceList.code, PriceList.kind, PriceList.currency, PriceList.priority, PriceList.scope,
           PriceList.customer_group, PriceList.customer_id, PriceList.channel, PriceList.valid_from,
           PriceList.valid_to, PriceList.version, PriceList.updated_at, PriceList.prices_include_tax)
    .where(PriceList.tenant_id == bindparam("tenant_id"), PriceList.archived_at.is_(None),
           PriceList.currency == bindparam("currency"))
)
_CONTRACTS_OF_CUSTOMER = Prepared(
    select(ContractPrice.id, ContractPrice.customer_id, ContractPrice.product_id, ContractPrice.unit_price,
           ContractPrice.currency, ContractPrice.valid_from, ContractPrice.valid_to)
    .where(ContractPrice.tenant_id == bindparam("tenant_id"), ContractPrice.customer_id == bindparam("customer_id"),
           ContractPrice.archived_at.is_(None))
)


def load_price_book(uow: UnitOfWork, *, buyer: Buyer, product_ids: Collection[uuid.UUID], on: date,
                    channel: str | None, categorised: bool) -> PriceBook:
    """Load the rules that can price these products for this buyer (a fixed number of queries);
    `categorised`: some of the products have a category (category entries may then apply).

    Entries are indexed per price list and cached in the process by (list id, version,
    updated_at): every entry change bumps its list's version in the same transaction, so a
    cached index is used only while the list is unchanged. The lists' indexes merged by
    product (`EntryTable`) are cached the same way, keyed by the stamps of every list merged."""
    list_rows = _LISTS_IN_CURRENCY.execute(uow, {"tenant_id": uow.tenant_id, "currency": buyer.currency})
    book_lists: list[ListRule] = []
    every: dict[uuid.UUID, tuple[ListRule, tuple[int, Any]]] = {}
    applicable: dict[uuid.UUID, tuple[ListRule, tuple[int, Any]]] = {}
    for r in list_rows:
        rule = ListRule(r[0], r[1], str(r[2]), r[3], r[4], str(r[5]), r[6], r[7], r[8], r[9], r[10], r[13])
        every[rule.id] = (rule, (r[11], r[12]))
        if _may_apply(rule, buyer, on, channel):
            book_lists.append(rule)
            applicable[rule.id] = every[rule.id]
    # With few lists in the currency, one table of all of them serves every customer, group and
    # channel (each order skips the lists that do not apply); with many, only this order's lists.
    table = _entry_table(uow, every if len(every) <= _ALL_LISTS else applicable)
    parents: Mapping[uuid.UUID, uuid.UUID | None] = {}
    if categorised and table.with_categories:
        parents = category_parents(uow)
    contracts = []
    # A customer's own contracts, filtered here: cheaper than an IN over every line's product.
    for r in _CONTRACTS_OF_CUSTOMER.execute(uow, {"tenant_id": uow.tenant_id, "customer_id": buyer.id}):
        if r[2] in product_ids:
            contracts.append(ContractRule(*r))
    return PriceBook(lists=book_lists, contracts=contracts, category_parents=parents, table=table)


_INDEX_CACHE: OrderedDict[uuid.UUID, tuple[tuple[int, Any], ListIndex]] = OrderedDict()
_TABLE_CACHE: OrderedDict[tuple[tuple[uuid.UUID, int, Any], ...], EntryTable] = OrderedDict()
_INDEX_LOCK = threading.Lock()
_INDEX_CACHE_LISTS = 5000
_TABLE_CACHE_SIZE = 16
_ALL_LISTS = 200


def _entry_table(uow: UnitOfWork, lists: Mapping[uuid.UUID, tuple[ListRule, tuple[int, Any]]]) -> EntryTable:
    """These lists' entries merged by product, cached by the lists' (id, version, updated_at)
    in query order (which is also the order of the explanation's notes)."""
    key = tuple((list_id, *stamp) for list_id, (_, stamp) in lists.items())
    with _INDEX_LOCK:
        table = _TABLE_CACHE.get(key)
        if table is not None:
            _TABLE_CACHE.move_to_end(key)
            return table
    indexes = _list_indexes(uow, {list_id: stamp for list_id, (_, stamp) in lists.items()})
    table = EntryTable.build((rule, indexes[list_id]) for list_id, (rule, _) in lists.items())
    with _INDEX_LOCK:
        _TABLE_CACHE[key] = table
        while len(_TABLE_CACHE) > _TABLE_CACHE_SIZE:
            _TABLE_CACHE.popitem(last=False)
    return table


def _list_indexes(uow: UnitOfWork, stamps: Mapping[uuid.UUID, tuple[int, Any]]) -> dict[uuid.UUID, ListIndex]:
    """Entry indexes of these lists: cached ones whose stamp matches, the rest in one query."""
    found: dict[uuid.UUID, ListIndex] = {}
    missing: list[uuid.UUID] = []
    with _INDEX_LOCK:
        for list_id, stamp in stamps.items():
            cached = _INDEX_CACHE.get(list_id)
            if cached is not None and cached[0] == stamp:
                found[list_id] = cached[1]
                _INDEX_CACHE.move_to_end(list_id)
            else:
                missing.append(list_id)
    if not missing:
        return found
    grouped: dict[uuid.UUID, list[EntryRule]] = {list_id: [] for list_id in missing}
    for chunk in in_lists.slices(missing, _CHUNK):
        for r in uow.session.execute(
            select(PriceListEntry.id, PriceListEntry.price_list_id, PriceListEntry.product_id,
                   PriceListEntry.category_id, PriceListEntry.method, PriceListEntry.value,
                   PriceListEntry.min_quantity, PriceListEntry.max_quantity)
            .where(PriceListEntry.price_list_id.in_(chunk))
        ):
            grouped[r[1]].append(EntryRule(r[0], r[1], r[2], r[3], str(r[4]), r[5], r[6], r[7]))
    with _INDEX_LOCK:
        for list_id, entries in grouped.items():
            index = found[list_id] = ListIndex.build(entries)
            _INDEX_CACHE[list_id] = (stamps[list_id], index)
            _INDEX_CACHE.move_to_end(list_id)
        while len(_INDEX_CACHE) > _INDEX_CACHE_LISTS:
            _INDEX_CACHE.popitem(last=False)
    return found


def clear_price_cache() -> None:
    """Forget cached entry indexes and tables (tests, or after restoring a database)."""
    with _INDEX_LOCK:
        _INDEX_CACHE.clear()
        _TABLE_CACHE.clear()


def _touch(price_list: PriceList) -> None:
    """Entries changed: bump the list's version (and updated_at) so cached indexes are refreshed."""
    price_list.updated_at = clock.now()
    flag_modified(price_list, "updated_at")  # an UPDATE (and a new version) even when the clock stands still


def _may_apply(rule: ListRule, buyer: Buyer, on: date, channel: str | None) -> bool:
    """Validity and scope filtered in Python (a tenant has few lists), so entries load only for these."""
    return list_applies(rule, buyer, on, channel) is None


def minimum_margin(uow: UnitOfWork) -> Decimal:
    """The tenant's minimum margin (settings["minimum_margin"], e.g. "0.10" = 10 % on cost); default 0."""
    cached = uow.session.info.get("pricing.minimum_margin")
    if cached is not None:
        return cached
    raw = tenant_facts(uow).settings.get("minimum_margin", 0)
    try:
        margin = to_decimal(raw)
    except InvalidAmount:
        margin = Decimal(0)
    uow.session.info["pricing.minimum_margin"] = margin
    return margin


def check_margin(uow: UnitOfWork, *, product: Any, unit_price: Decimal, field: str = "unit_price",
                 ship_to: tuple[str | None, str | None] | None = None, on: date | None = None,
                 currency: str | None = None, exempt: bool = False) -> None:
    """Refuse (MarginTooLow, 422) a unit price below standard cost × (1 + minimum margin),
    unless the actor holds `pricing.override`. `product` is a catalog Product (or has id, sku, standard_cost).

    A cost is before tax: on a tenant whose prices include tax, the floor is raised by the product's tax
    rate where the document ships (`ship_to`, on `on`, in `currency`), so a gross price is held to the
    net floor plus its tax; a tax-exempt buyer pays the price as it stands (no tax in it).

    A price under the floor that `pricing.override` lets through is audited (`pricing.margin_override`
    on the product: the price, the floor and the field, in the request that sets it)."""
    floor = product.standard_cost * (Decimal(1) + minimum_margin(uow))
    if (floor > 0 and not exempt and ship_to is not None and _product_tax_rates is not None
            and tenant_facts(uow).settings.get("prices_include_tax", False)):
        rate = _product_tax_rates(uow, [product.id], ship_to[0], ship_to[1], on or clock.today(),
                                  currency or "").get(product.id) or Decimal(0)
        floor *= 1 + rate / HUNDRED
    price = to_decimal(unit_price)
    if price < floor:
        if uow.actor.can(OVERRIDE):
            audit(uow, "pricing.margin_override", "product", product.id,
                  after={"unit_price": price, "floor": floor.quantize(Decimal("0.0001")), "field": field})
            return
        raise MarginTooLow(product.sku, price, floor.quantize(Decimal("0.0001")), field)


# ---------------------------------------------------------------- price lists


def get_price_list(uow: UnitOfWork, price_list_id: uuid.UUID) -> PriceList:
    price_list = uow.session.get(PriceList, _as_uuid(price_list_id, "price list"))
    if price_list is None:
        raise NotFound("price list", price_list_id)
    return price_list


def find_price_list_by_code(uow: UnitOfWork, code: str) -> PriceList | None:
    return uow.session.scalar(select(PriceList).where(PriceList.code == code))


def price_list_query(*, q: str | None = None, kind: str | None = None, currency: str | None = None,
                     customer_id: uuid.UUID | None = None, include_archived: bool = False) -> Select[Any]:
    query = select(PriceList)
    if not include_archived:
        query = query.where(PriceList.archived_at.is_(None))
    if kind:
        query = query.where(PriceList.kind == kind)
    if currency:
        query = query.where(PriceList.currency == currency.strip().upper())  # as typed: usd is USD
    if customer_id:
        query = query.where(PriceList.customer_id == customer_id)
    if q:
        query = query.where(or_(contains_text(PriceList.code, q), contains_text(PriceList.name, q)))
    return query


def clean_price_list(uow: UnitOfWork, data: Mapping[str, Any], *, current: PriceList | None = None,
                     ) -> tuple[dict[str, Any], list[FieldError]]:
    errors: list[FieldError] = []
    for name in sorted(set(data) - set(PRICE_LIST_FIELDS) - {"entries"}):
        errors.append(FieldError(name, "is not a price list field", "unknown_field"))
    out: dict[str, Any] = {}
    partial = current is not None
    if not partial or "code" in data:
        out["code"] = check_code(errors, "code", data.get("code"))
    if not partial or "name" in data:
        out["name"] = check_text(errors, "name", data.get("name"))
    if not partial or "currency" in data:
        out["currency"] = check_currency(errors, "currency", data.get("currency"))
    if "kind" in data and data["kind"] is not None:
        if data["kind"] not in set(PriceListKind):
            errors.append(FieldError("kind", f"one of {', '.join(PriceListKind)}", "enum"))
        elif partial and data["kind"] != current.kind:  # type: ignore[union-attr]
            errors.append(FieldError("kind", "cannot be changed", "read_only"))
        else:
            out["kind"] = PriceListKind(data["kind"])
    if "priority" in data and data["priority"] is not None:
        value = check_int(errors, "priority", data.get("priority"), minimum=-1000, maximum=1000)
        out["priority"] = value or 0
    for d in ("valid_from", "valid_to"):
        if d in data:
            out[d] = check_date(errors, d, data.get(d))
    if "scope" in data and data["scope"] is not None:
        if data["scope"] not in set(PriceListScope):
            errors.append(FieldError("scope", f"one of {', '.join(PriceListScope)}", "enum"))
        else:
            out["scope"] = PriceListScope(data["scope"])
    for ref in ("customer_group", "channel"):
        if ref in data:
            out[ref] = check_code(errors, ref, data[ref]) if data[ref] not in (None, "") else None
    if "prices_include_tax" in data:
        out["prices_include_tax"] = _tax_basis_flag(errors, data["prices_include_tax"])
    if "customer_id" in data:
        if data["customer_id"] in (None, ""):
            out["customer_id"] = None
        else:
            try:
                out["customer_id"] = get_customer(uow, data["customer_id"]).id
            except NotFound:
                errors.append(UnknownRecord("customer_id", f"no customer {data['customer_id']}"))

    def final(name: str, default: Any = None) -> Any:
        return out[name] if name in out else (getattr(current, name) if current is not None else default)

    kind = final("kind", PriceListKind.STANDARD)
    scope = final("scope", PriceListScope.ALL)
    check_period(errors, final("valid_from"), final("valid_to"))
    if kind == PriceListKind.PROMOTION:
        for d in ("valid_from", "valid_to"):
            if final(d) is None:
                errors.append(FieldError(d, "a promotion needs both validity dates", "required"))
    target = {PriceListScope.CUSTOMER: "customer_id", PriceListScope.CUSTOMER_GROUP: "customer_group",
              PriceListScope.CHANNEL: "channel"}.get(scope)
    if target and final(target) is None and not any(e.field == target for e in errors):
        errors.append(FieldError(target, f"required when scope is {scope}", "required"))
    for other in ("customer_id", "customer_group", "channel"):
        if other != target and final(other) is not None:
            errors.append(FieldError(other, f"only with scope {other.removesuffix('_id')}", "scope"))
    customer, currency = out.get("customer_id"), final("currency")
    if customer is not None and currency:  # a new list, or a list given (another) customer
        cust = get_customer(uow, customer)
        if cust.currency != currency:
            errors.append(FieldError("currency" if current is None else "customer_id",
                                     f"the customer buys in {cust.currency}"
                                     + ("" if current is None else f", the list is in {currency}"), "currency"))
    return out, errors


def _tax_basis_flag(errors: list[FieldError], value: Any) -> bool | None:
    """true, false, or null (the tenant's basis); CSV files say it as text."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("", "true", "false"):
        return None if text == "" else text == "true"
    errors.append(FieldError("prices_include_tax", "true, false, or empty for the tenant's setting", "boolean"))
    return None


def create_price_list(uow: UnitOfWork, data: Mapping[str, Any]) -> PriceList:
    values, errors = clean_price_list(uow, data)
    raw_entries = list(data.get("entries") or [])
    if errors:
        raise ValidationFailed(errors)
    if find_price_list_by_code(uow, values["code"]) is not None:
        raise Conflict(f"a price list with code {values['code']} already exists", field="code")
    price_list = PriceList(**values)
    uow.session.add(price_list)
    uow.session.flush()
    added = _add_entries(uow, price_list, raw_entries) if raw_entries else []
    audit(uow, "price_list.create", "price_list", price_list.id,
          after={**snapshot(price_list), "entries": _audited_entries(added)})
    record_event(uow, events.PriceListCreated(
        price_list_id=str(price_list.id), code=price_list.code, kind=str(price_list.kind),
        currency=price_list.currency, scope=str(price_list.scope), priority=price_list.priority,
        valid_from=price_list.valid_from.isoformat() if price_list.valid_from else None,
        valid_to=price_list.valid_to.isoformat() if price_list.valid_to else None, entries=len(added),
        prices_include_tax=price_list.prices_include_tax),
        subject=f"price_list/{price_list.id}")
    return price_list


def update_price_list(uow: UnitOfWork, price_list_id: uuid.UUID, changes: Mapping[str, Any], *,
                      price_list: PriceList | None = None) -> PriceList:
    price_list = price_list or get_price_list(uow, price_list_id)
    refuse_archived(price_list, "price list")
    if "entries" in changes:
        raise invalid("entries", "add entries through /price-lists/{id}/entries", "read_only")
    values, errors = clean_price_list(uow, changes, current=price_list)
    if "currency" in values and values["currency"] != price_list.currency:
        errors.append(FieldError("currency", "cannot be changed; create a list in the other currency", "read_only"))
    if errors:
        raise ValidationFailed(errors)
    if "code" in values and values["code"] != price_list.code and find_price_list_by_code(uow, values["code"]):
        raise Conflict(f"a price list with code {values['code']} already exists", field="code")
    before = snapshot(price_list)
    for name, value in values.items():
        if getattr(price_list, name) != value:
            setattr(price_list, name, value)
    uow.session.flush()
    after = snapshot(price_list)
    changed = {k: after[k] for k in after if after[k] != before.get(k) and k not in ("updated_at", "version")}
    if changed:
        audit(uow, "price_list.update", "price_list", price_list.id, before=before, after=after)
        record_event(uow, events.PriceListUpdated(price_list_id=str(price_list.id), code=price_list.code,
                                                  changes=changed), subject=f"price_list/{price_list.id}")
    return price_list


def archive_price_list(uow: UnitOfWork, price_list_id: uuid.UUID) -> PriceList:
    price_list = get_price_list(uow, price_list_id)
    return archive_record(uow, price_list, "price_list",
                          events.PriceListArchived(price_list_id=str(price_list.id), code=price_list.code))


def price_list_entries_query(uow: UnitOfWork, price_list_id: uuid.UUID) -> Select[tuple[PriceListEntry]]:
    """A price list's entries (404 for an unknown list); the caller pages them (a list may hold
    an entry for every product of the catalogue)."""
    get_price_list(uow, price_list_id)
    return select(PriceListEntry).where(PriceListEntry.price_list_id == price_list_id)


def add_price_list_entries(uow: UnitOfWork, price_list_id: uuid.UUID, entries: Sequence[Mapping[str, Any]],
                           *, replace: bool = False) -> list[PriceListEntry]:
    """Add entries (or replace all of them); overlapping quantity tiers are refused (422)."""
    price_list = get_price_list(uow, price_list_id)
    refuse_archived(price_list, "price list")
    removed: list[dict[str, Any]] = []
    if replace:
        removed = _audited_entries(
            uow.session.scalars(select(PriceListEntry).where(PriceListEntry.price_list_id == price_list.id)))
    added = _add_entries(uow, price_list, entries, replacing=replace)
    _touch(price_list)
    uow.session.flush()
    # the prices themselves, not only how many: who set which price, and which prices a replace took away
    audit(uow, "price_list.entries." + ("replace" if replace else "add"), "price_list", price_list.id,
          before={"entries": removed} if replace else None,
          after={"entries_added": len(added), "entries_removed": len(removed), "entries": _audited_entries(added)})
    record_event(uow, events.PriceListUpdated(price_list_id=str(price_list.id), code=price_list.code,
                                              entries_added=len(added), entries_removed=len(removed)),
                 subject=f"price_list/{price_list.id}")
    return added


_AUDITED_ENTRY = ("id", "product_id", "category_id", "method", "value", "min_quantity", "max_quantity")


def _audited_entries(entries: Iterable[PriceListEntry]) -> list[dict[str, Any]]:
    """Entries as the audit trail keeps them: what each prices, how, and for which quantities."""
    return [{name: getattr(e, name) for name in _AUDITED_ENTRY} for e in entries]


def remove_price_list_entry(uow: UnitOfWork, price_list_id: uuid.UUID, entry_id: uuid.UUID) -> None:
    price_list = get_price_list(uow, price_list_id)
    refuse_archived(price_list, "price list")
    entry = uow.session.get(PriceListEntry, _as_uuid(entry_id, "price list entry"))
    if entry is None or entry.price_list_id != price_list.id:
        raise NotFound("price list entry", entry_id)
    audit(uow, "price_list.entries.remove", "price_list", price_list.id, before=snapshot(entry))
    uow.session.delete(entry)
    _touch(price_list)
    uow.session.flush()
    record_event(uow, events.PriceListUpdated(price_list_id=str(price_list.id), code=price_list.code,
                                              entries_removed=1), subject=f"price_list/{price_list.id}")


def clean_entry(data: Mapping[str, Any], prefix: str = "") -> tuple[dict[str, Any], list[FieldError]]:
    errors: list[FieldError] = []
    for name in sorted(set(data) - set(ENTRY_FIELDS)):
        errors.append(FieldError(prefix + name, "is not an entry field", "unknown_field"))
    out: dict[str, Any] = {}
    for ref in ("product_id", "category_id"):
        value = data.get(ref)
        if value in (None, ""):
            out[ref] = None
            continue
        try:
            out[ref] = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
        except ValueError:
            errors.append(FieldError(prefix + ref, f"{value!r} is not an id", "uuid"))
            out[ref] = None
    if (out["product_id"] is None) == (out["category_id"] is None) and not errors:
        errors.append(FieldError(prefix + "product_id", "give exactly one of product_id or category_id",
                                 "one_of"))
    method = data.get("method") or PriceMethod.FIXED
    if method not in set(PriceMethod):
        errors.append(FieldError(prefix + "method", f"one of {', '.join(PriceMethod)}", "enum"))
    out["method"] = method
    sub: list[FieldError] = []
    out["value"] = check_amount(sub, "value", data.get("value"))
    if out["value"] is not None and method == PriceMethod.DISCOUNT and out["value"] > 100:
        sub.append(FieldError("value", "a discount is at most 100 (%)", "max"))
    out["min_quantity"] = check_amount(sub, "min_quantity", data.get("min_quantity"), required=False)
    if out["min_quantity"] is None:
        out["min_quantity"] = Decimal(0)
    out["max_quantity"] = check_amount(sub, "max_quantity", data.get("max_quantity"), required=False)
    if out["max_quantity"] is not None and out["max_quantity"] <= out["min_quantity"]:
        sub.append(FieldError("max_quantity", "must be greater than min_quantity", "range"))
    errors += [FieldError(prefix + e.field, e.message, e.rule) for e in sub]
    return out, errors


def _overlaps(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    a_max, b_max = a["max_quantity"], b["max_quantity"]
    return (b_max is None or a["min_quantity"] < b_max) and (a_max is None or b["min_quantity"] < a_max)


def _add_entries(uow: UnitOfWork, price_list: PriceList, raw: Sequence[Mapping[str, Any]], *,
                 replacing: bool = False) -> list[PriceListEntry]:
    errors: list[FieldError] = []
    cleaned: list[dict[str, Any]] = []
    for i, data in enumerate(raw):
        if not isinstance(data, Mapping):
            errors.append(FieldError(f"entries[{i}]", "an object", "type"))
            continue
        values, errs = clean_entry(data, f"entries[{i}].")
        errors += errs
        cleaned.append(values)
    if errors:
        raise ValidationFailed(errors)
    product_ids = {v["product_id"] for v in cleaned if v["product_id"]}
    try:
        get_products(uow, product_ids)
    except NotFound as exc:
        raise unknown_in_lines(exc, [v["product_id"] for v in cleaned], "entries[{}].product_id") from exc
    category_ids = {v["category_id"] for v in cleaned if v["category_id"]}
    if category_ids:
        known = set(category_parents(uow))
        for i, v in enumerate(cleaned):
            if v["category_id"] and v["category_id"] not in known:
                errors.append(UnknownRecord(f"entries[{i}].category_id", f"no category {v['category_id']}"))
    if errors:
        raise ValidationFailed(errors)
    existing: list[dict[str, Any]] = []
    if replacing:
        for old in uow.session.scalars(select(PriceListEntry).where(PriceListEntry.price_list_id == price_list.id)):
            uow.session.delete(old)
        uow.session.flush()
    else:
        # the entries' products or categories, each twice in the statement: sliced (an import can add
        # tens of thousands of entries to one list)
        for targets in in_lists.slices(v["product_id"] or v["category_id"] for v in cleaned):
            rows = uow.session.execute(select(PriceListEntry.product_id, PriceListEntry.category_id,
                                              PriceListEntry.min_quantity, PriceListEntry.max_quantity).where(
                PriceListEntry.price_list_id == price_list.id,
                or_(PriceListEntry.product_id.in_(targets), PriceListEntry.category_id.in_(targets)))).all()
            existing += [{"product_id": r[0], "category_id": r[1], "min_quantity": r[2], "max_quantity": r[3]}
                         for r in rows]
    by_target: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for e in existing:
        by_target.setdefault((e["product_id"], e["category_id"]), []).append(e)
    for i, v in enumerate(cleaned):
        key = (v["product_id"], v["category_id"])
        for other in by_target.get(key, []):
            if _overlaps(v, other):
                errors.append(FieldError(
                    f"entries[{i}].min_quantity",
                    f"quantity tier {v['min_quantity']}–{v['max_quantity'] or '∞'} overlaps tier "
                    f"{other['min_quantity']}–{other['max_quantity'] or '∞'} for the same "
                    f"{'product' if v['product_id'] else 'category'}", "overlap"))
                break
        by_target.setdefault(key, []).append(v)
    if errors:
        raise ValidationFailed(errors)
    created = [PriceListEntry(price_list_id=price_list.id, **v) for v in cleaned]
    uow.session.add_all(created)
    uow.session.flush()
    return created


# ---------------------------------------------------------------- contract prices


def get_contract_price(uow: UnitOfWork, contract_price_id: uuid.UUID) -> ContractPrice:
    contract = uow.session.get(ContractPrice, _as_uuid(contract_price_id, "contract price"))
    if contract is None:
        raise NotFound("contract price", contract_price_id)
    return contract


def create_contract_price(uow: UnitOfWork, data: Mapping[str, Any]) -> ContractPrice:
    """A customer's negotiated price for a product; validity may not overlap another of theirs."""
    errors: list[FieldError] = []
    allowed = {"customer_id", "product_id", "unit_price", "currency", "valid_from", "valid_to", "reference"}
    for name in sorted(set(data) - allowed):
        errors.append(FieldError(name, "is not a contract price field", "unknown_field"))
    unit_price = check_amount(errors, "unit_price", data.get("unit_price"))
    valid_from = check_date(errors, "valid_from", data.get("valid_from"))
    valid_to = check_date(errors, "valid_to", data.get("valid_to"))
    check_period(errors, valid_from, valid_to)
    reference = check_text(errors, "reference", data.get("reference"), required=False, max_length=100) or ""
    try:
        customer = get_customer(uow, data.get("customer_id"))  # type: ignore[arg-type]
    except NotFound:
        errors.append(UnknownRecord("customer_id", f"no customer {data.get('customer_id')}"))
        customer = None
    try:
        product = next(iter(get_products(uow, [data.get("product_id")]).values()))  # type: ignore[list-item]
    except NotFound:
        errors.append(UnknownRecord("product_id", f"no product {data.get('product_id')}"))
        product = None
    currency = data.get("currency") or (customer.currency if customer else None)
    currency = check_currency(errors, "currency", currency)
    if customer is not None and currency and currency != customer.currency:
        errors.append(FieldError("currency", f"the customer buys in {customer.currency}", "currency"))
    if errors:
        raise ValidationFailed(errors)
    assert customer is not None and product is not None
    # two contracts for one customer and product created at once would each find no other (PostgreSQL)
    hold_tenant_key(uow, f"pricing.contract_price:{customer.id}:{product.id}")
    for other in uow.session.scalars(select(ContractPrice).where(
            ContractPrice.customer_id == customer.id, ContractPrice.product_id == product.id,
            ContractPrice.archived_at.is_(None))):
        if (other.valid_to is None or valid_from is None or valid_from <= other.valid_to) and \
                (valid_to is None or other.valid_from is None or other.valid_from <= valid_to):
            raise invalid("valid_from", f"overlaps contract price {other.id} "
                          f"({other.valid_from or '…'} to {other.valid_to or '…'}) for this customer and product",
                          "overlap")
    contract = ContractPrice(customer_id=customer.id, product_id=product.id, unit_price=unit_price,
                             currency=currency, valid_from=valid_from, valid_to=valid_to, reference=reference)
    uow.session.add(contract)
    uow.session.flush()
    audit(uow, "contract_price.create", "contract_price", contract.id, after=snapshot(contract))
    record_event(uow, events.ContractPriceCreated(
        contract_price_id=str(contract.id), customer_id=str(customer.id), product_id=str(product.id),
        unit_price=format_price(contract.unit_price, contract.currency), currency=contract.currency,
        valid_from=valid_from.isoformat() if valid_from else None,
        valid_to=valid_to.isoformat() if valid_to else None), subject=f"contract_price/{contract.id}")
    return contract


def archive_contract_price(uow: UnitOfWork, contract_price_id: uuid.UUID) -> ContractPrice:
    contract = get_contract_price(uow, contract_price_id)
    return archive_record(uow, contract, "contract_price", events.ContractPriceArchived(
        contract_price_id=str(contract.id), customer_id=str(contract.customer_id), product_id=str(contract.product_id)))


def contract_price_query(*, customer_id: uuid.UUID | None = None, product_id: uuid.UUID | None = None,
                         include_archived: bool = False) -> Select[Any]:
    query = select(ContractPrice)
    if customer_id:
        query = query.where(ContractPrice.customer_id == customer_id)
    if product_id:
        query = query.where(ContractPrice.product_id == product_id)
    if not include_archived:
        query = query.where(ContractPrice.archived_at.is_(None))
    return query


def _as_uuid(value: Any, entity: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError as exc:
        raise NotFound(entity, value) from exc


def resolutions_by_product(resolutions: Iterable[PriceResolution]) -> dict[uuid.UUID, PriceResolution]:
    return {r.product_id: r for r in resolutions}


def price_lists_for_customer(uow: UnitOfWork, customer_id: uuid.UUID, *, on: date | None = None,
                             channel: str | None = None) -> list[PriceList]:
    """The price lists and promotions that apply to a customer on a date (its "assigned" lists:
    scope all, its group, itself, or the given channel), highest priority first."""
    customer = customer_facts(uow, customer_id)
    buyer = Buyer(customer.id, customer.currency, customer.customer_group)
    on = on or clock.today()
    lists = uow.session.scalars(select(PriceList).where(PriceList.archived_at.is_(None),
                                                        PriceList.currency == customer.currency))
    return sorted(
        (pl for pl in lists if list_applies(ListRule(pl.id, pl.code, str(pl.kind), pl.currency, pl.priority,
                                                     str(pl.scope), pl.customer_group, pl.customer_id, pl.channel,
                                                     pl.valid_from, pl.valid_to), buyer, on, channel) is None),
        key=lambda pl: (str(pl.kind), -pl.priority, pl.code))
