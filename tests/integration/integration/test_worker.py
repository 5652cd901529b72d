"""The worker: in-process reactions, the scheduler under a lease, graceful release, health, SLA."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from entrepot.db.infrastructure import Lease
from entrepot.db.uow import platform_uow
from entrepot.integration import delivery, messages
from entrepot.integration.models import OutboxEvent, ScheduledJobState, WebhookMessage
from entrepot.integration.outbox import envelope, record_event
from entrepot.integration.sla import check_sla
from entrepot.kernel import clock
from entrepot.kernel.events import EventData, event_type
from entrepot.worker import leases, reactions, scheduler
from entrepot.worker.runtime import Worker, start_background_worker
from tests.integration.integration.helpers import drive, make_endpoint


@event_type("test_pallet.received.v1")
class PalletReceived(EventData):
    """Test-only event."""

    pallet: str


@pytest.fixture
def worker(db_url: str) -> Iterator[Worker]:
    w = Worker(url=db_url, scheduler_enabled=False)
    yield w
    w.release()


@pytest.fixture
def reaction_log() -> Iterator[list[tuple[str, str]]]:
    seen: list[tuple[str, str]] = []

    def note_pallet(uow, event) -> None:  # type: ignore[no-untyped-def]
        seen.append((str(uow.tenant_id), event["data"]["pallet"]))

    reactions.reacts_to("test_pallet.received.v1")(note_pallet)
    yield seen
    reactions.REACTIONS["test_pallet.received.v1"].remove(note_pallet)


def test_reactions_run_once_per_event_in_the_events_tenant(tenant, worker, reaction_log):
    # given two events of a type someone reacts to
    with tenant.uow() as uow:
        record_event(uow, PalletReceived(pallet="P1"), subject="pallet/P1")
        record_event(uow, PalletReceived(pallet="P2"), subject="pallet/P2")
        uow.commit()
    # when the worker runs (twice over)
    drive(worker, lambda: len([p for t, p in reaction_log if t == str(tenant.id)]) >= 2)
    worker.run_until_idle()
    # then each reaction ran once, in order, inside the right tenant
    assert [p for t, p in reaction_log if t == str(tenant.id)] == ["P1", "P2"]


def test_a_failing_reaction_is_retried_and_blocks_later_events(tenant, worker):
    # given a reaction that fails the first time
    calls: list[str] = []

    def flaky(uow, event) -> None:  # type: ignore[no-untyped-def]
        calls.append(event["data"]["pallet"])
        if calls.count("F1") == 1 and event["data"]["pallet"] == "F1":
            raise RuntimeError("downstream hiccup")

    reactions.reacts_to("test_pallet.received.v1")(flaky)
    try:
        with tenant.uow() as uow:
            record_event(uow, PalletReceived(pallet="F1"), subject="pallet/F1")
            record_event(uow, PalletReceived(pallet="F2"), subject="pallet/F2")
            uow.commit()
        # when the worker runs
        drive(worker, lambda: "F2" in calls)
    finally:
        reactions.REACTIONS["test_pallet.received.v1"].remove(flaky)
    # then F1 was retried before F2 ran
    mine = [c for c in calls if c in ("F1", "F2")]
    assert mine == ["F1", "F1", "F2"]


def _running_with_one_job(monkeypatch: Any, db_url: str, job: Any) -> tuple[Worker, Any, Any]:
    """A worker looping on a thread (`run_forever`), its one scheduled job due now: (worker, stop, thread)."""
    import threading

    monkeypatch.setattr(scheduler, "JOBS", [scheduler.Job("test.long_running", "* * * * *", job)])
    _make_due("test.long_running", db_url)
    w = Worker(url=db_url)
    stop = threading.Event()
    thread = threading.Thread(target=w.run_forever, args=(stop,))
    thread.start()
    return w, stop, thread


def _make_due(name: str, db_url: str) -> None:
    """The job's next run is a second ago."""
    with platform_uow(url=db_url) as uow:
        state = uow.session.get(ScheduledJobState, name)
        if state is None:
            uow.session.add(ScheduledJobState(name=name, next_run_at=clock.now() - timedelta(seconds=1)))
        else:
            state.next_run_at = clock.now() - timedelta(seconds=1)
        uow.commit()


