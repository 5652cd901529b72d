"""The price engine: pure rules over in-memory data, so they can be tested (and
property-tested) without a database. `service.resolve_prices` loads the data
in a fixed number of queries and asks a `PriceBook` for each line.

Resolution order (the one documented in docs/master-data.md)
------------------------------------------------------------
For a customer (currency K, group G), a product P, a quantity Q, a date D and
an optional channel H:

1. **Contract price.** A contract price of this customer for P, valid on D and
   in K, wins outright: no list or promotion is looked at. When several apply,
   the one starting latest wins (no start counts as earliest), then the newest.
2. **Regular price.** Every standard price list that applies — not archived, in
   K, valid on D, and scoped to all customers, to G, to this customer, or to H —
   offers at most one price: its entry for P whose quantity tier covers Q
   (`min_quantity <= Q < max_quantity`), else its entry for P's category, the
   nearest category first (the product's own, then its parents). An entry is a
   fixed price, a discount % off P's list price, or a markup % on P's standard
   cost (the last two need P's currency to be K, and are rounded to K's minor
   unit). The winning list is the one with the highest priority; ties go to
   the most specific scope (customer > customer group > channel > all), then the
   lower price, then the code. Without any list price, P's own list price is the
   regular price when P is priced in K.
3. **Promotion.** Promotion lists (same applicability, both dates required)
   offer prices the same way; the lowest promotional price replaces the regular
   price when it is strictly lower.
4. No rule and no list price in K: `NoPriceFound` (422) naming the product.

Tax basis
---------
A document's unit prices include tax or not (the tenant setting
`prices_include_tax`). A price list may keep its prices on the other basis
(`ListRule.prices_include_tax`; None = the document's): its fixed prices are
converted at the product's tax rate where the document ships (`TaxBasis`)
before lists are compared, so a gross list never loses to a net one by its
tax. Discount entries are worked from the product's list price, so they are on the
document's basis already, as are contract prices; a markup is worked from the cost, which is
before tax, so on a document priced including tax the tax is added to it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from functools import lru_cache
from typing import Any, Protocol

from entrepot.kernel.errors import FieldError, ValidationFailed
from entrepot.kernel.money import format_price, quantize_storage, round_money

SCOPE_RANK = {"customer": 4, "customer_group": 3, "channel": 2, "all": 1}
HUNDRED = Decimal(100)


class NoPriceFound(ValidationFailed):
    code = "no_price"
    title = "No price for this product"

    def __init__(self, sku: str, currency: str, field: str = "product_id") -> None:
        super().__init__(FieldError(field, f"product {sku} has no price in {currency} for this customer: "
                                           "no price list, contract or list price in that currency", "no_price"))
        self.sku = sku


@dataclass(frozen=True)
class Buyer:
    id: uuid.UUID
    currency: str
    customer_group: str | None = None


class PricedProduct(Protocol):
    """What the engine reads of a product: a `ProductFacts`, the catalog's price basis or a catalog
    Product, as they come (copying an order's thousand products into ProductFacts took 1.5 ms)."""

    @property
    def id(self) -> uuid.UUID: ...
    @property
    def sku(self) -> str: ...
    @property
    def category_id(self) -> uuid.UUID | None: ...
    @property
    def list_price(self) -> Decimal: ...
    @property
    def currency(self) -> str: ...
    @property
    def standard_cost(self) -> Decimal: ...


@dataclass(frozen=True)
class ProductFacts:
    id: uuid.UUID
    sku: str
    category_id: uuid.UUID | None
    list_price: Decimal
    currency: str
    standard_cost: Decimal


@dataclass(frozen=True)
class ListRule:
    id: uuid.UUID
    code: str
    kind: str  # standard | promotion
    currency: str
    priority: int = 0
    scope: str = "all"
    customer_group: str | None = None
    customer_id: uuid.UUID | None = None
    channel: str | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    prices_include_tax: bool | None = None  # None: on the basis of the document priced


@dataclass(frozen=True)
class TaxBasis:
    """The basis of the document being priced, and the tax rate (percent) of each product where
    it ships, asked only when a list on the other basis offers the product."""

    includes_tax: bool
    rate_percent: Callable[[uuid.UUID], Decimal]

    def convert(self, price: Decimal, product_id: uuid.UUID, list_includes_tax: bool) -> tuple[Decimal, Decimal]:
        """(the price on the document's basis, the rate used), kept to 4 places like any unit price."""
        rate = self.rate_percent(product_id)
        factor = 1 + rate / HUNDRED
        return quantize_storage(price / factor if list_includes_tax else price * factor), rate


@dataclass(frozen=True)
class EntryRule:
    id: uuid.UUID
    price_list_id: uuid.UUID
    product_id: uuid.UUID | None
    category_id: uuid.UUID | None
    method: str  # fixed | discount | markup
    value: Decimal
    min_quantity: Decimal = Decimal(0)
    max_quantity: Decimal | None = None

    def covers(self, quantity: Decimal) -> bool:
        return self.min_quantity <= quantity and (self.max_quantity is None or quantity < self.max_quantity)

    def tier_text(self) -> str:
        upper = f"< {_q(self.max_quantity)}" if self.max_quantity is not None else "and up"
        return f"tier {_q(self.min_quantity)} {upper}"


@dataclass(frozen=True)
class ContractRule:
    id: uuid.UUID
    customer_id: uuid.UUID
    product_id: uuid.UUID
    unit_price: Decimal
    currency: str
    valid_from: date | None = None
    valid_to: date | None = None


class PriceResolution:
    """A line's price: unit price, currency, the winning rule ("contract", "price_list:<code>",
    "promotion:<code>" or "list_price") and `explanation`, every rule considered with its result
    (won / lost / skipped) and why. The explanation of a many-line resolution is built on first
    access, so pricing an order does not pay for explanations nobody reads: `explainer` is
    called with the line's product id and quantity (one explainer serves every line of an
    order, rather than one closure per line for the garbage collector to walk)."""

    __slots__ = ("_explainer", "_explanation", "currency", "product_id", "quantity", "rule", "source_id",
                 "unit_price")

    def __init__(self, product_id: uuid.UUID, quantity: Decimal, unit_price: Decimal, currency: str, rule: str,
                 explanation: list[dict[str, Any]] | None = None, source_id: uuid.UUID | None = None, *,
                 explainer: Callable[[uuid.UUID, Decimal], list[dict[str, Any]]] | None = None) -> None:
        self.product_id = product_id
        self.quantity = quantity
        self.unit_price = unit_price
        self.currency = currency
        self.rule = rule
        self.source_id = source_id
        self._explanation = explanation
        self._explainer = explainer

    @property
    def explanation(self) -> list[dict[str, Any]]:
        if self._explanation is None:
            explainer = self._explainer
            self._explanation = explainer(self.product_id, self.quantity) if explainer is not None else []
            self._explainer = None
        return self._explanation

    def __repr__(self) -> str:
        return (f"PriceResolution(product_id={self.product_id!r}, quantity={self.quantity!r}, "
                f"unit_price={self.unit_price!r}, currency={self.currency!r}, rule={self.rule!r})")


@lru_cache(maxsize=8192)
def _q(value: Decimal | None) -> str:
    if value is None:
        return ""
    text = format(value.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@lru_cache(maxsize=65536)
def _money(value: Decimal, currency: str) -> str:
    """A price as the API writes it: the currency's places ("18.00", "667" yen), more when it has them."""
    return format_price(value, currency)


FOR_ANOTHER_CUSTOMER = "for another customer"


def list_applies(rule: ListRule, buyer: Buyer, on: date, channel: str | None) -> str | None:
    """None when the list applies to this buyer on this date; otherwise why not."""
    if rule.currency != buyer.currency:
        return f"priced in {rule.currency}, the customer buys in {buyer.currency}"
    if rule.valid_from is not None and on < rule.valid_from:
        return f"starts {rule.valid_from.isoformat()}"
    if rule.valid_to is not None and on > rule.valid_to:
        return f"ended {rule.valid_to.isoformat()}"
    if rule.scope == "customer" and rule.customer_id != buyer.id:
        return FOR_ANOTHER_CUSTOMER
    if rule.scope == "customer_group" and rule.customer_group != buyer.customer_group:
        return f"for customer group {rule.customer_group}"
    if rule.scope == "channel" and rule.channel != channel:
        return f"for channel {rule.channel}"
    return None


def contract_applies(rule: ContractRule, buyer: Buyer, on: date) -> str | None:
    if rule.currency != buyer.currency:
        return f"priced in {rule.currency}, the customer buys in {buyer.currency}"
    if rule.valid_from is not None and on < rule.valid_from:
        return f"starts {rule.valid_from.isoformat()}"
    if rule.valid_to is not None and on > rule.valid_to:
        return f"ended {rule.valid_to.isoformat()}"
    return None


def entry_price(entry: EntryRule, product: PricedProduct, currency: str, *, describe: bool = True,
                ) -> tuple[Decimal | None, str]:
    """The unit price an entry gives the product, and how; None with the reason when it cannot."""
    if entry.method == "fixed":
        return entry.value, (f"fixed {_money(entry.value, currency)}" if describe else "")
    if product.currency != currency:
        return None, (f"{entry.method} needs the product's "
                      f"{'list price' if entry.method == 'discount' else 'cost'} in {currency}, "
                      f"it is in {product.currency}") if describe else ""
    if entry.method == "discount":
        price = round_money(product.list_price * (HUNDRED - entry.value) / HUNDRED, currency)
        return price, (f"{_q(entry.value)}% off list price {_money(product.list_price, currency)}" if describe else "")
    price = round_money(product.standard_cost * (HUNDRED + entry.value) / HUNDRED, currency)
    return price, (f"{_q(entry.value)}% markup on cost {_money(product.standard_cost, currency)}" if describe else "")


@dataclass
class _Candidate:
    rule: ListRule
    entry: EntryRule
    price: Decimal | None
    how: str
    target: str  # "product" | "category"


@dataclass
class ListIndex:
    """One price list's entries by product and by category (tiers in quantity order)."""

    # Keyed by the UUID's integer: lines look lists up tens of times each, and hashing an int
    # is much cheaper than uuid.UUID.__hash__.
    by_product: dict[int, list[EntryRule]] = field(default_factory=dict)
    by_category: dict[int, list[EntryRule]] = field(default_factory=dict)

    @classmethod
    def build(cls, entries: Iterable[EntryRule]) -> ListIndex:
        index = cls()
        for e in entries:
            if e.product_id is not None:
                index.by_product.setdefault(e.product_id.int, []).append(e)
            elif e.category_id is not None:
                index.by_category.setdefault(e.category_id.int, []).append(e)
        for tiers in (*index.by_product.values(), *index.by_category.values()):
            tiers.sort(key=lambda t: t.min_quantity)
        return index


@dataclass
class EntryTable:
    """Several price lists' entries merged by product, so a line does one lookup whatever the
    number of lists, plus the lists that have category entries (in the lists' order).

    It depends only on the lists and their entries, not on the buyer: the service caches one
    per set of list versions and shares it between orders, each order keeping only the lists
    that apply to it (`ActiveLists`). Entries are keyed by (and carry) the UUIDs' integers:
    a line looks lists up several times, and hashing an int is much cheaper than
    uuid.UUID.__hash__."""

    by_product: dict[int, list[tuple[int, ListRule, list[EntryRule]]]] = field(default_factory=dict)
    with_categories: list[tuple[int, ListRule, ListIndex]] = field(default_factory=list)

    @classmethod
    def build(cls, lists: Iterable[tuple[ListRule, ListIndex]]) -> EntryTable:
        table = cls()
        for rule, index in lists:
            list_key = rule.id.int
            for product_key, tiers in index.by_product.items():
                table.by_product.setdefault(product_key, []).append((list_key, rule, tiers))
            if index.by_category:
                table.with_categories.append((list_key, rule, index))
        return table


@dataclass
class ActiveLists:
    """One order's view of an entry table: the keys of the lists that apply to it, and per
    category the applicable lists' category tiers along its path (nearest category first),
    worked out on the first line of that category."""

    table: EntryTable
    applicable: frozenset[int]
    by_category: dict[int, list[tuple[int, ListRule, list[list[EntryRule]]]]] = field(default_factory=dict)


class PriceBook:
    """Everything needed to price lines for one buyer, indexed once.

    Entries come either as a flat list (`entries`) or already merged (`table`, which the
    service caches per set of list versions and may hold lists that do not apply: only
    `lists` are used)."""

    def __init__(self, *, lists: Iterable[ListRule], entries: Iterable[EntryRule] = (),
                 contracts: Iterable[ContractRule], category_parents: Mapping[uuid.UUID, uuid.UUID | None],
                 table: EntryTable | None = None, tax_basis: TaxBasis | None = None):
        self.lists = {r.id: r for r in lists}
        # None: every list's prices are taken as they are (no list is on another basis)
        self.tax_basis = tax_basis
        self.parents = category_parents
        if table is None:
            grouped: dict[uuid.UUID, list[EntryRule]] = {list_id: [] for list_id in self.lists}
            for e in entries:
                if e.price_list_id in grouped:
                    grouped[e.price_list_id].append(e)
            table = EntryTable.build((rule, ListIndex.build(grouped[rule.id])) for rule in self.lists.values())
        self.table = table
        # by the product id's integer, like the entry table
        self.contracts: dict[int, list[ContractRule]] = {}
        for c in contracts:
            self.contracts.setdefault(c.product_id.int, []).append(c)
        self._paths: dict[uuid.UUID | None, list[int]] = {}
        self._note_base: dict[uuid.UUID, dict[str, Any]] = {}

    def _category_path(self, category_id: uuid.UUID | None) -> list[int]:
        """The category and its parents, nearest first, as index keys."""
        path = self._paths.get(category_id)
        if path is None:
            nodes: list[uuid.UUID] = []
            node = category_id
            while node is not None and node not in nodes:
                nodes.append(node)
                node = self.parents.get(node)
            path = self._paths[category_id] = [n.int for n in nodes]
        return path

    def _on_basis(self, rule: ListRule, entry: EntryRule, product: PricedProduct, price: Decimal,
                  how: str | None) -> tuple[Decimal, str]:
        """The entry's price on the document's basis (and, with `how`, the explanation of it). Only a
        fixed price is on the list's basis: discount and markup work from the product's list price
        and cost, which are on the document's."""
        basis = self.tax_basis
        if entry.method == "markup" and basis is not None and basis.includes_tax:
            # a cost is before tax, so a markup on it is a price before tax: on a document priced including
            # tax, the tax is added (else a 10 % markup on 50.00 at 25 % VAT sold at 44.00 net, below cost)
            converted, rate = basis.convert(price, product.id, False)
            if how is None:
                return converted, ""
            return converted, f"{how}, {_q(price)} before tax = {_q(converted)} including tax at {_q(rate)}%"
        if (basis is None or entry.method != "fixed" or rule.prices_include_tax is None
                or rule.prices_include_tax == basis.includes_tax):
            return price, how or ""
        converted, rate = basis.convert(price, product.id, rule.prices_include_tax)
        if how is None:
            return converted, ""
        given = "including" if rule.prices_include_tax else "before"
        wanted = "before" if rule.prices_include_tax else "including"
        return converted, (f"{how}, {_money(price, rule.currency)} {given} tax = {_q(converted)} {wanted} tax at "
                           f"{_q(rate)}%")

    def _category_tiers(self, category_id: uuid.UUID, active: ActiveLists,
                        ) -> list[tuple[int, ListRule, list[list[EntryRule]]]]:
        """(list key, list, its tiers for each category of the path that it prices, nearest first)
        for the applicable lists pricing this category or a parent; once per category and order."""
        found = active.by_category.get(category_id.int)
        if found is None:
            path = self._category_path(category_id)
            found = []
            for list_key, rule, index in active.table.with_categories:
                if list_key in active.applicable:
                    chain = [tiers for category_key in path if (tiers := index.by_category.get(category_key))]
                    if chain:
                        found.append((list_key, rule, chain))
            active.by_category[category_id.int] = found
        return found

    def _candidates(self, product: PricedProduct, quantity: Decimal, currency: str,
                    explanation: list[dict[str, Any]], active: ActiveLists,
                    why_not: Callable[[ListRule], str | None]) -> list[_Candidate]:
        """One candidate per applicable list offering the product at this quantity: its product
        tier covering the quantity, else its category tier (nearest category first). A list offering
        the product that does not apply (ended, not yet begun, another group or channel) is told as
        skipped with why; another customer's own list is not named."""
        found: dict[uuid.UUID, _Candidate] = {}
        uncovered: list[ListRule] = []  # skipped, unless a category tier of theirs covers the quantity
        for list_key, rule, tiers in active.table.by_product.get(product.id.int, ()):
            if list_key not in active.applicable:
                reason = why_not(rule)
                if reason is not None and reason != FOR_ANOTHER_CUSTOMER:
                    explanation.append(self._note(rule, None, "skipped", reason))
                continue
            entry = next((t for t in tiers if t.covers(quantity)), None)
            if entry is not None:
                price, how = entry_price(entry, product, currency)
                if price is not None:
                    price, how = self._on_basis(rule, entry, product, price, how)
                found[rule.id] = _Candidate(rule, entry, price, f"{how} ({entry.tier_text()})", "product")
            else:
                uncovered.append(rule)
        if product.category_id is not None and active.table.with_categories:
            for _, rule, chain in self._category_tiers(product.category_id, active):
                if rule.id in found:
                    continue
                for tiers in chain:
                    entry = next((t for t in tiers if t.covers(quantity)), None)
                    if entry is not None:
                        price, how = entry_price(entry, product, currency)
                        if price is not None:
                            price, how = self._on_basis(rule, entry, product, price, how)
                        found[rule.id] = _Candidate(rule, entry, price,
                                                    f"{how} for its category ({entry.tier_text()})", "category")
                        break
        for rule in uncovered:
            if rule.id not in found:
                explanation.append(self._note(rule, None, "skipped", f"no product tier covers quantity {_q(quantity)}"))
        usable = []
        for cand in found.values():
            if cand.price is None:
                explanation.append(self._note(cand.rule, None, "skipped", cand.how))
            else:
                usable.append(cand)
        return usable

    def _note(self, rule: ListRule, cand: _Candidate | None, result: str, reason: str) -> dict[str, Any]:
        base = self._note_base.get(rule.id)
        if base is None:  # the list's part of a note, built once per list (explanations are per line)
            base = self._note_base[rule.id] = {
                "rule": f"{rule.kind if rule.kind == 'promotion' else 'price_list'}:{rule.code}",
                "price_list_id": str(rule.id), "priority": rule.priority, "scope": rule.scope,
            }
        note: dict[str, Any] = {**base, "result": result, "reason": reason}
        if cand is not None:
            note["unit_price"] = _money(cand.price, rule.currency) if cand.price is not None else None
            note["entry_id"] = str(cand.entry.id)
        return note

    def active_lists(self, buyer: Buyer, on: date, channel: str | None) -> ActiveLists:
        """The order's view of the entry table: only the lists that apply to this buyer."""
        return ActiveLists(self.table, frozenset(r.id.int for r in self.applicable_lists(buyer, on, channel).values()))

    def applicable_lists(self, buyer: Buyer, on: date, channel: str | None) -> dict[uuid.UUID, ListRule]:
        return {r.id: r for r in self.lists.values() if list_applies(r, buyer, on, channel) is None}

    def resolve(self, buyer: Buyer, product: PricedProduct, quantity: Decimal, on: date, channel: str | None = None,
                *, active: ActiveLists | None = None, field: str = "product_id",
                ) -> PriceResolution:
        if active is None:
            active = self.active_lists(buyer, on, channel)
        currency = buyer.currency
        explanation: list[dict[str, Any]] = []

        # 1. contract prices
        contracts = self.contracts.get(product.id.int, ())
        valid = []
        for c in contracts:
            if c.customer_id != buyer.id:
                continue
            why = contract_applies(c, buyer, on)
            if why:
                explanation.append({"rule": "contract", "contract_price_id": str(c.id), "result": "skipped",
                                    "unit_price": _money(c.unit_price, c.currency), "reason": why})
            else:
                valid.append(c)
        if valid:
            winner = max(valid, key=lambda c: (c.valid_from or date.min, c.id))
            for c in valid:
                won = c is winner
                explanation.append({
                    "rule": "contract", "contract_price_id": str(c.id), "unit_price": _money(c.unit_price, c.currency),
                    "result": "won" if won else "lost",
                    "reason": "a valid contract price wins over every list and promotion" if won
                    else "another contract starts later",
                })
            return PriceResolution(product.id, quantity, winner.unit_price, currency, "contract", explanation,
                                   winner.id)

        # 2. regular price: standard lists, else the product's list price
        candidates = self._candidates(product, quantity, currency, explanation, active,
                                      lambda rule: list_applies(rule, buyer, on, channel))
        regular = [c for c in candidates if c.rule.kind != "promotion"]
        promos = [c for c in candidates if c.rule.kind == "promotion"]
        if len(regular) > 1:
            regular.sort(key=lambda c: (-c.rule.priority, -SCOPE_RANK.get(c.rule.scope, 0), c.price, c.rule.code))
        if len(promos) > 1:
            promos.sort(key=lambda c: (c.price, -c.rule.priority, c.rule.code))
        base_price: Decimal | None = None
        base_rule = ""
        base_id: uuid.UUID | None = None
        base_note: dict[str, Any] | None = None
        notes: list[dict[str, Any]] = []
        if regular:
            top = regular[0]
            base_price, base_rule, base_id = top.price, f"price_list:{top.rule.code}", top.rule.id
            base_note = self._note(top.rule, top, "won", f"{top.how}; highest priority {top.rule.priority}"
                                   + (f", most specific scope ({top.rule.scope})" if len(regular) > 1 else ""))
            notes.append(base_note)
            for other in regular[1:]:
                notes.append(self._note(other.rule, other, "lost", f"{other.how}; {_why_lost(other, top)}"))
        list_note: dict[str, Any] = {"rule": "list_price", "unit_price": _money(product.list_price, product.currency)}
        if product.currency != currency:
            list_note |= {"result": "skipped", "reason": f"list price is in {product.currency}, not {currency}"}
        elif base_price is None:
            base_price, base_rule, base_id = product.list_price, "list_price", None
            list_note |= {"result": "won", "reason": "no price list applies; the list price does"}
            base_note = list_note
        else:
            list_note |= {"result": "lost", "reason": "a price list applies"}

        # 3. promotions: the lowest, when below the regular price
        for i, promo in enumerate(promos):
            assert promo.price is not None
            if i == 0 and (base_price is None or promo.price < base_price):
                if base_note is not None:
                    base_note["result"] = "lost"
                    base_note["reason"] += f"; promotion {promo.rule.code} is lower"
                notes.append(self._note(promo.rule, promo, "won", f"{promo.how}; lowest promotion, "
                                        + ("below the regular price" if base_price is not None
                                           else "no regular price")))
                base_price, base_rule, base_id = promo.price, f"promotion:{promo.rule.code}", promo.rule.id
            elif i == 0:
                notes.append(self._note(promo.rule, promo, "lost", f"{promo.how}; not below the regular price"))
            else:
                notes.append(self._note(promo.rule, promo, "lost", f"{promo.how}; another promotion is lower"))
        explanation.extend(notes)
        explanation.append(list_note)
        if base_price is None:
            raise NoPriceFound(product.sku, currency, field)
        return PriceResolution(product.id, quantity, base_price, currency, base_rule, explanation, base_id)

    def decide(self, buyer: Buyer, product: PricedProduct, quantity: Decimal, on: date, active: ActiveLists,
               ) -> tuple[Decimal | None, str, uuid.UUID | None]:
        """The same decision as `resolve`, without building the explanation (the hot path)."""
        contracts = self.contracts.get(product.id.int)
        if contracts:
            valid = [c for c in contracts if c.customer_id == buyer.id and contract_applies(c, buyer, on) is None]
            if valid:
                winner = max(valid, key=lambda c: (c.valid_from or date.min, c.id))
                return winner.unit_price, "contract", winner.id
        currency = buyer.currency
        regular: tuple[Any, ...] | None = None
        promo: tuple[Any, ...] | None = None
        for rule, entry in self._offers(product, quantity, active):
            price = entry_price(entry, product, currency, describe=False)[0]
            if price is None:
                continue
            # the usual list has no basis of its own and prices fixed or by discount: skip the call
            if rule.prices_include_tax is not None or entry.method == "markup":
                price = self._on_basis(rule, entry, product, price, None)[0]
            if rule.kind == "promotion":
                key = (price, -rule.priority, rule.code)
                if promo is None or key < promo[0]:
                    promo = (key, price, rule)
            else:
                key = (-rule.priority, -SCOPE_RANK.get(rule.scope, 0), price, rule.code)
                if regular is None or key < regular[0]:
                    regular = (key, price, rule)
        base: tuple[Decimal | None, str, uuid.UUID | None] = (None, "", None)
        if regular is not None:
            base = (regular[1], f"price_list:{regular[2].code}", regular[2].id)
        elif product.currency == currency:
            base = (product.list_price, "list_price", None)
        if promo is not None and (base[0] is None or promo[1] < base[0]):
            return promo[1], f"promotion:{promo[2].code}", promo[2].id
        return base

    def _offers(self, product: PricedProduct, quantity: Decimal, active: ActiveLists,
                ) -> list[tuple[ListRule, EntryRule]]:
        """(list, entry) for each applicable list offering the product: product tier, else category tier."""
        offers: list[tuple[ListRule, EntryRule]] = []
        offered: list[int] = []  # their list keys (a line has few offers: a list beats a set)
        applicable = active.applicable
        for list_key, rule, tiers in active.table.by_product.get(product.id.int, ()):
            if list_key in applicable:
                for t in tiers:
                    if t.covers(quantity):
                        offers.append((rule, t))
                        offered.append(list_key)
                        break
        if product.category_id is not None and active.table.with_categories:
            for list_key, rule, chain in self._category_tiers(product.category_id, active):
                if list_key in offered:
                    continue
                for tiers in chain:
                    entry = next((t for t in tiers if t.covers(quantity)), None)
                    if entry is not None:
                        offers.append((rule, entry))
                        break
        return offers

    def resolve_many(self, buyer: Buyer, products: Mapping[uuid.UUID, PricedProduct],
                     lines: Sequence[tuple[uuid.UUID, Decimal]], on: date, channel: str | None = None,
                     ) -> list[PriceResolution]:
        active = self.active_lists(buyer, on, channel)

        def explain(product_id: uuid.UUID, quantity: Decimal) -> list[dict[str, Any]]:
            return self.resolve(buyer, products[product_id], quantity, on, channel, active=active).explanation

        out = []
        for i, (pid, qty) in enumerate(lines):
            product = products[pid]
            price, rule, source = self.decide(buyer, product, qty, on, active)
            if price is None:
                raise NoPriceFound(product.sku, buyer.currency, f"lines[{i}].product_id")
            out.append(PriceResolution(pid, qty, price, buyer.currency, rule, None, source, explainer=explain))
        return out


def _why_lost(cand: _Candidate, top: _Candidate) -> str:
    if cand.rule.priority != top.rule.priority:
        return f"priority {cand.rule.priority} is below {top.rule.priority}"
    if cand.rule.scope != top.rule.scope:
        return f"scope {cand.rule.scope} is less specific than {top.rule.scope}"
    if cand.price != top.price:
        return "same priority and scope, higher price"
    return "same priority, scope and price; code sorts later"
