"""Outbox → NATS JetStream: subject `entrepot.<tenant id>.<event type>`, `Nats-Msg-Id` = event id.

JetStream drops a message whose id it saw within the stream's duplicate
window, so re-publishing after a crash (the cursor moves only after the
broker acknowledged) does not duplicate events. One worker publishes at a
time (a lease), which also keeps the stream in outbox order.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import timedelta

import nats
import structlog
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from entrepot.db.uow import platform_uow
from entrepot.integration.consumers import advance, lock_cursor, position_of, read_position
from entrepot.integration.feed import START, Position, events_after
from entrepot.integration.outbox import envelope
from entrepot.worker import leases

log = structlog.get_logger("entrepot.worker.nats")
CONSUMER = "nats"
STREAM = "ENTREPOT"
SUBJECTS = ["entrepot.>"]
LEASE = timedelta(seconds=30)


def subject_for(tenant: object, event_type: str) -> str:
    return f"entrepot.{tenant}.{event_type}"


async def ensure_stream(js: nats.js.JetStreamContext) -> None:
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(StreamConfig(name=STREAM, subjects=SUBJECTS, duplicate_window=3600.0))


class NatsPublisher:
    """Publishes settled outbox events in order; call `publish_batch` repeatedly."""

    def __init__(self, nats_url: str, holder: str, *, url: str | None = None, batch: int = 500,
                 hold: Callable[[str, timedelta], bool] | None = None) -> None:
        self.nats_url = nats_url
        self.holder = holder
        self.url = url
        self.batch = batch
        # how the publishing lease is held: the worker passes its own `_hold`, which renews it in
        # the database only when a third of it has run out (not a write transaction per pass)
        self._hold = hold or (lambda name, ttl: leases.acquire(name, holder, ttl, url=url))
        self._nc: nats.NATS | None = None
        self._js: nats.js.JetStreamContext | None = None

    async def connect(self) -> None:
        if self._nc is None or self._nc.is_closed:
            self._nc = await nats.connect(self.nats_url, connect_timeout=3, max_reconnect_attempts=3)
            self._js = self._nc.jetstream()
            await ensure_stream(self._js)

    async def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.drain()
        self._nc = None

    async def publish_batch(self) -> int:
        if not self._hold(f"consumer:{CONSUMER}", LEASE):
            return 0
        with platform_uow(readonly=True, url=self.url) as uow:
            start = read_position(uow.session, CONSUMER) or START
            rows = events_after(uow.session, start, limit=self.batch)
            items = [(row.id, row.tenant_id, row.type, envelope(row), Position.of(row)) for row in rows]
        if not items:
            return 0
        await self.connect()
        assert self._js is not None
        acks = [self._js.publish(subject_for(tenant, kind), json.dumps(event, separators=(",", ":")).encode(),
                                 headers={"Nats-Msg-Id": str(event_id)})
                for event_id, tenant, kind, event, _ in items]
        await asyncio.gather(*acks)
        with platform_uow(url=self.url) as uow:
            cursor = lock_cursor(uow.session, CONSUMER)
            assert cursor is not None
            if position_of(cursor) < items[-1][4]:
                advance(cursor, items[-1][4])
            uow.commit()
        return len(items)