def test_a_job_runs_once_under_its_lease_and_a_crashed_holder_expires(db_url):
    # given a job that is due
    runs: list[str] = []
    job = scheduler.Job("test.count", "* * * * *", lambda: runs.append("ran"))
    _make_due("test.count", db_url)
    # and another worker holds its lease (then crashes)
    assert leases.acquire("job:test.count", "crashed-worker", timedelta(minutes=10), url=db_url)
    # when this worker looks: the lease is held, so the job does not run
    assert scheduler.run_due("w-a", jobs=[job], url=db_url) == []
    assert runs == []
    # when the crashed holder's lease expires
    clock.advance(timedelta(minutes=11))
    # then one worker runs it, and a second one right after does not
    assert scheduler.run_due("w-a", jobs=[job], url=db_url) == ["test.count"]
    assert scheduler.run_due("w-b", jobs=[job], url=db_url) == []
    assert runs == ["ran"]
    with platform_uow(readonly=True, url=db_url) as uow:
        state = uow.session.get(ScheduledJobState, "test.count")
        assert state.next_run_at > clock.now()


def test_a_job_longer_than_its_lease_keeps_it_so_no_other_worker_starts_it(db_url, monkeypatch):
    # given a due job that runs past its lease (simulated time), renewing every few milliseconds
    monkeypatch.setattr(scheduler, "RENEW_EVERY", timedelta(milliseconds=5), raising=False)
    seen: dict[str, object] = {}

    def long_job() -> None:
        clock.advance(scheduler.JOB_LEASE + timedelta(minutes=1))
        # wait for a renewal at the new time (an event, not a duration)
        for _ in range(2000):
            with platform_uow(readonly=True, url=db_url) as uow:
                held = uow.session.get(Lease, "job:test.long")
                if held is not None and _aware(held.expires_at) > clock.now():
                    break
            time.sleep(0.005)
        # then another worker can neither take the lease nor start the job
        seen["other_took_lease"] = leases.acquire("job:test.long", "w-other", timedelta(minutes=1), url=db_url)
        seen["other_ran"] = scheduler.run_due("w-other", jobs=[job], url=db_url)

    job = scheduler.Job("test.long", "* * * * *", long_job)
    _make_due("test.long", db_url)
    # when this worker runs it
    assert scheduler.run_due("w-a", jobs=[job], url=db_url) == ["test.long"]
    # then the lease stayed this worker's throughout, and is free once the job is done
    assert seen == {"other_took_lease": False, "other_ran": []}
    assert leases.acquire("job:test.long", "w-other", timedelta(minutes=1), url=db_url)
    leases.release("job:test.long", "w-other", url=db_url)  # so the test can run again in this database


def _aware(moment):
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_graceful_stop_releases_claims(tenant, db_url):
    # given a message claimed by a worker that then stops
    issued = make_endpoint(tenant, "http://127.0.0.1:9/never", ["test_pallet.received.v1"])
    with tenant.uow() as uow:
        record_event(uow, PalletReceived(pallet="G1"), subject="pallet/G1")
        uow.commit()
    w = Worker(url=db_url, scheduler_enabled=False, worker_id="stopping-worker")
    import time

    deadline = time.monotonic() + 10
    while _messages_of(tenant, issued.endpoint.id) == 0 and time.monotonic() < deadline:
        w.fan_out()
    with platform_uow(url=db_url) as uow:
        claimed = delivery.claim(uow.session, "stopping-worker", limit=50)
        uow.commit()
    assert claimed
    # when it releases (what SIGTERM does)
    w.release()
    # then its claims are pending again, for any worker
    with platform_uow(readonly=True, url=db_url) as uow:
        left = uow.session.scalar(select(func.count()).where(WebhookMessage.claimed_by == "stopping-worker"))
    assert left == 0
    with tenant.uow() as uow:
        from entrepot.integration import webhooks

        webhooks.update_endpoint(uow, webhooks.get_endpoint(uow, issued.endpoint.id), {"enabled": False})
        uow.commit()


