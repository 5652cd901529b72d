"""The long-running worker on PostgreSQL: fan-out and NATS publishing on threads of their own
beside the delivery rounds; the rounds' array parameters in PostgreSQL's binary format."""

from __future__ import annotations

import threading
import time

from entrepot.db.engine import get_engine
from entrepot.db.uow import platform_uow
from entrepot.integration import delivery
from entrepot.integration.consumers import read_position
from entrepot.integration.feed import Position
from entrepot.integration.outbox import record_event
from entrepot.worker.runtime import Worker
from tests.integration.integration.helpers import make_endpoint
from tests.integration.integration.test_worker import PalletReceived


def _stage_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name in ("worker-fan_out", "worker-publish")}


def test_the_running_worker_fans_out_and_publishes_on_threads_of_their_own_on_postgresql(
        tenant, receiver, nats_url, db_url):
    # given a worker with NATS running, and events on two subjects
    issued = make_endpoint(tenant, receiver.url, ["test_pallet.received.v1"])
    receiver.secrets = [issued.secret]
    worker = Worker(url=db_url, scheduler_enabled=False, nats_url=nats_url)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run_forever, args=(stop,))
    thread.start()
    try:
        with tenant.uow() as uow:
            for n in range(6):
                record_event(uow, PalletReceived(pallet=f"S{n % 2}-{n}"), subject=f"pallet/S{n % 2}")
            uow.commit()
        # when they have been delivered and published
        with tenant.uow(readonly=True) as uow:
            from sqlalchemy import select

            from entrepot.integration.models import OutboxEvent

            last = uow.session.scalars(select(OutboxEvent).where(OutboxEvent.type == "test_pallet.received.v1")
                                       .order_by(OutboxEvent.seq.desc())).first()
        assert last is not None

        def published() -> bool:
            with platform_uow(readonly=True, url=db_url) as uow:
                position = read_position(uow.session, "nats")
            return position is not None and position >= Position.of(last)

        deadline = time.monotonic() + 30
        while (len(receiver.verified_events) < 6 or not published()) and time.monotonic() < deadline:
            time.sleep(0.05)
        running = _stage_threads()
    finally:
        stop.set()
        thread.join(30)
        worker.release()
    # then every event arrived once, in order per subject, and went to the stream
    pallets = [e["data"]["pallet"] for e in receiver.verified_events]
    assert sorted(pallets) == sorted(f"S{n % 2}-{n}" for n in range(6))
    for s in ("S0", "S1"):
        assert [p for p in pallets if p.startswith(s)] == [f"{s}-{n}" for n in range(6) if f"S{n % 2}" == s]
    assert published()
    # and on PostgreSQL the fan-out and the publishing ran on threads of their own (on SQLite, one
    # writer at a time, every step stays on the loop's thread); they end with the loop
    postgres = db_url.startswith("postgresql")
    assert running == ({"worker-fan_out", "worker-publish"} if postgres else set())
    assert not _stage_threads()


def test_array_parameters_of_the_delivery_statements_go_in_binary_on_postgresql(pg_url):
    # given the delivery statements compiled for PostgreSQL
    dialect = get_engine(pg_url).dialect
    sql = delivery._statements_for("postgresql")
    # then the arrays (a fan-out's bodies, a round's ids) ask for the binary format, the rest not
    insert_sql = sql.insert_messages.compiled(dialect).sql
    assert "%(payload)b" in insert_sql and "%(ordinal)b" in insert_sql
    assert "%(ids)b" in sql.mark_succeeded.compiled(dialect).sql
    assert "%(at)s" in sql.mark_succeeded.compiled(dialect).sql
    assert "%(keys)b" in sql.lock_queues.compiled(dialect).sql
