"""The dates a business action may carry.

A stock move, a payment received: what happened, dated today or before, and not further back
than a year and a day (a later correction is a new document dated today). A journal entry typed
by hand may be dated ahead (an accrual) or years back (opening balances), within bounds. Without
a bound a typo such as 0001-01-01 opened a fiscal year 1 in the ledger."""

from __future__ import annotations

from datetime import date, timedelta

from entrepot.kernel import clock
from entrepot.kernel.errors import invalid

MAX_BACKDATE_DAYS = 366
LEDGER_YEARS_BACK = 10  # opening balances and history typed in by hand
LEDGER_DAYS_AHEAD = 366  # accruals and reversals dated into the coming year


def check_past_date(on: date, field: str, what: str) -> date:
    """`on` if it is today or at most MAX_BACKDATE_DAYS before; else a 422 naming `field`."""
    today = clock.today()
    if on > today:
        raise invalid(field, f"{what} cannot be dated in the future", "not_future")
    if (today - on).days > MAX_BACKDATE_DAYS:
        raise invalid(field, f"at most {MAX_BACKDATE_DAYS} days in the past", "range")
    return on


def check_ledger_date(on: date, field: str) -> date:
    """`on` if it is within LEDGER_YEARS_BACK years before today and LEDGER_DAYS_AHEAD days after."""
    today = clock.today()
    earliest = today.replace(year=today.year - LEDGER_YEARS_BACK, day=min(today.day, 28))
    if not earliest <= on <= today + timedelta(days=LEDGER_DAYS_AHEAD):
        raise invalid(field, f"between {earliest.isoformat()} and {LEDGER_DAYS_AHEAD} days from today", "range")
    return on