def test_a_send_that_raises_leaves_its_message_claimed_and_the_worker_going(tenant, worker, db_url, monkeypatch):
    # given a message, and a sender with a bug (network failures are outcomes; this is not one)
    issued = make_endpoint(tenant, "http://127.0.0.1:9/never", ["test_pallet.received.v1"])
    with tenant.uow() as uow:
        record_event(uow, PalletReceived(pallet="B1"), subject="pallet/B1")
        uow.commit()

    def broken_send(client, item):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug in the sender")

    monkeypatch.setattr(delivery, "send", broken_send)
    import time

    deadline = time.monotonic() + 10
    while _messages_of(tenant, issued.endpoint.id) == 0 and time.monotonic() < deadline:
        worker.fan_out()
    # when the worker delivers, twice
    worker.deliver(drain=True)
    worker.deliver(drain=True)
    # then no attempt was recorded: the message stays claimed until its lease runs out
    with platform_uow(readonly=True, url=db_url) as uow:
        message = uow.session.scalar(select(WebhookMessage).where(WebhookMessage.endpoint_id == issued.endpoint.id))
    assert message is not None
    assert (message.status, message.attempt_count, message.claimed_by) == ("delivering", 0, worker.worker_id)
    with tenant.uow() as uow:
        from entrepot.integration import webhooks

        webhooks.update_endpoint(uow, webhooks.get_endpoint(uow, issued.endpoint.id), {"enabled": False})
        uow.commit()


def _messages_of(tenant, endpoint_id) -> int:
    with tenant.uow(readonly=True) as uow:
        return uow.session.scalar(select(func.count()).where(WebhookMessage.endpoint_id == endpoint_id))


def test_the_background_worker_delivers_and_stops(tenant, receiver, db_url):
    # given the embedded worker running
    issued = make_endpoint(tenant, receiver.url, ["test_pallet.received.v1"])
    receiver.secrets = [issued.secret]
    background = start_background_worker(url=db_url, scheduler_enabled=False)
    try:
        # when an event commits
        with tenant.uow() as uow:
            record_event(uow, PalletReceived(pallet="B1"), subject="pallet/B1")
            uow.commit()
        import time

        deadline = time.monotonic() + 15
        while not receiver.verified_events and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        background.stop()
    # then it was delivered without anyone driving the loop
    assert [e["data"]["pallet"] for e in receiver.verified_events] == ["B1"]


def test_health_and_sla_breach(tenant, receiver, worker, db_url):
    # given an endpoint that fails, with a message waiting
    issued = make_endpoint(tenant, receiver.url, ["test_pallet.received.v1"])
    receiver.status = 500
    with tenant.uow() as uow:
        record_event(uow, PalletReceived(pallet="H1"), subject="pallet/H1")
        uow.commit()
    drive(worker, lambda: len(receiver.deliveries) >= 1)
    # when 20 minutes pass
    clock.advance(timedelta(minutes=20))
    with tenant.uow(readonly=True) as uow:
        report = messages.health(uow)
    # then health shows the backlog, its age, and the endpoint's failures
    assert report["webhooks"]["pending"] >= 1
    assert report["webhooks"]["oldest_pending_age_seconds"] >= 20 * 60
    [row] = [e for e in report["webhooks"]["endpoints"] if e["id"] == str(issued.endpoint.id)]
    assert row["success_rate_24h"] == 0.0 and row["last_error"]["status_code"] == 500
    # and the SLA check tells the tenant once
    with platform_uow(url=db_url) as uow:
        check_sla(uow.session, timedelta(minutes=15))
        check_sla(uow.session, timedelta(minutes=15))
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        breaches = uow.session.scalars(select(OutboxEvent).where(OutboxEvent.type == "integration.sla_breached.v1"))
        breaches = list(breaches)
    assert len(breaches) == 1
    assert breaches[0].data["oldest_pending_age_seconds"] >= 20 * 60


