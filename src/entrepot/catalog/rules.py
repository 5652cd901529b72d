"""Data-quality rules shared by master data (API, import and services use the same ones).

Each check appends a `FieldError` naming the field and the rule, so a caller can
report every problem of a record (or a CSV row) at once.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any

from stdnum import ean
from stdnum.exceptions import ValidationError as StdnumError

from entrepot.kernel.errors import FieldError
from entrepot.kernel.money import InvalidAmount, fits_storage, is_currency, to_decimal

# Amounts and quantities are stored with 4 places; SQLite keeps them as a scaled 64-bit
# integer (|value| < 9.2 × 10^14), so everything stored stays below 10^14 on both backends.
STORAGE_LIMIT = Decimal(10) ** 14
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-/]{0,63}$")


def check_code(errors: list[FieldError], field: str, value: Any) -> str | None:
    if value is None or not str(value).strip():
        errors.append(FieldError(field, "is required", "required"))
        return None
    code = str(value).strip()
    if not CODE.match(code):
        errors.append(FieldError(field, "letters, digits and . _ - / only, at most 64 characters", "pattern"))
        return None
    return code


def check_text(errors: list[FieldError], field: str, value: Any, *, required: bool = True,
               max_length: int = 200) -> str | None:
    if value is None or not str(value).strip():
        if required:
            errors.append(FieldError(field, "is required", "required"))
        return None if value is None else ""
    text = str(value).strip()
    if len(text) > max_length:
        errors.append(FieldError(field, f"at most {max_length} characters", "max_length"))
    return text


def check_currency(errors: list[FieldError], field: str, value: Any) -> str | None:
    if value is None or value == "":
        errors.append(FieldError(field, "is required", "required"))
        return None
    if not isinstance(value, str) or not is_currency(value):
        errors.append(FieldError(field, f"{value!r} is not an ISO 4217 currency code", "currency"))
        return None
    return value


def check_amount(errors: list[FieldError], field: str, value: Any, *, required: bool = True,
                 minimum: Decimal | None = Decimal("0"), positive: bool = False) -> Decimal | None:
    if value is None or value == "":
        if required:
            errors.append(FieldError(field, "is required", "required"))
        return None
    try:
        amount = to_decimal(value)
    except InvalidAmount as exc:
        errors.append(FieldError(field, str(exc), "decimal"))
        return None
    if positive and amount <= 0:
        errors.append(FieldError(field, "must be greater than 0", "positive"))
        return None
    if minimum is not None and amount < minimum:
        errors.append(FieldError(field, f"must not be less than {minimum}", "min"))
        return None
    if abs(amount) >= STORAGE_LIMIT:
        errors.append(FieldError(field, f"must be smaller than {STORAGE_LIMIT:,}", "max"))
        return None
    if not fits_storage(amount):
        errors.append(FieldError(field, "at most 4 decimal places", "scale"))
        return None
    return amount


def compact_gtin(value: str) -> str:
    """A barcode as products keep it (spaces and hyphens taken out), to look one up as scanned or typed."""
    return str(ean.compact(value))


def check_gtin(errors: list[FieldError], field: str, value: Any) -> str | None:
    """GTIN-8/12/13/14 (EAN/UPC) with a valid check digit, via python-stdnum."""
    if value is None or str(value).strip() == "":
        return None
    try:
        return str(ean.validate(str(value)))
    except StdnumError as exc:
        errors.append(FieldError(field, f"{value!r} is not a valid GTIN/EAN ({exc.message})", "gtin"))
        return None


def check_tax_id(errors: list[FieldError], field: str, tax_id: Any, country: Any) -> tuple[str | None, str | None]:
    """Validate a tax id with python-stdnum's rules for its country (VAT, EIN, ABN…)."""
    if tax_id is None or str(tax_id).strip() == "":
        if not country:
            return None, None
        if not re.fullmatch(r"[A-Za-z]{2}", str(country).strip()):
            errors.append(FieldError("tax_country", "a two-letter ISO country code", "country"))
            return None, None
        return None, str(country).strip().upper()
    from stdnum import get_cc_module, vatin

    raw = str(tax_id).strip()
    cc = str(country).strip().lower() if country else raw[:2].lower()
    if not re.fullmatch(r"[a-z]{2}", cc):
        errors.append(FieldError("tax_country", "a two-letter ISO country code is required with a tax id",
                                 "country"))
        return None, None
    module = None
    for kind in ("vat", "tin", "ein", "abn", "gst", "bn", "rfc"):
        module = get_cc_module(cc, kind)
        if module is not None:
            break
    try:
        if module is None:
            # No national rule known: accept an EU-style VAT number when it carries its prefix.
            compact = vatin.validate(raw)
        else:
            candidate = raw
            if candidate[:2].lower() == cc and not candidate[:2].isdigit():
                candidate = candidate[2:]
            compact = module.validate(candidate)
    except StdnumError as exc:
        errors.append(FieldError(field, f"{raw!r} is not a valid tax id for {cc.upper()} ({exc.message})", "tax_id"))
        return None, cc.upper()
    return str(compact), cc.upper()


# Two-letter territories CLDR names that are no country: the EU, the eurozone, the UN, "Outlying Oceania",
# pseudo-locales and "Unknown Region" (Kosovo, XK, is kept: it has its own tax and customs).
_NOT_COUNTRIES = frozenset({"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"})


def known_country(code: str) -> bool:
    """An ISO 3166 alpha-2 code of a country (capitals)."""
    from babel import Locale

    return (bool(re.fullmatch(r"[A-Z]{2}", code)) and code not in _NOT_COUNTRIES
            and code in Locale("en").territories)


def check_country(errors: list[FieldError], field: str, value: Any, *, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            errors.append(FieldError(field, "is required", "required"))
        return None
    code = str(value).strip().upper()
    if not known_country(code):
        errors.append(FieldError(field, f"{value!r} is not an ISO 3166 country code", "country"))
        return None
    return code


def check_int(errors: list[FieldError], field: str, value: Any, *, minimum: int = 0,
              maximum: int = 100000) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        errors.append(FieldError(field, "is not a whole number", "integer"))
        return None
    try:
        number = value if isinstance(value, int) else int(str(value).strip())
    except ValueError:
        errors.append(FieldError(field, f"{value!r} is not a whole number", "integer"))
        return None
    if number < minimum or number > maximum:
        errors.append(FieldError(field, f"must be between {minimum} and {maximum}", "range"))
        return None
    return number


def check_bool(errors: list[FieldError], field: str, value: Any) -> bool | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "y"):
        return True
    if text in ("false", "0", "no", "n"):
        return False
    errors.append(FieldError(field, f"{value!r} is not true or false", "boolean"))
    return None


def check_date(errors: list[FieldError], field: str, value: Any) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        errors.append(FieldError(field, f"{value!r} is not a date (YYYY-MM-DD)", "date"))
        return None


def check_period(errors: list[FieldError], valid_from: date | None, valid_to: date | None) -> None:
    if valid_from and valid_to and valid_to < valid_from:
        errors.append(FieldError("valid_to", "must not be before valid_from", "period"))
