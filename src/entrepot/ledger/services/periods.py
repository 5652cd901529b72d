"""Fiscal years and monthly periods: created on demand, closed to lock them."""

from __future__ import annotations

import calendar
import uuid
from datetime import date

from sqlalchemy import bindparam, select

from entrepot.db.insert_if_missing import insert_if_missing
from entrepot.db.prepared import Prepared
from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.audit import audit, snapshot
from entrepot.integration.outbox import record_event
from entrepot.kernel import clock
from entrepot.kernel.errors import NotFound
from entrepot.kernel.ids import new_id
from entrepot.ledger.errors import PeriodClosed
from entrepot.ledger.events import PeriodClosedEvent, PeriodReopened
from entrepot.ledger.models import FiscalYear, Period
from entrepot.ledger.services.accounts import CHART_STAMP, cache, chart_stamp_columns
from entrepot.ledger.states import PERIOD, PeriodState


def ensure_period(uow: UnitOfWork, on: date) -> Period:
    """The period holding `on`, created (with its fiscal year) when first needed.

    INSERT … ON CONFLICT DO NOTHING, so two transactions posting into a new
    month at once both end up with the one row."""
    session = uow.session
    period = session.scalar(select(Period).where(Period.year == on.year, Period.month == on.month))
    if period is not None:
        return period
    insert_if_missing(session, FiscalYear, {
        "id": new_id(), "tenant_id": uow.tenant_id, "year": on.year, "starts_on": date(on.year, 1, 1),
        "ends_on": date(on.year, 12, 31), "created_at": clock.now(), "updated_at": clock.now()},
        key=["tenant_id", "year"])
    year_id = session.scalar(select(FiscalYear.id).where(FiscalYear.year == on.year))
    last = calendar.monthrange(on.year, on.month)[1]
    period_id = new_id()
    result = insert_if_missing(session, Period, {
        "id": period_id, "tenant_id": uow.tenant_id, "fiscal_year_id": year_id, "year": on.year,
        "month": on.month, "starts_on": date(on.year, on.month, 1), "ends_on": date(on.year, on.month, last),
        "state": PeriodState.open.value, "version": 1, "created_at": clock.now(), "updated_at": clock.now()},
        key=["tenant_id", "year", "month"])
    period = session.scalar(select(Period).where(Period.year == on.year, Period.month == on.month))
    assert period is not None
    if result.rowcount:  # type: ignore[attr-defined]
        audit(uow, "ledger.period.create", "ledger_period", period.id, after=snapshot(period))
    return period


_PERIODS = Period.__table__
_PERIOD_OF_MONTH = select(_PERIODS.c.id, _PERIODS.c.state, *chart_stamp_columns(bindparam("tenant_id"))).where(
    _PERIODS.c.tenant_id == bindparam("tenant_id"), _PERIODS.c.year == bindparam("year"),
    _PERIODS.c.month == bindparam("month"))
# Prepared: every posting transaction asks. The share lock is PostgreSQL's; SQLite's one
# writer already keeps a close out while a posting transaction runs. The chart's stamp comes
# along (accounts.role_accounts): it spares the transaction reading the accounts by role.
_PERIOD_FOR_POSTING = {"postgresql": Prepared(_PERIOD_OF_MONTH.with_for_update(read=True, of=_PERIODS)),
                       "sqlite": Prepared(_PERIOD_OF_MONTH)}


def period_state(uow: UnitOfWork, on: date) -> tuple[uuid.UUID, str]:
    """The id and state of the period of `on` (created when first needed), share-locked on
    PostgreSQL so a concurrent close waits for this transaction to commit (and it waits for a
    close). Read as a plain row, once per month per transaction: every posting transaction asks."""
    key = f"period:{on.year}-{on.month}"
    c = cache(uow)
    found: tuple[uuid.UUID, str] | None = c.get(key)
    if found is not None:  # already read and share-locked in this transaction
        return found
    # Through the session, not uow.connection(): inside a savepoint the session opened (inventory's
    # with_retry) this begins it, as every session statement would.
    connection = uow.session.connection()
    query = _PERIOD_FOR_POSTING[connection.dialect.name]
    params = {"tenant_id": uow.tenant_id, "year": on.year, "month": on.month}
    rows = query.execute(connection, params)
    if not rows:  # the month's first posting: create the period, then read (and lock) it as above
        ensure_period(uow, on)
        rows = query.execute(connection, params)
    period_id, state, accounts, versions = rows[0]
    c.setdefault(CHART_STAMP, (int(accounts), int(versions)))  # the first read, before any account read
    found = c[key] = (period_id, state)
    return found


def open_period_for_posting(uow: UnitOfWork, on: date) -> uuid.UUID:
    """The id of the open period of `on` (see period_state); PeriodClosed when it is closed."""
    period_id, state = period_state(uow, on)
    if state != PeriodState.open:
        raise PeriodClosed(
            f"period {on.year}-{on.month:02d} is closed; post into an open period "
            f"or have it reopened (finance.period.reopen)",
            period=f"{on.year}-{on.month:02d}",
        )
    return period_id


def get_period(uow: UnitOfWork, period_id: uuid.UUID, *, lock: bool = False) -> Period:
    query = select(Period).where(Period.id == period_id)
    if lock:
        query = query.with_for_update()
    period = uow.session.scalar(query)
    if period is None:
        raise NotFound("period", period_id)
    return period


def list_periods(uow: UnitOfWork, year: int | None = None) -> list[Period]:
    query = select(Period).order_by(Period.starts_on)
    if year is not None:
        query = query.where(Period.year == year)
    return list(uow.session.scalars(query))


def close_period(uow: UnitOfWork, period: Period) -> Period:
    before = snapshot(period)
    PERIOD.apply(period, "close")
    cache(uow).pop(f"period:{period.year}-{period.month}", None)
    period.closed_at = clock.now()
    period.closed_by = uow.actor.ref
    uow.session.flush()
    audit(uow, "ledger.period.close", "ledger_period", period.id, before=before, after=snapshot(period))
    record_event(uow, PeriodClosedEvent(period_id=str(period.id), year=period.year, month=period.month),
                 subject=f"period/{period.id}")
    return period


def reopen_period(uow: UnitOfWork, period: Period) -> Period:
    before = snapshot(period)
    PERIOD.apply(period, "reopen")
    cache(uow).pop(f"period:{period.year}-{period.month}", None)
    period.closed_at = None
    period.closed_by = None
    uow.session.flush()
    audit(uow, "ledger.period.reopen", "ledger_period", period.id, before=before, after=snapshot(period))
    record_event(uow, PeriodReopened(period_id=str(period.id), year=period.year, month=period.month),
                 subject=f"period/{period.id}")
    return period