def test_the_worker_backs_off_while_the_database_fails_and_loses_nothing(sqlite_only, monkeypatch):
    # given a delivery whose result cannot be written at first (database unavailable)
    import threading
    import time

    from sqlalchemy.exc import OperationalError

    from tests.conftest import make_tenant
    from tests.integration.integration.receiver import Receiver

    tenant = make_tenant(sqlite_only)
    receiver = Receiver().start()
    issued = make_endpoint(tenant, receiver.url, ["test_pallet.received.v1"])
    real_record = delivery.record
    failures = {"left": 3}

    def flaky_record(session, outcomes):  # type: ignore[no-untyped-def]
        if failures["left"] > 0:
            failures["left"] -= 1
            raise OperationalError("UPDATE", {}, Exception("database is unavailable"))
        return real_record(session, outcomes)

    monkeypatch.setattr(delivery, "record", flaky_record)
    with tenant.uow() as uow:
        record_event(uow, PalletReceived(pallet="D1"), subject="pallet/D1")
        uow.commit()
    # when the worker runs through the outage
    w = Worker(url=sqlite_only, scheduler_enabled=False)
    stop = threading.Event()
    thread = threading.Thread(target=w.run_forever, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with tenant.uow(readonly=True) as uow:
                statuses = list(uow.session.scalars(select(WebhookMessage.status).where(
                    WebhookMessage.endpoint_id == issued.endpoint.id)))
            if statuses == ["succeeded"]:
                break
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(30)
        w.release()
        receiver.stop()
    # then the delivery's result was written once the database answered, with one attempt on record
    assert failures["left"] == 0
    assert statuses == ["succeeded"]
    assert len(receiver.deliveries) == 1
    with tenant.uow(readonly=True) as uow:
        from entrepot.integration.models import WebhookAttempt

        attempts = uow.session.scalar(select(func.count()).where(WebhookAttempt.endpoint_id == issued.endpoint.id))
    assert attempts == 1
    with tenant.uow() as uow:
        from entrepot.integration import webhooks

        webhooks.update_endpoint(uow, webhooks.get_endpoint(uow, issued.endpoint.id), {"enabled": False})
        uow.commit()


def test_the_job_table_runs_every_job_sla_quotes_period_invoicing_and_lot_warnings(db_url):
    # given every registered job made due
    names = [job.name for job in scheduler.JOBS]
    assert {"integration.sla_check", "sales.expire_quotes", "sales.period_invoicing",
            "inventory.announce_expiring_lots"} <= set(names)
    for name in names:
        _make_due(name, db_url)
    # when the scheduler runs
    started = clock.now()
    ran = scheduler.run_due("w-jobs", url=db_url)
    # then each ran without error and is scheduled again
    assert set(ran) == set(names)
    with platform_uow(readonly=True, url=db_url) as uow:
        for name in names:
            state = uow.session.get(ScheduledJobState, name)
            assert state.last_error is None, (name, state.last_error)
            # next run after the run began (comparing with the time after it fails when a
            # minute boundary falls while the jobs run: the next run is then that boundary)
            assert state.next_run_at > started


def test_fan_out_writes_the_envelope_of_each_event_as_its_payload(tenant, other_tenant, db_url):
    # given two tenants' events, with quotes and non-ASCII text in the data and the subject
    issued = make_endpoint(tenant, "http://127.0.0.1:9/never", ["test_pallet.received.v1"])
    other = make_endpoint(other_tenant, "http://127.0.0.1:9/never", ["test_pallet.received.v1"])
    for handle, pallet in ((tenant, 'Palette "A" \\ für Zoë'), (other_tenant, "P-2")):
        with handle.uow() as uow:
            record_event(uow, PalletReceived(pallet=pallet), subject=f'pallet/"{pallet}"')
            uow.commit()
    # when the worker fans them out
    with platform_uow(url=db_url) as uow:
        while delivery.fan_out(uow.session):
            pass
        uow.commit()
    # then each message's payload is the CloudEvents envelope of its event, in its event's tenant
    with platform_uow(readonly=True, url=db_url) as uow:
        found = uow.session.execute(
            select(WebhookMessage, OutboxEvent).join(OutboxEvent, OutboxEvent.id == WebhookMessage.event_id)
            .where(WebhookMessage.endpoint_id.in_([issued.endpoint.id, other.endpoint.id]))).all()
        assert len(found) == 2
        for message, event in found:
            assert json.loads(message.payload) == envelope(event)
            assert message.tenant_id == event.tenant_id
            assert message.endpoint_id == (issued if event.tenant_id == tenant.id else other).endpoint.id


def test_health_reads_every_endpoint_in_a_fixed_number_of_statements(tenant, db_url):
    # given three endpoints: one with a success, a failure, a dead letter and a pending message,
    # one with a pending message only, one with nothing
    from sqlalchemy import event

    from entrepot.db.engine import get_engine
    from entrepot.integration.models import WebhookAttempt
    from entrepot.kernel.ids import new_id

    def endpoints(n: int) -> list:
        return [make_endpoint(tenant, f"https://health-{i}.example.com/hook", ["test_pallet.received.v1"]).endpoint
                for i in range(n)]

    def counted_health() -> tuple[dict, int]:
        statements: list[str] = []

        def count(*_args: object) -> None:
            statements.append("")

        engine = get_engine(db_url)
        event.listen(engine, "before_cursor_execute", count)
        try:
            with tenant.uow(readonly=True) as uow:
                report = messages.health(uow)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return report, len(statements)

    busy, waiting, idle = endpoints(3)
    now = clock.now()
    with tenant.uow() as uow:
        def message(endpoint, status: str, n: int) -> WebhookMessage:
            row = WebhookMessage(id=new_id(), tenant_id=tenant.id, endpoint_id=endpoint.id, event_id=new_id(),
                                 event_type="test_pallet.received.v1", subject=f"pallet/{n}", ordinal=n,
                                 payload="{}", status=status, queue_head=status == "pending",
                                 attempt_count=0, next_attempt_at=now, created_at=now)
            uow.session.add(row)
            return row

        done, failed = message(busy, "succeeded", 1), message(busy, "dead", 2)
        message(busy, "pending", 3)
        message(waiting, "pending", 4)
        message(waiting, "delivering", 5)
        uow.session.flush()
        for at, target, ok, code, error in (
                (now - timedelta(minutes=3), failed, False, 502, "HTTP 502"),
                (now - timedelta(minutes=2), failed, False, 500, "HTTP 500"),
                (now - timedelta(minutes=1), done, True, 200, None)):
            uow.session.add(WebhookAttempt(id=new_id(), tenant_id=tenant.id, message_id=target.id,
                                           endpoint_id=busy.id, attempted_at=at, succeeded=ok, status_code=code,
                                           latency_ms=5, response_body="", error=error))
        uow.commit()
    # when health is read
    report, statements = counted_health()
    # then each endpoint shows its own counts, success rate and latest failure
    rows = {row["id"]: row for row in report["webhooks"]["endpoints"]}
    assert {k: rows[str(busy.id)][k] for k in ("pending", "dead_letters", "attempts_24h", "success_rate_24h")} == {
        "pending": 1, "dead_letters": 1, "attempts_24h": 3, "success_rate_24h": round(1 / 3, 4)}
    assert rows[str(busy.id)]["last_error"] == {
        "at": (now - timedelta(minutes=2)).isoformat(), "status_code": 500, "error": "HTTP 500"}
    assert {k: rows[str(waiting.id)][k] for k in ("pending", "dead_letters", "attempts_24h", "last_error")} == {
        "pending": 2, "dead_letters": 0, "attempts_24h": 0, "last_error": None}
    assert (rows[str(idle.id)]["pending"], rows[str(idle.id)]["success_rate_24h"]) == (0, None)
    assert (report["webhooks"]["pending"], report["webhooks"]["succeeded"], report["webhooks"]["dead_letters"]) == (
        3, 1, 1)
    assert [row["id"] for row in report["webhooks"]["endpoints"]] == sorted(rows, key=uuid.UUID)
    # and more endpoints cost no more statements (no reads per endpoint)
    endpoints(4)
    more, more_statements = counted_health()
    assert len(more["webhooks"]["endpoints"]) == len(rows) + 4
    assert more_statements == statements


def test_a_job_over_every_tenant_goes_on_past_a_failing_one_and_reports_it(db_url):
    from entrepot.identity.services.tenants import in_each_active_tenant
    from tests.conftest import make_tenant

    failing, working = make_tenant(db_url), make_tenant(db_url)

    def action(uow):
        if uow.tenant_id == failing.id:
            raise ValueError("bad data")
        if uow.tenant_id == working.id:
            record_event(uow, PalletReceived(pallet="P-1"), subject="pallet/P-1")
            return 1
        return 0

    # when a job runs in every tenant and one of them fails
    from structlog.testing import capture_logs

    with capture_logs() as logged, pytest.raises(RuntimeError) as failed:
        in_each_active_tenant(action, "pallet count", url=db_url)
    # then the failure names its tenant, and the other tenant still had its work committed
    assert f"{failing.id}: ValueError: bad data" in str(failed.value)
    # and the failing tenant's traceback is logged, not only the one line of the job's error
    [entry] = [e for e in logged if e["event"] == "tenant_step_failed"]
    assert (entry["tenant_id"], entry["step"], entry.get("exc_info")) == (str(failing.id), "pallet count", True)
    assert str(failed.value).startswith("pallet count failed for 1 tenant(s)")
    with working.uow(readonly=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(OutboxEvent)
                                  .where(OutboxEvent.subject == "pallet/P-1")) == 1


def test_a_long_job_does_not_hold_up_webhook_deliveries(tenant, receiver, db_url, monkeypatch):
    # given a worker whose one job runs long (the nightly invoicing of many tenants, say)
    import threading

    issued = make_endpoint(tenant, receiver.url, ["test_pallet.received.v1"])
    receiver.secrets = [issued.secret]
    started = threading.Event()
    seen: dict[str, bool] = {}

    def long_job() -> None:
        started.set()
        # when an event commits while the job runs
        with tenant.uow() as uow:
            record_event(uow, PalletReceived(pallet="L1"), subject="pallet/L1")
            uow.commit()
        deadline = time.monotonic() + 10
        while not receiver.verified_events and time.monotonic() < deadline:
            time.sleep(0.05)
        seen["delivered_while_the_job_ran"] = bool(receiver.verified_events)

    w, stop, thread = _running_with_one_job(monkeypatch, db_url, long_job)
    try:
        assert started.wait(10)
        deadline = time.monotonic() + 15
        while "delivered_while_the_job_ran" not in seen and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)
        w.release()
    # then the worker delivered it meanwhile: its claims do not sit unrecorded (and expire, for
    # another worker to send again) until the job ends
    assert seen == {"delivered_while_the_job_ran": True}
    assert [e["data"]["pallet"] for e in receiver.verified_events] == ["L1"]


