"""Several workers on PostgreSQL share deliveries (FOR UPDATE SKIP LOCKED) without double delivery."""

from __future__ import annotations

import threading
import time
from collections import Counter

from entrepot.integration.outbox import record_event
from entrepot.worker.runtime import Worker
from tests.conftest import make_tenant
from tests.integration.integration.helpers import make_endpoint
from tests.integration.integration.receiver import Receiver
from tests.integration.integration.test_webhook_delivery import ParcelScanned


def test_three_workers_deliver_each_event_once_in_subject_order(pg_url):
    # given 120 events over 6 subjects and a receiver
    tenant = make_tenant(pg_url)
    receiver = Receiver(delay=0.005).start()
    try:
        issued = make_endpoint(tenant, receiver.url, ["test_parcel.scanned.v1"])
        receiver.secrets = [issued.secret]
        with tenant.uow() as uow:
            for n in range(20):
                for s in range(6):
                    record_event(uow, ParcelScanned(parcel=f"parcel/{s}", n=n), subject=f"parcel/{s}")
            uow.commit()
        # when three workers run at once
        stop = threading.Event()
        workers = [Worker(url=pg_url, scheduler_enabled=False, concurrency=4, worker_id=f"w{i}") for i in range(3)]
        threads = [threading.Thread(target=w.run_forever, args=(stop,)) for w in workers]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while len(receiver.verified_events) < 120 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        stop.set()
        for t in threads:
            t.join(30)
        for w in workers:
            w.release()
        # then every event arrived exactly once, and in order within its subject
        events = receiver.verified_events
        counts = Counter(e["id"] for e in events)
        assert len(counts) == 120, _open_transactions(pg_url)
        assert max(counts.values()) == 1
        for s in range(6):
            assert [e["data"]["n"] for e in events if e["subject"] == f"parcel/{s}"] == list(range(20))
    finally:
        receiver.stop()
        with tenant.uow() as uow:
            from entrepot.integration import webhooks

            webhooks.update_endpoint(uow, webhooks.get_endpoint(uow, issued.endpoint.id), {"enabled": False})
            uow.commit()


def _open_transactions(url: str) -> list[tuple]:
    """What else holds a transaction in this database: the feed waits for older transactions,
    so a session left open by another test would stall every delivery (diagnostic for a failure)."""
    import psycopg

    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        return conn.execute(
            "SELECT pid, state, backend_xid::text, xact_start, left(query, 120) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
        ).fetchall()
