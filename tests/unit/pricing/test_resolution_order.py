"""Property test: for random lists, tiers, contracts, promotions, dates and tax bases, the
engine's price is the winner the documented resolution order names (an independent oracle here)."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entrepot.kernel.money import quantize_storage, round_money
from entrepot.pricing.engine import (
    Buyer,
    ContractRule,
    EntryRule,
    EntryTable,
    ListIndex,
    ListRule,
    NoPriceFound,
    PriceBook,
    ProductFacts,
    TaxBasis,
    list_applies,
)

BUYER = Buyer(uuid.UUID(int=1), "USD", "dealers")
OTHER_CUSTOMER = uuid.UUID(int=2)
ROOT, LEAF = uuid.UUID(int=10), uuid.UUID(int=11)
PARENTS = {ROOT: None, LEAF: ROOT}
DAY0 = date(2026, 1, 1)
RANK = {"customer": 4, "customer_group": 3, "channel": 2, "all": 1}

money = st.integers(min_value=1, max_value=5000).map(lambda c: Decimal(c) / 100)
days = st.integers(min_value=0, max_value=60).map(lambda d: DAY0 + timedelta(days=d))


@st.composite
def products(draw):
    return ProductFacts(uuid.UUID(int=100), "P-1", draw(st.sampled_from([None, ROOT, LEAF])), draw(money),
                        draw(st.sampled_from(["USD", "USD", "EUR"])), draw(money))


@st.composite
def price_lists(draw, index):
    kind = draw(st.sampled_from(["standard", "standard", "promotion"]))
    scope = draw(st.sampled_from(["all", "customer_group", "customer", "channel"]))
    start = draw(st.one_of(st.none(), days)) if kind == "standard" else draw(days)
    end = draw(st.one_of(st.none(), days)) if kind == "standard" else draw(days)
    if start and end and end < start:
        start, end = end, start
    return ListRule(
        uuid.UUID(int=1000 + index), f"L{index:02d}", kind, draw(st.sampled_from(["USD", "USD", "USD", "EUR"])),
        draw(st.integers(0, 3)), scope,
        draw(st.sampled_from(["dealers", "retail"])) if scope == "customer_group" else None,
        draw(st.sampled_from([BUYER.id, OTHER_CUSTOMER])) if scope == "customer" else None,
        draw(st.sampled_from(["web", "edi"])) if scope == "channel" else None,
        start, end, draw(st.sampled_from([None, None, True, False])),
    )


@st.composite
def tiers(draw, list_id, target, base):
    """Non-overlapping tiers for one target (the API refuses overlaps)."""
    cuts = sorted(draw(st.sets(st.integers(1, 40), max_size=3)))
    bounds = [0, *cuts]
    out = []
    for i, low in enumerate(bounds):
        if draw(st.booleans()) or i == 0:
            high = bounds[i + 1] if i + 1 < len(bounds) else None
            method = draw(st.sampled_from(["fixed", "fixed", "discount", "markup"]))
            value = draw(money) if method == "fixed" else Decimal(draw(st.integers(0, 60)))
            out.append(EntryRule(uuid.UUID(int=base + i), list_id, target if target not in (ROOT, LEAF) else None,
                                 target if target in (ROOT, LEAF) else None, method, value, Decimal(low),
                                 Decimal(high) if high is not None else None))
    return out


@st.composite
def scenarios(draw):
    product = draw(products())
    lists = [draw(price_lists(i)) for i in range(draw(st.integers(0, 5)))]
    entries = []
    for n, rule in enumerate(lists):
        for m, target in enumerate(draw(st.sets(st.sampled_from([product.id, ROOT, LEAF]), max_size=2))):
            entries += draw(tiers(rule.id, target, 10_000 + n * 100 + m * 10))
    contracts = []
    for k in range(draw(st.integers(0, 2))):
        start = draw(st.one_of(st.none(), days))
        end = draw(st.one_of(st.none(), days))
        if start and end and end < start:
            start, end = end, start
        contracts.append(ContractRule(uuid.UUID(int=50_000 + k), draw(st.sampled_from([BUYER.id, OTHER_CUSTOMER])),
                                      product.id, draw(money), draw(st.sampled_from(["USD", "USD", "EUR"])),
                                      start, end))
    on = draw(days)
    quantity = Decimal(draw(st.integers(1, 45)))
    channel = draw(st.sampled_from([None, "web"]))
    rate = Decimal(draw(st.sampled_from([0, 7, 19, 25])))
    basis = TaxBasis(draw(st.booleans()), lambda _product_id: rate)
    return product, lists, entries, contracts, on, quantity, channel, basis


def _valid(start, end, on):
    return (start is None or start <= on) and (end is None or on <= end)


def oracle(product, lists, entries, contracts, on, quantity, channel, basis):
    """The documented order, written as plainly as possible."""
    good = [c for c in contracts if c.customer_id == BUYER.id and c.currency == "USD"
            and _valid(c.valid_from, c.valid_to, on)]
    if good:
        best = max(good, key=lambda c: (c.valid_from or date.min, c.id))
        return "contract", best.unit_price

    def applies(rule):
        scope_ok = {"all": True, "customer_group": rule.customer_group == BUYER.customer_group,
                    "customer": rule.customer_id == BUYER.id, "channel": rule.channel == channel}[rule.scope]
        return rule.currency == "USD" and _valid(rule.valid_from, rule.valid_to, on) and scope_ok

    def offer(rule):
        price, method = offer_as_listed(rule)
        factor = 1 + basis.rate_percent(product.id) / 100
        # a markup on cost is a price before tax: a document priced including tax adds the tax
        if price is not None and method == "markup" and basis.includes_tax:
            return quantize_storage(price * factor)
        # only a fixed price is on the list's basis: a discount works from the product's list price,
        # on the document's
        if price is None or method != "fixed" or rule.prices_include_tax in (None, basis.includes_tax):
            return price
        return quantize_storage(price / factor if rule.prices_include_tax else price * factor)

    def offer_as_listed(rule):
        path = []
        node = product.category_id
        while node:
            path.append(node)
            node = PARENTS[node]
        for target in [product.id, *path]:
            hits = [e for e in entries if e.price_list_id == rule.id and target in (e.product_id, e.category_id)
                    and e.min_quantity <= quantity and (e.max_quantity is None or quantity < e.max_quantity)]
            if hits:
                e = hits[0]
                if e.method == "fixed":
                    return e.value, e.method
                if product.currency != "USD":
                    return None, e.method
                if e.method == "discount":
                    return round_money(product.list_price * (100 - e.value) / 100, "USD"), e.method
                return round_money(product.standard_cost * (100 + e.value) / 100, "USD"), e.method
        return None, None

    offers = [(rule, offer(rule)) for rule in lists if applies(rule)]
    offers = [(r, p) for r, p in offers if p is not None]
    regular = [(r, p) for r, p in offers if r.kind == "standard"]
    promos = [(r, p) for r, p in offers if r.kind == "promotion"]
    result = None
    if regular:
        r, p = min(regular, key=lambda o: (-o[0].priority, -RANK[o[0].scope], o[1], o[0].code))
        result = (f"price_list:{r.code}", p)
    elif product.currency == "USD":
        result = ("list_price", product.list_price)
    if promos:
        r, p = min(promos, key=lambda o: (o[1], -o[0].priority, o[0].code))
        if result is None or p < result[1]:
            result = (f"promotion:{r.code}", p)
    return result


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_the_resolved_price_is_the_documented_winner(scenario):
    product, lists, entries, contracts, on, quantity, channel, basis = scenario
    book = PriceBook(lists=lists, entries=entries, contracts=contracts, category_parents=PARENTS, tax_basis=basis)
    expected = oracle(*scenario)
    if expected is None:
        with pytest.raises(NoPriceFound):
            book.resolve(BUYER, product, quantity, on, channel)
        with pytest.raises(NoPriceFound):
            book.resolve_many(BUYER, {product.id: product}, [(product.id, quantity)], on, channel)
        return
    got = book.resolve(BUYER, product, quantity, on, channel)
    assert (got.rule, got.unit_price) == expected
    # the fast many-line path decides the same, and explains lazily with the same winner
    many = book.resolve_many(BUYER, {product.id: product}, [(product.id, quantity)], on, channel)[0]
    assert (many.rule, many.unit_price, many.source_id) == (got.rule, got.unit_price, got.source_id)
    assert many.explanation == got.explanation
    # and the explanation names exactly one winner, the same rule
    winners = [e for e in got.explanation if e["result"] == "won"]
    assert len(winners) == 1 and winners[0]["rule"] == got.rule
    # as the service builds it: the applicable lists over a shared table of every list
    served = _as_served(lists, entries, contracts, on, channel, basis)
    line = served.resolve_many(BUYER, {product.id: product}, [(product.id, quantity)], on, channel)[0]
    assert (line.rule, line.unit_price, line.source_id, line.explanation) == \
        (got.rule, got.unit_price, got.source_id, got.explanation)


def _as_served(lists, entries, contracts, on, channel, basis):
    """A book like `service.load_price_book` makes: only the applicable lists, and an entry table
    (cached and shared between buyers) that holds every list, the others included."""
    table = EntryTable.build((rule, ListIndex.build([e for e in entries if e.price_list_id == rule.id]))
                             for rule in lists)
    applicable = [rule for rule in lists if list_applies(rule, BUYER, on, channel) is None]
    return PriceBook(lists=applicable, contracts=contracts, category_parents=PARENTS, table=table, tax_basis=basis)


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.integers(1, 45))
def test_many_lines_of_an_order_share_one_view(scenario, other_quantity):
    """Lines priced together (one active view, category tiers worked out once per category)
    get what each would get alone."""
    product, lists, entries, contracts, on, quantity, channel, basis = scenario
    book = PriceBook(lists=lists, entries=entries, contracts=contracts, category_parents=PARENTS, tax_basis=basis)
    lines = [(product.id, quantity), (product.id, Decimal(other_quantity)), (product.id, quantity)]
    try:
        alone = [book.resolve(BUYER, product, q, on, channel) for _, q in lines]
    except NoPriceFound:
        with pytest.raises(NoPriceFound):
            book.resolve_many(BUYER, {product.id: product}, lines, on, channel)
        return
    together = book.resolve_many(BUYER, {product.id: product}, lines, on, channel)
    assert [(r.quantity, r.rule, r.unit_price, r.explanation) for r in together] == \
        [(r.quantity, r.rule, r.unit_price, r.explanation) for r in alone]