def test_an_operator_sees_each_jobs_last_run_error_and_next_run(db_url):
    from typer.testing import CliRunner

    from entrepot.cli.main import app
    from entrepot.integration.metrics import render

    # given a job whose run fails
    def failing() -> None:
        raise RuntimeError("boom")

    job = scheduler.Job("test.visible", "* * * * *", failing)
    _make_due("test.visible", db_url)
    started = clock.now()
    assert scheduler.run_due("w-seen", jobs=[job], url=db_url) == []
    # (a nightly job that failed is tried again in 15 minutes, not in a day)
    nightly = scheduler.Job("test.nightly", f"0 {(started.hour + 12) % 24} * * *", failing)  # 11-12 h ahead
    _make_due("test.nightly", db_url)
    assert scheduler.run_due("w-seen", jobs=[nightly], url=db_url) == []
    [again] = [s for s in scheduler.job_statuses(url=db_url) if s.name == "test.nightly"]
    assert again.next_run_at is not None
    assert timedelta(minutes=14) < again.next_run_at - started <= timedelta(minutes=15, seconds=5)
    # when the operator looks
    [status] = [s for s in scheduler.job_statuses(url=db_url) if s.name == "test.visible"]
    metrics = render()[0].decode()
    listing = CliRunner().invoke(app, ["jobs"])
    # then each tells when it last ran, that it failed and why, and when it runs next
    assert status.last_error == "RuntimeError: boom"
    assert status.last_run_at is not None and abs(status.last_run_at - started) < timedelta(seconds=5)
    assert status.next_run_at is not None and status.next_run_at > started
    assert status.running_on is None
    assert 'entrepot_scheduled_job_failed{job="test.visible"} 1.0' in metrics
    gauges = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
              if 'job="test.visible"' in line}
    assert gauges['entrepot_scheduled_job_next_run_timestamp_seconds{job="test.visible"}'] == \
        status.next_run_at.timestamp()
    assert gauges['entrepot_scheduled_job_last_run_timestamp_seconds{job="test.visible"}'] == \
        status.last_run_at.timestamp()
    assert listing.exit_code == 1, listing.output
    assert "test.visible" in listing.output and "boom" in listing.output
    # and the jobs of this release are listed even before their first run
    assert {"integration.sla_check", "sales.period_invoicing"} <= {s.name for s in scheduler.job_statuses(url=db_url)}
    # when it runs again and succeeds, the error is gone
    job = scheduler.Job("test.visible", "* * * * *", lambda: None)
    _make_due("test.visible", db_url)
    assert scheduler.run_due("w-seen", jobs=[job], url=db_url) == ["test.visible"]
    [status] = [s for s in scheduler.job_statuses(url=db_url) if s.name == "test.visible"]
    assert status.last_error is None
    assert 'entrepot_scheduled_job_failed{job="test.visible"} 0.0' in render()[0].decode()


