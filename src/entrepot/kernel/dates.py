"""The dates a business action may carry: what happened, not what is planned.

A stock move, a payment received: dated today or before, and not further back than a year
and a day (a later correction is a new document dated today). Without a bound a typo such
as 0001-01-01 opened a fiscal year 1 in the ledger."""

from __future__ import annotations

from datetime import date

from entrepot.kernel import clock
from entrepot.kernel.errors import invalid

MAX_BACKDATE_DAYS = 366


def check_past_date(on: date, field: str, what: str) -> date:
    """`on` if it is today or at most MAX_BACKDATE_DAYS before; else a 422 naming `field`."""
    today = clock.today()
    if on > today:
        raise invalid(field, f"{what} cannot be dated in the future", "not_future")
    if (today - on).days > MAX_BACKDATE_DAYS:
        raise invalid(field, f"at most {MAX_BACKDATE_DAYS} days in the past", "range")
    return on
