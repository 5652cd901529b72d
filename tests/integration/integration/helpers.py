from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from entrepot.integration import webhooks
from entrepot.kernel import clock
from entrepot.worker.runtime import Worker
from tests.conftest import TenantHandle


def make_endpoint(tenant: TenantHandle, url: str, event_types: list[str] | None = None, **kw: Any):
    with tenant.uow() as uow:
        issued = webhooks.create_endpoint(uow, url=url, event_types=event_types or ["*"], **kw)
        uow.commit()
    return issued


def drive(worker: Worker, until: Callable[[], bool], timeout: float = 60.0) -> None:
    """Run worker passes until `until()` holds (the PostgreSQL feed holds events back while an
    older writing transaction is open, which on a loaded CI machine can take a while)."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time; open writers: " + _open_writers())
        if not worker.run_once():
            time.sleep(0.02)


def settle(worker: Worker, seconds: float = 0.3) -> None:
    """Run passes for a moment (to show that something does NOT happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not worker.run_once():
            time.sleep(0.02)


def advance_past(delay: timedelta) -> None:
    clock.advance(delay * 1.2 + timedelta(seconds=1))


def _open_writers() -> str:
    """What may hold the PostgreSQL feed back: transactions with an xid, cluster-wide."""
    try:
        from sqlalchemy import text

        from entrepot.db.engine import get_engine
        from entrepot.db.settings import get_settings

        url = get_settings().database_url
        if not url.startswith("postgresql"):
            return "n/a (SQLite)"
        with get_engine(url).connect() as conn:
            rows = conn.execute(text(
                "SELECT datname, pid, state, backend_xid::text, now() - xact_start AS age, left(query, 120) "
                "FROM pg_stat_activity WHERE backend_xid IS NOT NULL")).all()
        return "; ".join(str(tuple(r)) for r in rows) or "none"
    except Exception as exc:
        return f"(could not list: {exc})"
