"""Periodic jobs: croniter schedules, run by one worker at a time under a database lease.

Domains' jobs are listed in JOBS here (the worker is the one layer that may
call every domain): `JOBS.append(Job("sales.expire_quotes", "*/5 * * * *", expire_quotes))`
where the function takes no arguments and opens its own units of work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from croniter import croniter
from sqlalchemy import select

from entrepot.db.infrastructure import Lease
from entrepot.db.uow import platform_uow
from entrepot.integration.models import ScheduledJobState
from entrepot.integration.sla import check_sla
from entrepot.inventory.service import announce_expiring_lots_everywhere
from entrepot.kernel import clock
from entrepot.kernel.cancellation import calling_off_when
from entrepot.sales.quotes import expire_all_quotes
from entrepot.sales.service import run_period_invoicing_everywhere
from entrepot.worker import leases

log = structlog.get_logger("entrepot.worker.scheduler")
JOB_LEASE = timedelta(minutes=10)
RENEW_EVERY = JOB_LEASE / 3  # a running job's lease is renewed this often, so it never runs out under it
# A failed run is tried again this soon, unless its schedule comes first: a nightly job (period
# invoicing) that failed on a passing cause (the database busy, a deploy) should not wait a day.
RETRY_FAILED_AFTER = timedelta(minutes=15)


@dataclass(frozen=True)
class Job:
    name: str
    cron: str
    run: Callable[[], object]


def _sla_check() -> None:
    with platform_uow() as uow:
        check_sla(uow.session)
        uow.commit()


JOBS: list[Job] = [
    Job("integration.sla_check", "* * * * *", _sla_check),
    Job("sales.expire_quotes", "5 * * * *", expire_all_quotes),  # hourly; validity is by date
    # daily after midnight UTC: tenants invoicing per week or month get the run of the period just ended
    Job("sales.period_invoicing", "30 0 * * *", run_period_invoicing_everywhere),
    # hourly, so a lot received inside its warning window is announced the same hour; once per lot
    Job("inventory.announce_expiring_lots", "20 * * * *", announce_expiring_lots_everywhere),
]


@dataclass(frozen=True)
class JobStatus:
    """What an operator reads of a job: when it last ran and with what error, when it runs next, and
    which worker runs it now (the live lease's holder)."""

    name: str
    cron: str | None  # None: a job this release no longer has
    last_run_at: datetime | None
    next_run_at: datetime | None
    last_error: str | None
    running_on: str | None


def job_statuses(*, url: str | None = None) -> list[JobStatus]:
    """Every job this release runs and every job on record, by name."""
    now = clock.now()
    with platform_uow(readonly=True, url=url) as uow:
        states = {s.name: s for s in uow.session.scalars(select(ScheduledJobState))}
        held = {name.removeprefix("job:"): holder for name, holder, expires_at in uow.session.execute(
            select(Lease.name, Lease.holder, Lease.expires_at).where(Lease.name.like("job:%")))
            if holder and _utc(expires_at) > now}
    crons = {job.name: job.cron for job in JOBS}
    return [JobStatus(name, crons.get(name), _utc(state.last_run_at) if state else None,
                      _utc(state.next_run_at) if state else None, state.last_error if state else None,
                      held.get(name))
            for name in sorted(crons.keys() | states.keys()) for state in [states.get(name)]]


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite gives the stored UTC times back without their zone."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def next_after(cron: str, moment: datetime) -> datetime:
    return croniter(cron, moment).get_next(datetime)


@contextmanager
def _renewing(lease: str, holder: str, url: str | None) -> Iterator[None]:
    """Keep renewing the lease while the job runs: a job longer than the lease would otherwise be
    started again by another worker (its next run is recorded only when it ends)."""
    done, lost = threading.Event(), threading.Event()

    def renew() -> None:
        while not done.wait(RENEW_EVERY.total_seconds()):
            try:
                if not leases.acquire(lease, holder, JOB_LEASE, url=url):
                    log.warning("job_lease_lost", lease=lease, holder=holder)
                    lost.set()  # the job stops at its next step (`stop_if_called_off`)
                    return
            except Exception:  # e.g. the database busy: try again at the next beat
                log.exception("job_lease_renewal_failed", lease=lease)

    beat = threading.Thread(target=renew, name=f"renew-{lease}", daemon=True)
    beat.start()
    try:
        with calling_off_when(lost.is_set):
            yield
    finally:
        done.set()
        beat.join()


def run_due(holder: str, *, jobs: list[Job] | None = None, url: str | None = None) -> list[str]:
    """Run every job that is due and whose lease this worker gets. Returns the names run."""
    ran: list[str] = []
    for job in jobs if jobs is not None else JOBS:
        now = clock.now()
        with platform_uow(readonly=True, url=url) as uow:
            state = uow.session.get(ScheduledJobState, job.name)
            due_at = state.next_run_at if state else None
        if due_at is None:
            with platform_uow(url=url) as uow:
                if uow.session.get(ScheduledJobState, job.name) is None:
                    uow.session.add(ScheduledJobState(name=job.name, next_run_at=next_after(job.cron, now)))
                    uow.commit()
            continue
        if now < due_at or not leases.acquire(f"job:{job.name}", holder, JOB_LEASE, url=url):
            continue
        try:
            with platform_uow(readonly=True, url=url) as uow:
                state = uow.session.get(ScheduledJobState, job.name)
                still_due = state is not None and state.next_run_at <= now
            if not still_due:
                continue  # another worker ran it between our read and our lease
            error = None
            try:
                with _renewing(f"job:{job.name}", holder, url):
                    job.run()
                ran.append(job.name)
            except Exception as exc:  # a failing job must not stop the scheduler
                log.exception("job_failed", job=job.name)
                error = f"{type(exc).__name__}: {exc}"[:2000]
            with platform_uow(url=url) as uow:
                state = uow.session.get(ScheduledJobState, job.name)
                assert state is not None
                state.last_run_at = now
                state.next_run_at = next_after(job.cron, clock.now())
                if error is not None:
                    state.next_run_at = min(state.next_run_at, clock.now() + RETRY_FAILED_AFTER)
                state.last_error = error
                uow.commit()
        finally:
            leases.release(f"job:{job.name}", holder, url=url)
    return ran
