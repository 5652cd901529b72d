"""kill -9 a worker process mid-batch, start another: every event arrives at least once,
in order per subject. A real subprocess (`entrepot worker`), a real receiver, real SQLite."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from entrepot.db.bootstrap import init_database
from entrepot.integration import webhooks
from entrepot.integration.outbox import record_event
from tests.conftest import make_tenant
from tests.integration.integration.receiver import Receiver
from tests.integration.integration.test_webhook_delivery import ParcelScanned

SUBJECTS = 8
PER_SUBJECT = 25


def _start_worker(url: str, log: Path) -> subprocess.Popen:
    env = {**os.environ, "ENTREPOT_DATABASE_URL": url, "ENTREPOT_WEBHOOK_ALLOW_PRIVATE": "1",
           "ENTREPOT_WORKER_CLAIM_LEASE_SECONDS": "3"}
    env.pop("ENTREPOT_NATS_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "entrepot.cli.main", "worker", "--no-scheduler", "--concurrency", "8"],
        env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )


def _wait(cond, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def test_kill_9_mid_batch_loses_nothing_and_keeps_subject_order(tmp_path):
    # given a database, a slow receiver and events on several subjects
    url = f"sqlite:///{tmp_path / 'crash.db'}"
    init_database(url)
    tenant = make_tenant(url)
    receiver = Receiver(delay=0.02).start()
    log = tmp_path / "worker.log"
    try:
        with tenant.uow() as uow:
            issued = webhooks.create_endpoint(uow, url=receiver.url, event_types=["test_parcel.scanned.v1"])
            uow.commit()
        receiver.secrets = [issued.secret]
        expected: dict[str, list[int]] = {}
        with tenant.uow() as uow:
            for n in range(PER_SUBJECT):
                for s in range(SUBJECTS):
                    subject = f"parcel/{s}"
                    record_event(uow, ParcelScanned(parcel=subject, n=n), subject=subject)
                    expected.setdefault(subject, []).append(n)
            uow.commit()
        total = SUBJECTS * PER_SUBJECT
        # when a worker is killed with SIGKILL in the middle of delivering
        first = _start_worker(url, log)
        assert _wait(lambda: len(receiver.deliveries) >= total // 4, 60), log.read_text()[-2000:]
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        at_kill = len(receiver.deliveries)
        assert at_kill < total, "the worker finished before it could be killed"
        # and another worker starts
        second = _start_worker(url, log)
        try:
            done = _wait(lambda: {e["id"] for e in receiver.verified_events} >= _ids(tenant), 90)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(30)
        # then every event arrived (at least once), each verified by the receiver
        assert done, f"missing deliveries; log: {log.read_text()[-2000:]}"
        # and per subject, first arrivals are in order and repeats only re-send what came before
        arrivals: dict[str, list[int]] = {}
        for event in receiver.verified_events:
            arrivals.setdefault(event["subject"], []).append(event["data"]["n"])
        for subject, ns in arrivals.items():
            firsts = list(dict.fromkeys(ns))
            assert firsts == expected[subject], (subject, ns)
            high = -1
            for n in ns:
                assert n <= high + 1, (subject, ns)  # never ahead of an undelivered earlier event
                high = max(high, n)
        # and the graceful stop (SIGTERM) said it released its claims
        assert second.returncode == 0
        assert "claims released" in log.read_text()
    finally:
        receiver.stop()


def _ids(tenant) -> set[str]:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from entrepot.integration.models import OutboxEvent

    with tenant.uow(readonly=True) as uow:
        return {str(i) for i in uow.session.scalars(select(OutboxEvent.id).where(
            OutboxEvent.type == "test_parcel.scanned.v1"))}


