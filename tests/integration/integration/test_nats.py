"""Outbox → real NATS JetStream: subject per tenant and type, Nats-Msg-Id = event id, no duplicates."""

from __future__ import annotations

import asyncio
import json

import nats

from entrepot.integration.outbox import record_event
from entrepot.worker.nats_bridge import STREAM, subject_for
from entrepot.worker.runtime import Worker
from tests.integration.integration.helpers import drive
from tests.integration.integration.test_worker import PalletReceived


async def _fetch(url: str, subject: str, want: int) -> list[tuple[dict, str]]:
    nc = await nats.connect(url)
    try:
        js = nc.jetstream()
        sub = await js.pull_subscribe(subject, stream=STREAM)
        got: list[tuple[dict, str]] = []
        for _ in range(20):
            try:
                msgs = await sub.fetch(want - len(got) or 1, timeout=0.5)
            except nats.errors.TimeoutError:
                msgs = []
            for m in msgs:
                got.append((json.loads(m.data), m.headers.get("Nats-Msg-Id")))
                await m.ack()
            if len(got) >= want:
                break
        return got
    finally:
        await nc.close()


def test_events_reach_jetstream_once_each(nats_url, tenant, db_url):
    # given a worker publishing to NATS
    worker = Worker(url=db_url, scheduler_enabled=False, nats_url=nats_url)
    try:
        # when two events commit and the worker runs (and runs again)
        with tenant.uow() as uow:
            ids = [record_event(uow, PalletReceived(pallet=p), subject=f"pallet/{p}") for p in ("N1", "N2")]
            uow.commit()
        from sqlalchemy import select

        from entrepot.integration.consumers import read_position
        from entrepot.integration.models import OutboxEvent

        def published() -> bool:
            with tenant.uow(readonly=True) as uow:
                last = uow.session.scalar(select(OutboxEvent).where(OutboxEvent.id.in_(
                    [__import__("uuid").UUID(i) for i in ids])).order_by(OutboxEvent.seq.desc()))
                position = read_position(uow.session, "nats")
            from entrepot.integration.feed import Position

            return position is not None and position >= Position.of(last)

        drive(worker, published)
        worker.run_until_idle()
    finally:
        worker.release()
    # then the stream holds each event once, on the tenant's subject, with the event id as message id
    subject = subject_for(tenant.id, "test_pallet.received.v1")
    got = asyncio.run(_fetch(nats_url, subject, 2))
    assert [e["id"] for e, _ in got] == ids
    assert [msg_id for _, msg_id in got] == ids
    assert got[0][0]["data"] == {"pallet": "N1"}
