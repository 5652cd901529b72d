"""Money and quantity rules in one place: parsing, currencies, rounding.

Amounts are `decimal.Decimal` end to end. Rounding to a currency's minor unit
happens only through `round_money`, so every document rounds the same way.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache

from babel.numbers import get_currency_precision, list_currencies

ZERO = Decimal("0")
# Storage scale for amounts and quantities (4 places): unit prices like 0.1234 fit,
# document totals are rounded to the currency's minor unit on top of that.
STORAGE_PLACES = 4
STORAGE_QUANTUM = Decimal(1).scaleb(-STORAGE_PLACES)


class InvalidAmount(ValueError):
    """A value that is not an exact decimal amount."""


# ISO 4217 codes that no one invoices in: "no currency", testing, precious metals, bond-market and
# accounting units. (XAF, XOF, XPF and XCD are real currencies and stay.)
_NOT_MONEY = frozenset({"XXX", "XTS", "XAU", "XAG", "XPD", "XPT", "XBA", "XBB", "XBC", "XBD", "XDR", "XSU",
                        "XUA", "XFO", "XFU", "XRE"})


@lru_cache(maxsize=1)
def _known_currencies() -> frozenset[str]:
    return frozenset(list_currencies()) - _NOT_MONEY


def is_currency(code: str) -> bool:
    return isinstance(code, str) and len(code) == 3 and code.upper() == code and (
        code in _known_currencies()
    )


@lru_cache(maxsize=512)
def minor_unit(currency: str) -> int:
    """Decimal places of the currency's minor unit (USD 2, JPY 0, KWD 3)."""
    return int(get_currency_precision(currency))


def to_decimal(value: object) -> Decimal:
    """Parse a string, int or Decimal as an exact decimal. Floats are refused
    unless they come from JSON, where we take their shortest repr."""
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, bool):
        raise InvalidAmount("a boolean is not an amount")
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation as exc:
            raise InvalidAmount(f"{value!r} is not a decimal number") from exc
    else:
        raise InvalidAmount(f"{type(value).__name__} is not an amount")
    if not result.is_finite():
        raise InvalidAmount("amount must be finite")
    return result


@lru_cache(maxsize=512)
def _money_quantum(currency: str) -> Decimal:
    # Made once per currency: a document's answer rounds dozens of amounts, and making the
    # quantum each time cost more than the rounding.
    return Decimal(1).scaleb(-minor_unit(currency))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round half-up to the currency's minor unit. The only rounding of money."""
    return amount.quantize(_money_quantum(currency), rounding=ROUND_HALF_UP)


def quantize_storage(value: Decimal) -> Decimal:
    """Round to the storage scale (4 places); used for unit prices and quantities."""
    return value.quantize(STORAGE_QUANTUM, rounding=ROUND_HALF_UP)


def fits_storage(value: Decimal) -> bool:
    """True when the value needs no more places than storage keeps."""
    exponent = value.as_tuple().exponent
    return isinstance(exponent, int) and (exponent >= -STORAGE_PLACES or value == quantize_storage(value))


def format_quantity(quantity: Decimal) -> str:
    """A quantity as it reads: no exponent, no trailing zeros ("5", "2.5")."""
    text = format(quantity.normalize(), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def format_amount(amount: Decimal, currency: str) -> str:
    """Canonical JSON form: a string with exactly the currency's minor unit places."""
    return str(round_money(amount, currency))


def format_price(price: Decimal, currency: str) -> str:
    """A unit price or cost: the currency's places, more only when the price has them ("12.50", "2.125")."""
    rounded = round_money(price, currency)
    return str(rounded) if rounded == price else format_quantity(price)
