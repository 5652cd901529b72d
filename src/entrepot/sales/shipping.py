"""Shipping charges, behind an interface a carrier connector can replace.

The built-in rater reads the tenant's rate tables: for a carrier service, the
band of the ship-to country (else the "*" zone) with the smallest
`max_weight_kg` that carries the order's weight; free when the goods total
reaches the band's `free_over`. No band → the service cannot carry it (422).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

from sqlalchemy import select

from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.audit import audit, snapshot
from entrepot.kernel.errors import Conflict, invalid
from entrepot.kernel.money import ZERO, is_currency, round_money
from entrepot.sales.models import ShippingRate


@dataclass(frozen=True)
class ShippingRequest:
    carrier: str
    service: str
    country: str | None
    weight_kg: Decimal
    goods_total: Decimal
    currency: str


@dataclass(frozen=True)
class ShippingQuote:
    carrier: str
    service: str
    charge: Decimal
    explanation: str


class ShippingRater(Protocol):
    def quote(self, uow: UnitOfWork, request: ShippingRequest) -> ShippingQuote: ...


def choose_band(rates: list[ShippingRate], request: ShippingRequest) -> ShippingRate | None:
    usable = [r for r in rates if r.currency == request.currency and r.max_weight_kg >= request.weight_kg]
    for zone in (request.country, "*"):
        bands = sorted((r for r in usable if r.zone == zone), key=lambda r: r.max_weight_kg)
        if bands:
            return bands[0]
    return None


class TableShippingRater:
    def quote(self, uow: UnitOfWork, request: ShippingRequest) -> ShippingQuote:
        rates = list(uow.session.scalars(select(ShippingRate).where(
            ShippingRate.carrier == request.carrier, ShippingRate.service == request.service)))
        band = choose_band(rates, request)
        if band is None:
            raise invalid("shipping_service", f"{request.carrier}/{request.service} has no rate for "
                          f"{request.weight_kg} kg to {request.country or 'this address'} in {request.currency}",
                          "shipping_rate")
        if band.free_over is not None and request.goods_total >= band.free_over:
            return ShippingQuote(request.carrier, request.service, ZERO,
                                 f"free: goods {request.goods_total} ≥ {band.free_over}")
        return ShippingQuote(request.carrier, request.service, round_money(band.charge, request.currency),
                             f"{band.zone} up to {band.max_weight_kg} kg")


_rater: ShippingRater = TableShippingRater()


def get_shipping_rater() -> ShippingRater:
    return _rater


def use_shipping_rater(rater: ShippingRater) -> None:
    """Swap the rater (a carrier connector registers itself here)."""
    global _rater
    _rater = rater


def create_shipping_rate(uow: UnitOfWork, *, carrier: str, service: str, max_weight_kg: Decimal, charge: Decimal,
                         currency: str, zone: str = "*", free_over: Decimal | None = None) -> ShippingRate:
    if not carrier.strip() or not service.strip():
        raise invalid("carrier", "carrier and service are required", "required")
    if zone != "*" and (len(zone) != 2 or not zone.isalpha() or not zone.isupper()):
        raise invalid("zone", "a two-letter country code in capitals, or *", "zone")
    if max_weight_kg <= 0:
        raise invalid("max_weight_kg", "must be greater than zero", "positive")
    if charge < 0:
        raise invalid("charge", "must not be negative", "non_negative")
    if not is_currency(currency):
        raise invalid("currency", f"{currency!r} is not an ISO 4217 currency", "currency")
    if free_over is not None and free_over < 0:
        raise invalid("free_over", "must not be negative", "non_negative")
    carrier, service = carrier.strip(), service.strip()
    # a second band of the same weight would never be charged (the first one found is), and a band cannot
    # be changed: refused rather than kept and silently ignored
    if any(r.zone == zone and r.currency == currency and r.max_weight_kg == max_weight_kg
           for r in uow.session.scalars(select(ShippingRate).where(ShippingRate.carrier == carrier,
                                                                   ShippingRate.service == service))):
        raise Conflict(f"{carrier}/{service} already has a band up to {max_weight_kg} kg to {zone} in {currency}",
                       field="max_weight_kg")
    rate = ShippingRate(carrier=carrier, service=service, zone=zone, max_weight_kg=max_weight_kg,
                        charge=charge, currency=currency, free_over=free_over)
    uow.session.add(rate)
    uow.session.flush()
    audit(uow, "shipping_rate.create", "shipping_rate", rate.id, after=snapshot(rate))
    return rate
