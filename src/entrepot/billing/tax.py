"""The built-in tax engine, behind an interface a tax-service connector can replace.

Rules: the jurisdiction is the ship-to country and region; a rate is chosen
by product tax class (region rate before country rate, exact class before the
"*" class) and must be valid on the document date (of equally specific rates, the
latest to start, then the last entered); an exempt customer pays no
tax; prices are tax-exclusive unless the tenant setting `prices_include_tax`
says otherwise; tax is rounded per line, or once per document when the tenant
setting `tax_rounding` is "document" (then spread back over the lines so they
still add up). With no rate configured tax is zero.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Protocol

from sqlalchemy import select

from entrepot.billing.models import TaxRate
from entrepot.catalog.models import Product
from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.tenants import tenant_facts
from entrepot.kernel.money import ZERO, minor_unit, round_money

HUNDRED = Decimal(100)


@dataclass(frozen=True)
class TaxableLine:
    key: Hashable
    tax_class: str
    amount: Decimal  # the line's extended price, net (or gross when prices include tax)


@dataclass(frozen=True)
class TaxRequest:
    currency: str
    country: str | None
    region: str | None
    lines: Sequence[TaxableLine]
    on: date
    exempt: bool = False
    prices_include_tax: bool = False
    rounding: str = "line"  # "line" | "document"


@dataclass(frozen=True)
class LineTax:
    key: Hashable
    net: Decimal
    rate_percent: Decimal
    tax: Decimal


@dataclass(frozen=True)
class TaxResult:
    lines: list[LineTax]

    @property
    def net_total(self) -> Decimal:
        return sum((t.net for t in self.lines), ZERO)

    @property
    def tax_total(self) -> Decimal:
        return sum((t.tax for t in self.lines), ZERO)

    def by_key(self) -> dict[Hashable, LineTax]:
        return {t.key: t for t in self.lines}


class TaxEngine(Protocol):
    def calculate(self, uow: UnitOfWork, request: TaxRequest) -> TaxResult: ...


@dataclass(frozen=True)
class RateRow:
    country: str
    region: str | None
    tax_class: str
    rate_percent: Decimal
    valid_from: date | None
    valid_to: date | None


def choose_rate(rates: Sequence[RateRow], country: str | None, region: str | None, tax_class: str,
                on: date) -> Decimal:
    """The most specific rate valid on `on`: region (whatever its case and spaces) before country,
    class before "*". Of equally specific rates, the one that starts latest wins (no `valid_from`
    starts first), and of those the last entered (`rates` are in the order entered): a rate cannot be
    changed, so a new rate from a day replaces the open-ended one before it from that day, and a rate
    entered again corrects it."""
    if not country:
        return ZERO
    region = region_key(region)
    best: tuple[tuple[int, date], Decimal] | None = None
    for r in rates:
        if r.country != country or (r.region is not None and region_key(r.region) != region):
            continue
        if r.tax_class not in (tax_class, "*"):
            continue
        if (r.valid_from and on < r.valid_from) or (r.valid_to and on > r.valid_to):
            continue
        rank = ((2 if r.region is not None else 0) + (1 if r.tax_class == tax_class else 0),
                r.valid_from or date.min)
        if best is None or rank >= best[0]:
            best = (rank, r.rate_percent)
    return best[1] if best else ZERO


def region_key(region: str | None) -> str | None:
    """A region as rates and ship-tos are matched on it: "ca", " CA" and "CA" are one region (an
    address is typed by people and web shops; a rate is entered once)."""
    return (region.strip().upper() or None) if region else None


def compute(request: TaxRequest, rates: Sequence[RateRow]) -> TaxResult:
    """Pure tax arithmetic over already-loaded rates (unit-testable without a database)."""
    cur = request.currency
    raw: list[tuple[TaxableLine, Decimal, Decimal]] = []  # line, rate, unrounded tax
    for line in request.lines:
        rate = ZERO if request.exempt else choose_rate(rates, request.country, request.region, line.tax_class,
                                                       request.on)
        amount = round_money(line.amount, cur)
        if request.prices_include_tax:
            exact = amount - amount / (1 + rate / HUNDRED)
        else:
            exact = amount * rate / HUNDRED
        raw.append((line, rate, exact))
    if request.rounding == "document":
        taxes = _spread(round_money(sum((e for _, _, e in raw), ZERO), cur), [e for _, _, e in raw], cur)
    else:
        taxes = [round_money(e, cur) for _, _, e in raw]
    result = []
    for (line, rate, _), tax in zip(raw, taxes, strict=True):
        amount = round_money(line.amount, cur)
        net = amount - tax if request.prices_include_tax else amount
        result.append(LineTax(line.key, net, rate, tax))
    return TaxResult(result)


def _spread(total: Decimal, exact: list[Decimal], currency: str) -> list[Decimal]:
    """Split a rounded document total over lines by largest remainder, so lines add up to it."""
    unit = Decimal(1).scaleb(-minor_unit(currency))
    floors = [(e / unit).to_integral_value(rounding="ROUND_FLOOR") * unit for e in exact]
    rest = int(((total - sum(floors, ZERO)) / unit).to_integral_value())
    order = sorted(range(len(exact)), key=lambda i: exact[i] - floors[i], reverse=True)
    for i in order[:max(rest, 0)]:
        floors[i] += unit
    return floors


class TableTaxEngine:
    """Rates from the tenant's `tax_rates` table; settings from the tenant."""

    def calculate(self, uow: UnitOfWork, request: TaxRequest) -> TaxResult:
        if request.exempt or not request.country:
            rates: list[RateRow] = []
        else:
            rates = tenant_rates(uow, request.country)
        return compute(request, rates)


