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
from nats.aio.msg import Msg
from nats.js.api import StreamConfig
from nats.js.errors import NotFoundError

from entrepot.db.uow import platform_uow
from entrepot.integration.consumers import hold_cursor, save_cursor, saved_position
from entrepot.integration.envelopes import envelope_json
from entrepot.integration.feed import START, Position, anything_after, event_rows_after
from entrepot.worker import leases

log = structlog.get_logger("entrepot.worker.nats")
CONSUMER = "nats"
STREAM = "ENTREPOT"
SUBJECTS = ["entrepot.>"]
LEASE = timedelta(seconds=30)
ACK_TIMEOUT = 5.0  # seconds JetStream has to acknowledge a whole batch


def subject_for(tenant: object, event_type: str) -> str:
    return f"entrepot.{tenant}.{event_type}"


async def ensure_stream(js: nats.js.JetStreamContext) -> None:
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(StreamConfig(name=STREAM, subjects=SUBJECTS, duplicate_window=3600.0))


class PublishFailed(Exception):
    """JetStream did not acknowledge every message of a batch: the cursor stays, the batch goes again."""


class _Batch:
    """The acknowledgements awaited for one batch of publishes."""

    def __init__(self, prefix: str, size: int) -> None:
        self.prefix = prefix
        self.left = size
        self.error: str | None = None
        self.done = asyncio.Event()


class NatsPublisher:
    """Publishes settled outbox events in order; call `publish_batch` repeatedly.

    A batch is written to the connection in one go, each message asking for its
    acknowledgement on its own reply subject under one inbox subscription, then
    the acknowledgements are counted as they come: `js.publish` (a request and a
    future each) cost three times the CPU, and the worker's thread pays it.
    """

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
        self._inbox = ""
        self._batches = 0
        self._waiting: _Batch | None = None
        self._seen: Position | None = None  # at or behind the cursor (see publish_batch)

    async def connect(self) -> None:
        if self._nc is None or self._nc.is_closed:
            self._nc = await nats.connect(self.nats_url, connect_timeout=3, max_reconnect_attempts=3)
            self._js = self._nc.jetstream()
            await ensure_stream(self._js)
            self._inbox = self._nc.new_inbox()
            await self._nc.subscribe(f"{self._inbox}.>", cb=self._acknowledged)

    async def close(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            await self._nc.drain()
        self._nc = None

    async def _acknowledged(self, msg: Msg) -> None:
        batch = self._waiting
        if batch is None or not msg.subject.startswith(batch.prefix):
            return  # a late answer for a batch given up on (it goes again, deduplicated)
        # an answer is the stream's ack, its error, or an empty "no responders" status (no stream)
        answer = json.loads(msg.data) if msg.data else {}
        if "error" in answer or "stream" not in answer:
            batch.error = batch.error or str(answer.get("error") or (msg.headers or {}).get("Status", "no answer"))
        batch.left -= 1
        if batch.left <= 0:
            batch.done.set()

    async def publish_batch(self) -> int:
        if not self._hold(f"consumer:{CONSUMER}", LEASE):
            return 0
        with platform_uow(readonly=True, url=self.url) as uow:
            # nothing committed after what this publisher last saw: no need for the cursor or the
            # settled read (the cursor is at or past that position: it only moves on)
            if self._seen is not None and not anything_after(uow.session, self._seen):
                return 0
            start = saved_position(uow.session, CONSUMER) or START
            self._seen = start
            rows = event_rows_after(uow.session, start, limit=self.batch)
        if not rows:
            return 0
        await self.connect()
        assert self._nc is not None
        self._batches += 1
        batch = self._waiting = _Batch(f"{self._inbox}.{self._batches}.", len(rows))
        try:
            for i, row in enumerate(rows):
                # the body is the webhook body (the same CloudEvents envelope, written once as text)
                await self._nc.publish(subject_for(row.tenant_id, row.type), envelope_json(row).encode(),
                                       reply=f"{batch.prefix}{i}", headers={"Nats-Msg-Id": str(row.id)})
            try:
                await asyncio.wait_for(batch.done.wait(), ACK_TIMEOUT)
            except TimeoutError:
                raise PublishFailed(
                    f"{batch.left} of {len(rows)} publishes not acknowledged in {ACK_TIMEOUT:g} s") from None
        finally:
            self._waiting = None
        if batch.error:
            raise PublishFailed(f"JetStream refused a publish: {batch.error}")
        last = Position.of(rows[-1])
        with platform_uow(url=self.url) as uow:
            cursor = hold_cursor(uow.session, CONSUMER)
            assert cursor is not None
            if cursor.position < last:
                cursor.position = last
                save_cursor(uow.session, cursor)
            uow.commit()
        self._seen = last
        return len(rows)
