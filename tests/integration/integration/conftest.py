"""Fixtures for the integration layer: a real webhook receiver, NATS, the simulated clock,
and the end-of-session check that every recorded event matches its schema."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest
from sqlalchemy import update

from entrepot.db.uow import platform_uow
from entrepot.integration.models import WebhookEndpoint
from entrepot.kernel import clock
from tests.integration.integration.receiver import Receiver
from tests.integration.integration.schema_check import invalid_events

NATS_URL = os.environ.get("ENTREPOT_TEST_NATS_URL", "nats://127.0.0.1:4222")
IN_CI = bool(os.environ.get("CI"))


@pytest.fixture(scope="session", autouse=True)
def every_event_matches_its_schema(request: pytest.FixtureRequest) -> Iterator[None]:
    """At the end of the session, every outbox row in the test databases must match its schema."""
    urls = []
    for name in ("sqlite_url", "postgres_url"):
        with contextlib.suppress(pytest.skip.Exception):
            urls.append(request.getfixturevalue(name))
    yield
    problems = invalid_events(urls)
    if problems:
        pytest.fail("events that do not match their schema:\n" + "\n".join(problems[:20]))


@pytest.fixture
def receiver(db_url: str) -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()
    clock.reset()
    # the worker's fan-out and claims are platform-wide: leave no live endpoint to later tests
    with platform_uow(url=db_url) as uow:
        uow.session.execute(update(WebhookEndpoint).values(enabled=False).execution_options(
            synchronize_session=False))
        uow.commit()


@pytest.fixture(autouse=True)
def _real_clock() -> Iterator[None]:
    yield
    clock.reset()


def _nats_problem(url: str) -> str | None:
    import asyncio

    import nats

    async def probe() -> None:
        nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False)
        try:
            await nc.jetstream().account_info()
        finally:
            await nc.close()

    try:
        asyncio.run(probe())
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def nats_url() -> str:
    problem = _nats_problem(NATS_URL)
    if problem:
        if IN_CI:
            pytest.fail(f"NATS JetStream is required under CI but unavailable at {NATS_URL}: {problem}")
        pytest.skip(f"NATS JetStream unavailable at {NATS_URL}: {problem}")
    return NATS_URL


@pytest.fixture(autouse=True)
def _quiet_earlier_endpoints(request: pytest.FixtureRequest) -> None:
    """The worker serves every tenant of the database, and earlier tests (API, fuzzing) leave
    endpoints behind whose URLs may hang until the send timeout. Disable them, so each
    delivery test sees only the endpoints it creates."""
    if "db_url" not in request.fixturenames:
        return
    url = request.getfixturevalue("db_url")
    from sqlalchemy import update

    from entrepot.db.uow import platform_uow
    from entrepot.integration.models import WebhookEndpoint

    with platform_uow(url=url) as platform:
        platform.session.execute(update(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))
                                 .values(enabled=False))
        platform.commit()