def tenant_rates(uow: UnitOfWork, country: str) -> list[RateRow]:
    cache = uow.session.info.setdefault("billing.tax_rates", {})
    if country not in cache:
        cache[country] = [
            RateRow(r.country, r.region, r.tax_class, r.rate_percent, r.valid_from, r.valid_to)
            for r in uow.session.scalars(select(TaxRate).where(TaxRate.country == country)
                                         .order_by(TaxRate.id))  # ids are time-ordered: as entered
        ]
    return cache[country]


def tax_settings(uow: UnitOfWork) -> tuple[bool, str]:
    """(prices_include_tax, rounding) from the tenant's settings, read once per unit of work."""

    def read() -> tuple[bool, str]:
        settings = tenant_facts(uow).settings
        return (bool(settings.get("prices_include_tax", False)),
                "document" if settings.get("tax_rounding") == "document" else "line")

    return uow.memo("billing.tax_settings", read)  # type: ignore[no-any-return]


_engine: TaxEngine = TableTaxEngine()


def get_tax_engine() -> TaxEngine:
    return _engine


def use_tax_engine(engine: TaxEngine) -> None:
    """Swap the engine (a tax-service connector registers itself here)."""
    global _engine
    _engine = engine


def calculate_tax(uow: UnitOfWork, *, currency: str, country: str | None, region: str | None,
                  lines: Sequence[TaxableLine], on: date, exempt: bool = False) -> TaxResult:
    include, rounding = tax_settings(uow)
    return get_tax_engine().calculate(uow, TaxRequest(currency, country, region, lines, on, exempt, include,
                                                      rounding))


def product_tax_rates(uow: UnitOfWork, product_ids: Sequence[uuid.UUID], country: str | None, region: str | None,
                      on: date, currency: str) -> dict[uuid.UUID, Decimal]:
    """Each product's tax rate (percent) at this ship-to on this date, from the engine in use, so
    pricing can convert a list kept on the other tax basis. A customer's exemption is not applied:
    a gross list price holds the tax of the place, which an exempt customer then does not pay."""
    classes = dict(uow.session.execute(select(Product.id, Product.tax_class).where(Product.id.in_(product_ids))).all())
    lines = [TaxableLine(pid, classes.get(pid) or "standard", Decimal(100)) for pid in product_ids]
    result = get_tax_engine().calculate(uow, TaxRequest(currency, country, region, lines, on))
    return {t.key: t.rate_percent for t in result.lines}  # type: ignore[misc]
