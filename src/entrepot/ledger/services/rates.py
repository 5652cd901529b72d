"""Exchange rates per date: 1 unit of a currency = `rate` functional units from `valid_on`."""

from __future__ import annotations

import csv
import io
from datetime import date
from decimal import Decimal

from sqlalchemy import select

from entrepot.catalog.csvio import records
from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.audit import audit, snapshot
from entrepot.kernel.errors import FieldError, ValidationFailed, invalid
from entrepot.kernel.money import InvalidAmount, is_currency, to_decimal
from entrepot.ledger.errors import NoExchangeRate
from entrepot.ledger.models import ExchangeRate
from entrepot.ledger.services.accounts import cache, functional_currency

ONE = Decimal(1)


def rate_on(uow: UnitOfWork, currency: str, on: date, field: str = "currency") -> Decimal:
    """The rate in force on `on` (latest on or before it); 1 for the functional currency."""
    if currency == functional_currency(uow):
        return ONE
    key = f"rate:{currency}:{on.isoformat()}"
    c = cache(uow)
    if key not in c:
        rate = uow.session.scalar(
            select(ExchangeRate.rate)
            .where(ExchangeRate.currency == currency, ExchangeRate.valid_on <= on)
            .order_by(ExchangeRate.valid_on.desc())
            .limit(1)
        )
        if rate is None:
            raise NoExchangeRate(currency, on, field)
        c[key] = rate
    return c[key]  # type: ignore[no-any-return]


def _validate(uow: UnitOfWork, currency: str, rate: object, prefix: str = "") -> Decimal:
    if not is_currency(currency):
        raise invalid(f"{prefix}currency", f"{currency!r} is not an ISO 4217 currency", "currency")
    if currency == functional_currency(uow):
        raise invalid(f"{prefix}currency", "the functional currency has rate 1 by definition", "functional")
    try:
        value = to_decimal(rate)
    except InvalidAmount as exc:
        raise invalid(f"{prefix}rate", str(exc), "decimal") from exc
    if value <= 0:
        raise invalid(f"{prefix}rate", "must be greater than zero", "positive")
    if value.as_tuple().exponent < -12 or value >= Decimal(10) ** 12:  # type: ignore[operator]
        raise invalid(f"{prefix}rate", "at most 12 decimal places and below 10^12", "precision")
    return value


def set_rate(uow: UnitOfWork, currency: str, valid_on: date, rate: object) -> ExchangeRate:
    """Enter (or correct) the rate of a day. Entries already posted keep the rate they used."""
    value = _validate(uow, currency, rate)
    row = uow.session.scalar(
        select(ExchangeRate).where(ExchangeRate.currency == currency, ExchangeRate.valid_on == valid_on)
    )
    if row is not None and row.rate == value:  # the same rate again (a feed resending its window): no write
        return row
    before = snapshot(row) if row else None
    if row is None:
        row = ExchangeRate(currency=currency, valid_on=valid_on, rate=value)
        uow.session.add(row)
    else:
        row.rate = value
    uow.session.flush()
    audit(uow, "ledger.exchange_rate.set", "ledger_exchange_rate", row.id, before=before, after=snapshot(row))
    c = cache(uow)
    for key in [k for k in c if k.startswith("rate:")]:
        del c[key]
    return row


def import_rates_csv(uow: UnitOfWork, text: str) -> list[ExchangeRate]:
    """Rows `currency,date,rate` (header optional). All or nothing: one bad row, nothing written."""
    parsed: list[tuple[str, date, Decimal]] = []
    errors: list[FieldError] = []
    first_line: dict[tuple[str, date], int] = {}  # a currency's day given twice: which rate was meant?
    # n is the line in the file, as for every CSV import (not the record count)
    for n, row in records(csv.reader(io.StringIO(text, newline=""))):
        if not row or all(not c.strip() for c in row):
            continue
        if n == 1 and row[0].strip().lower() == "currency":
            continue
        if len(row) != 3:
            errors.append(FieldError(f"line {n}", "expected currency,date,rate", "columns"))
            continue
        cur, day, rate = (c.strip() for c in row)
        try:
            valid_on = date.fromisoformat(day)
        except ValueError:
            errors.append(FieldError(f"line {n}.date", f"{day!r} is not a YYYY-MM-DD date", "date"))
            continue
        if (cur, valid_on) in first_line:
            errors.append(FieldError(f"line {n}", f"{cur} on {day} is also on line {first_line[cur, valid_on]}",
                                     "duplicate"))
            continue
        first_line[cur, valid_on] = n
        try:
            parsed.append((cur, valid_on, _validate(uow, cur, rate, prefix=f"line {n}.")))
        except ValidationFailed as exc:
            errors.extend(exc.errors)
    if errors:
        raise ValidationFailed(errors)
    if not parsed:
        raise invalid("body", "no rates in the CSV (expected currency,date,rate rows)", "required")
    return [set_rate(uow, cur, day, rate) for cur, day, rate in parsed]


def list_rates(uow: UnitOfWork, currency: str | None = None):  # type: ignore[no-untyped-def]
    query = select(ExchangeRate)
    if currency:
        query = query.where(ExchangeRate.currency == currency)
    return query
