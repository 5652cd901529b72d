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


def drive(worker: Worker, until: Callable[[], bool], timeout: float = 15.0) -> None:
    """Run worker passes until `until()` holds (the PostgreSQL feed may hold events back briefly)."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
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