def test_a_worker_stopped_while_a_job_runs_records_its_sends_before_waiting_for_the_job(
        tenant, receiver, db_url, monkeypatch):
    # given a worker running a long job, and a delivery on its way when the worker is told to stop
    import threading

    from entrepot.integration.models import WebhookMessage

    issued = make_endpoint(tenant, receiver.url, ["test_pallet.received.v1"])
    receiver.secrets, receiver.delay = [issued.secret], 1.0  # the receiver takes a second to answer
    in_flight, finish = threading.Event(), threading.Event()

    def statuses() -> set[str]:
        with platform_uow(readonly=True, url=db_url) as uow:
            return set(uow.session.scalars(select(WebhookMessage.status).where(WebhookMessage.subject == "pallet/S1")))

    def long_job() -> None:
        with tenant.uow() as uow:
            record_event(uow, PalletReceived(pallet="S1"), subject="pallet/S1")
            uow.commit()
        deadline = time.monotonic() + 15
        while "delivering" not in statuses() and time.monotonic() < deadline:
            time.sleep(0.02)
        in_flight.set()
        finish.wait(30)

    w, stop, thread = _running_with_one_job(monkeypatch, db_url, long_job)
    try:
        assert in_flight.wait(20)
        stop.set()
        # then, the job still running, the send is recorded as it went (its claim does not sit until
        # the job ends, to run out and be sent again by another worker)
        deadline = time.monotonic() + 10
        while statuses() != {"succeeded"} and time.monotonic() < deadline:
            time.sleep(0.05)
        recorded = statuses()
    finally:
        finish.set()
        thread.join(30)
        w.release()
    assert recorded == {"succeeded"}
    assert [e["data"]["pallet"] for e in receiver.verified_events] == ["S1"]


def test_a_job_whose_lease_went_to_another_worker_stops_at_its_next_tenant(db_url, monkeypatch):
    from entrepot.db.infrastructure import Lease
    from entrepot.identity.services.tenants import in_each_active_tenant
    from tests.conftest import make_tenant

    # given two tenants, and a job over every tenant whose lease another worker takes while it is in
    # the first (its renewal, a tenth of a second later here, finds it gone)
    make_tenant(db_url), make_tenant(db_url)
    monkeypatch.setattr(scheduler, "RENEW_EVERY", timedelta(seconds=0.1))
    visited: list[object] = []

    def action(uow):
        visited.append(uow.tenant_id)
        if len(visited) == 1:
            with platform_uow(url=db_url) as platform:
                platform.session.get(Lease, "job:test.over_tenants").holder = "another-worker"
                platform.commit()
            time.sleep(0.5)
        return 0

    job = scheduler.Job("test.over_tenants", "* * * * *",
                        lambda: in_each_active_tenant(action, "counting", url=db_url))
    _make_due("test.over_tenants", db_url)
    assert scheduler.run_due("w-first", jobs=[job], url=db_url) == []
    # then it stopped there, leaving the rest to the worker that holds the lease, and said why
    assert len(visited) == 1
    [status] = [s for s in scheduler.job_statuses(url=db_url) if s.name == "test.over_tenants"]
    assert status.last_error is not None and status.last_error.startswith("CalledOff: counting stopped")
