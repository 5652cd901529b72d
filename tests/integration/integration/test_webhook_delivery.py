"""Deliveries to a real HTTP receiver on loopback: signing, retries, dead letters, order, replay."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from entrepot.integration import delivery, messages, webhooks
from entrepot.integration.models import OutboxEvent, WebhookAttempt, WebhookEndpoint, WebhookMessage
from entrepot.integration.outbox import record_event
from entrepot.kernel import clock
from entrepot.kernel.events import EventData, event_type
from entrepot.worker.runtime import Worker
from tests.integration.integration.helpers import advance_past, drive, make_endpoint, settle


@event_type("test_parcel.scanned.v1")
class ParcelScanned(EventData):
    """Test-only event."""

    parcel: str
    n: int


@pytest.fixture
def worker(db_url: str) -> Iterator[Worker]:
    w = Worker(url=db_url, scheduler_enabled=False, concurrency=8)
    yield w
    w.release()


def emit(tenant, n: int = 1, subject: str = "parcel/1", start: int = 0) -> list[str]:
    ids = []
    with tenant.uow() as uow:
        for i in range(start, start + n):
            ids.append(record_event(uow, ParcelScanned(parcel=subject, n=i), subject=subject))
        uow.commit()
    return ids


def message_of(tenant, event_id: str) -> WebhookMessage:
    with tenant.uow(readonly=True) as uow:
        return uow.session.scalar(select(WebhookMessage).where(WebhookMessage.event_id == uuid.UUID(event_id)))


def tried(tenant, event_id: str) -> bool:
    message = message_of(tenant, event_id)
    return message is not None and message.attempt_count >= 1


def status_of(tenant, event_id: str) -> str | None:
    message = message_of(tenant, event_id)
    return message.status if message else None


def attempts_of(tenant, message_id) -> list[WebhookAttempt]:
    with tenant.uow(readonly=True) as uow:
        return list(uow.session.scalars(select(WebhookAttempt).where(WebhookAttempt.message_id == message_id)
                                        .order_by(WebhookAttempt.attempted_at)))


def test_a_delivery_is_signed_and_verifies_at_the_receiver(tenant, receiver, worker):
    # given an endpoint whose secret the receiver knows
    issued = make_endpoint(tenant, receiver.url, ["test_parcel.scanned.v1"])
    receiver.secrets = [issued.secret]
    # when an event is committed and the worker runs
    [event_id] = emit(tenant)
    drive(worker, lambda: len(receiver.deliveries) >= 1)
    # then the receiver got it once, with Standard Webhooks headers, and the signature verified
    delivery_ = receiver.deliveries[0]
    assert delivery_.verified
    assert {"webhook-id", "webhook-timestamp", "webhook-signature"} <= set(delivery_.headers)
    assert delivery_.headers["webhook-signature"].startswith("v1,")
    assert delivery_.event["id"] == event_id
    assert delivery_.event["type"] == "test_parcel.scanned.v1"
    assert delivery_.event["data"] == {"parcel": "parcel/1", "n": 0}
    # and the package's documented helper accepts it too
    assert webhooks.verify(delivery_.body, delivery_.headers, issued.secret)["id"] == event_id
    with pytest.raises(webhooks.WebhookVerificationError):
        webhooks.verify(delivery_.body.replace(b"parcel/1", b"parcel/2"), delivery_.headers, issued.secret)
    message = message_of(tenant, event_id)
    assert message.status == "succeeded"
    [attempt] = attempts_of(tenant, message.id)
    assert attempt.succeeded and attempt.status_code == 200 and attempt.latency_ms >= 0


def test_unsubscribed_types_and_other_tenants_are_not_delivered(tenant, other_tenant, receiver, worker):
    # given an endpoint subscribed to one other type only
    make_endpoint(tenant, receiver.url, ["webhook_endpoint.deleted.v1"])
    # when events of another type, and of another tenant, are committed
    emit(tenant)
    emit(other_tenant)
    settle(worker)
    # then nothing is delivered
    assert receiver.deliveries == []


def test_receiver_down_for_four_attempts_gets_it_on_the_fifth(tenant, receiver, worker):
    # given a receiver that fails the first four requests
    issued = make_endpoint(tenant, receiver.url, ["test_parcel.scanned.v1"])
    receiver.secrets = [issued.secret]
    receiver.fail_next(4, status=503)
    [event_id] = emit(tenant)
    # when the worker runs through the retry schedule on the simulated clock
    drive(worker, lambda: len(receiver.deliveries) >= 1)
    for n in range(1, 5):
        message = message_of(tenant, event_id)
        assert message.status == "pending" and message.attempt_count == n
        expected = delivery.SCHEDULE[n]
        wait = message.next_attempt_at - clock.now()
        assert expected * 0.85 <= wait + timedelta(seconds=1) and wait <= expected * 1.15, (n, wait)
        settle(worker, 0.1)
        assert len(receiver.deliveries) == n  # not before its time
        advance_past(expected)
        drive(worker, lambda n=n: len(receiver.deliveries) >= n + 1)
    # then the fifth attempt delivered it and every attempt is on record
    message = message_of(tenant, event_id)
    assert message.status == "succeeded" and message.attempt_count == 5
    attempts = attempts_of(tenant, message.id)
    assert [a.status_code for a in attempts] == [503, 503, 503, 503, 200]
    assert [a.succeeded for a in attempts] == [False] * 4 + [True]
    assert receiver.deliveries[-1].verified


def test_exhausted_messages_are_dead_lettered_then_recovered(tenant, receiver, worker):
    # given a receiver that always fails
    issued = make_endpoint(tenant, receiver.url, ["test_parcel.scanned.v1"])
    receiver.secrets = [issued.secret]
    receiver.status = 500
    [event_id] = emit(tenant)
    # when every attempt of the schedule fails
    drive(worker, lambda: len(receiver.deliveries) >= 1)
    for n in range(1, len(delivery.SCHEDULE)):
        advance_past(delivery.SCHEDULE[n])
        drive(worker, lambda n=n: len(receiver.deliveries) >= n + 1)
    settle(worker, 0.1)
    # then the message is dead, the tenant is told, and nothing more is tried
    message = message_of(tenant, event_id)
    assert message.status == "dead" and message.attempt_count == 8
    with tenant.uow(readonly=True) as uow:
        exhausted = uow.session.scalar(select(OutboxEvent).where(OutboxEvent.type == "webhook.message.exhausted.v1"))
    assert exhausted.data["message_id"] == str(message.id) and exhausted.data["attempts"] == 8
    advance_past(timedelta(hours=24))
    settle(worker, 0.1)
    assert len(receiver.deliveries) == 8
    # when the receiver is fixed and the endpoint recovered since an hour ago
    receiver.status = 200
    with tenant.uow() as uow:
        endpoint = webhooks.get_endpoint(uow, issued.endpoint.id)
        count = messages.recover_endpoint(uow, endpoint, clock.now() - timedelta(days=3))
        uow.commit()
    assert count == 1
    drive(worker, lambda: status_of(tenant, event_id) == "succeeded")
    assert receiver.deliveries[-1].verified


def test_gone_disables_the_endpoint(tenant, receiver, worker):
    # given a receiver answering 410 Gone
    issued = make_endpoint(tenant, receiver.url, ["test_parcel.scanned.v1"])
    receiver.status = 410
    emit(tenant)
    # when the worker delivers
    drive(worker, lambda: len(receiver.deliveries) >= 1)
    settle(worker, 0.1)
    # then the endpoint is disabled, the tenant told, and no more deliveries are tried
    with tenant.uow(readonly=True) as uow:
        endpoint = uow.session.get(WebhookEndpoint, issued.endpoint.id)
        disabled = uow.session.scalar(select(OutboxEvent).where(OutboxEvent.type == "webhook.endpoint.disabled.v1"))
    assert endpoint.enabled is False and "410" in endpoint.disabled_reason
    assert disabled.data["endpoint_id"] == str(endpoint.id)
    emit(tenant)
    settle(worker, 0.2)
    assert len(receiver.deliveries) == 1


def test_a_redirect_is_a_failure_and_is_not_followed(tenant, receiver, worker):
    # given a receiver that redirects
    issued = make_endpoint(tenant, receiver.url, ["test_parcel.scanned.v1"])
    receiver.status = 307
    receiver.location = receiver.url + "/elsewhere"
    [event_id] = emit(tenant)
    # when delivered
    drive(worker, lambda: tried(tenant, event_id))
    # then the attempt failed and only the original URL was called
    message = message_of(tenant, event_id)
    assert message.status == "pending" and message.last_status_code == 307
    assert "redirect" in message.last_error
    assert [d.path for d in receiver.deliveries] == ["/hook"]
    assert issued.endpoint.id


def test_events_of_one_subject_arrive_in_order_even_across_failures(tenant, receiver, worker):
    # given a receiver failing the first request, and three events of one order and one of another
    issued = make_endpoint(tenant, receiver.url, ["test_parcel.scanned.v1"])
    receiver.secrets = [issued.secret]
    failed: list[bytes] = []

    def first_of_a(body: bytes) -> bool:
        event = json.loads(body)
        if event["subject"] == "parcel/A" and event["data"]["n"] == 0 and not failed:
            failed.append(body)
            return True
        return False

    receiver.fail_if = first_of_a
    emit(tenant, 3, subject="parcel/A")
    emit(tenant, 1, subject="parcel/B")
    # when the worker runs: the first of A fails; B is independent
    drive(worker, lambda: any(e["subject"] == "parcel/B" for e in receiver.verified_events))
    settle(worker, 0.2)
    # then nothing later of A overtook its failed first event
    assert [e["data"]["n"] for e in receiver.verified_events if e["subject"] == "parcel/A"] == []
    # and after the retry, A's events arrive in order
    advance_past(delivery.SCHEDULE[1])
    drive(worker, lambda: len([e for e in receiver.verified_events if e["subject"] == "parcel/A"]) >= 3)
    assert [e["data"]["n"] for e in receiver.verified_events if e["subject"] == "parcel/A"] == [0, 1, 2]


def test_rotation_signs_with_both_secrets_for_24_hours(tenant, receiver, worker):
    # given an endpoint whose secret was rotated
    issued = make_endpoint(tenant, receiver.url, ["test_parcel.scanned.v1"])
    with tenant.uow() as uow:
        rotated = webhooks.rotate_secret(uow, webhooks.get_endpoint(uow, issued.endpoint.id))
        uow.commit()
    # when an event is delivered, a receiver knowing only the old secret still verifies it
    receiver.secrets = [issued.secret]
    emit(tenant)
    drive(worker, lambda: len(receiver.deliveries) >= 1)
    first = receiver.deliveries[0]
    assert first.verified
    assert len(first.headers["webhook-signature"].split(" ")) == 2
    assert webhooks.verify(first.body, first.headers, rotated.secret)
    # and after 24 h only the new secret signs
    advance_past(timedelta(hours=24))
    emit(tenant, start=1)
    drive(worker, lambda: len(receiver.deliveries) >= 2)
    second = receiver.deliveries[1]
    assert len(second.headers["webhook-signature"].split(" ")) == 1
    assert not second.verified
    assert webhooks.verify(second.body, second.headers, rotated.secret)


def test_an_endpoint_failing_for_five_days_is_disabled(tenant, receiver, worker):
    # given a receiver that always fails, and a stream of events over five days
    issued = make_endpoint(tenant, receiver.url, ["test_parcel.scanned.v1"])
    receiver.status = 500
    def enabled() -> bool:
        with tenant.uow(readonly=True) as uow:
            return uow.session.get(WebhookEndpoint, issued.endpoint.id).enabled

    for day in range(5):
        [event_id] = emit(tenant, subject=f"parcel/{day}")
        drive(worker, lambda event_id=event_id: tried(tenant, event_id))
        assert enabled(), f"disabled too early, on day {day}"
        clock.advance(timedelta(days=1))
    # when it fails once more after five days
    [event_id] = emit(tenant, subject="parcel/last")
    drive(worker, lambda: tried(tenant, event_id))
    # then the endpoint is disabled with the reason, and the tenant is told
    with tenant.uow(readonly=True) as uow:
        endpoint = uow.session.get(WebhookEndpoint, issued.endpoint.id)
        told = uow.session.scalar(select(func.count()).where(OutboxEvent.type == "webhook.endpoint.disabled.v1"))
    assert endpoint.enabled is False
    assert "5 days" in endpoint.disabled_reason
    assert told == 1


def test_one_slow_endpoint_cannot_take_every_slot(tenant, receiver, worker, db_url):
    # given a busy endpoint with many messages and a quiet one with one
    from entrepot.db.uow import platform_uow

    busy = make_endpoint(tenant, "http://127.0.0.1:9/busy", ["test_parcel.scanned.v1"])
    quiet = make_endpoint(tenant, receiver.url, ["test_parcel.scanned.v1"])
    for i in range(60):  # a backlog far larger than one claim batch, all due before the quiet one
        emit(tenant, 1, subject=f"parcel/busy-{i}")
    emit(tenant, 1, subject="parcel/q")  # fanned out to both
    with platform_uow(url=db_url) as uow:
        while delivery.fan_out(uow.session):
            pass
        uow.commit()
    # when a worker claims with a per-endpoint limit of 3
    with platform_uow(url=db_url) as uow:
        claimed = delivery.claim(uow.session, "w1", limit=10, per_endpoint=3)
        uow.commit()
    # then the busy endpoint got at most 3 and the quiet one is served in the same batch
    by_endpoint = [c.endpoint_id for c in claimed]
    assert by_endpoint.count(busy.endpoint.id) == 3
    assert quiet.endpoint.id in by_endpoint
    with platform_uow(url=db_url) as uow:
        assert delivery.release(uow.session, "w1") == len(claimed)
        uow.commit()


def test_a_quiet_endpoint_is_served_even_when_a_full_endpoints_older_backlog_fills_the_first_look(
        tenant, receiver, worker, db_url):
    # given a busy endpoint whose 30 queue heads all fell due before the quiet endpoint's one
    from entrepot.db.uow import platform_uow

    busy = make_endpoint(tenant, "http://127.0.0.1:9/busy", ["test_parcel.scanned.v1"])
    for i in range(30):
        emit(tenant, 1, subject=f"parcel/busy-{i}")
    with platform_uow(url=db_url) as uow:
        while delivery.fan_out(uow.session):
            pass
        uow.commit()
    clock.advance(timedelta(seconds=5))
    quiet = make_endpoint(tenant, receiver.url, ["test_parcel.scanned.v1"])
    emit(tenant, 1, subject="parcel/q")  # fanned out to both, due after the backlog
    with platform_uow(url=db_url) as uow:
        while delivery.fan_out(uow.session):
            pass
        uow.commit()
    # when a worker claims 4 with a per-endpoint limit of 3 (the oldest 8 due heads are all the busy one's)
    with platform_uow(url=db_url) as uow:
        claimed = delivery.claim(uow.session, "w1", limit=4, per_endpoint=3)
        uow.commit()
    # then the busy endpoint got its 3 and the quiet one the remaining place
    by_endpoint = [c.endpoint_id for c in claimed]
    assert by_endpoint.count(busy.endpoint.id) == 3
    assert by_endpoint.count(quiet.endpoint.id) == 1
    with platform_uow(url=db_url) as uow:
        assert delivery.release(uow.session, "w1") == 4
        uow.commit()


def test_response_bodies_are_truncated_on_the_attempt(tenant, receiver, worker):
    # given a large response body (the receiver echoes a small one; use a failing closed port instead)
    issued = make_endpoint(tenant, "http://127.0.0.1:9/closed", ["test_parcel.scanned.v1"])
    [event_id] = emit(tenant)
    drive(worker, lambda: tried(tenant, event_id))
    message = message_of(tenant, event_id)
    [attempt] = attempts_of(tenant, message.id)
    assert attempt.succeeded is False and attempt.status_code is None and attempt.error
    assert json.dumps(attempt.error)  # recorded, printable
    assert issued.endpoint.id == attempt.endpoint_id


def heads_of(tenant, subject: str) -> list[int]:
    """The `n` of each open message of `subject` that heads its queue."""
    with tenant.uow(readonly=True) as uow:
        rows = uow.session.scalars(select(WebhookMessage).where(
            WebhookMessage.subject == subject, WebhookMessage.status.in_(("pending", "delivering")),
            WebhookMessage.queue_head.is_(True)))
        return sorted(json.loads(m.payload)["data"]["n"] for m in rows)


def test_each_subject_queue_has_exactly_one_head_through_fan_out_failure_and_success(tenant, receiver, worker):
    # given three events of one parcel whose first delivery fails
    issued = make_endpoint(tenant, receiver.url, ["test_parcel.scanned.v1"])
    receiver.secrets = [issued.secret]
    receiver.fail_next(1)
    first, *_ = emit(tenant, 3, subject="parcel/H")
    # when the worker fans out and tries the first
    drive(worker, lambda: tried(tenant, first))
    # then only the first heads the queue, still after its failure
    assert heads_of(tenant, "parcel/H") == [0]
    # when its retry succeeds, the next takes over, and so on to the end
    advance_past(delivery.SCHEDULE[1])
    drive(worker, lambda: len(receiver.verified_events) >= 3)
    assert heads_of(tenant, "parcel/H") == []
    assert [e["data"]["n"] for e in receiver.verified_events] == [0, 1, 2]
    # and an event fanned out to the now empty queue heads it at once
    [later] = emit(tenant, 1, subject="parcel/H", start=3)
    with worker_platform(worker) as uow:
        delivery.fan_out(uow.session)
        uow.commit()
    assert heads_of(tenant, "parcel/H") == [3]
    drive(worker, lambda: status_of(tenant, later) == "succeeded")


def test_a_replayed_message_goes_first_again_in_its_subject(tenant, receiver, worker):
    # given two delivered events of one parcel, and a third one waiting behind a failing receiver
    issued = make_endpoint(tenant, receiver.url, ["test_parcel.scanned.v1"])
    receiver.secrets = [issued.secret]
    first, second = emit(tenant, 2, subject="parcel/R")
    drive(worker, lambda: status_of(tenant, second) == "succeeded")
    receiver.status = 503
    [third] = emit(tenant, 1, subject="parcel/R", start=2)
    drive(worker, lambda: tried(tenant, third))
    # when the first is replayed
    with tenant.uow() as uow:
        messages.replay_message(uow, messages.get_message(uow, message_of(tenant, first).id))
        uow.commit()
    # then it heads the queue again and the third waits behind it
    assert heads_of(tenant, "parcel/R") == [0]
    receiver.status = 200
    advance_past(delivery.SCHEDULE[1])
    drive(worker, lambda: status_of(tenant, third) == "succeeded")
    assert [e["data"]["n"] for e in receiver.verified_events] == [0, 1, 0, 2]


def worker_platform(worker: Worker):
    from entrepot.db.uow import platform_uow

    return platform_uow(url=worker.url)


def test_a_paused_endpoint_keeps_what_was_queued_but_is_not_queued_what_happens_while_paused(
        tenant, receiver, worker):
    # given an endpoint with a message waiting for its retry
    issued = make_endpoint(tenant, receiver.url, ["test_parcel.scanned.v1"])
    receiver.status = 500
    [queued] = emit(tenant, subject="parcel/queued")
    drive(worker, lambda: tried(tenant, queued))
    # when it is paused, an event happens, and it is resumed (docs/integrating.md, `enabled`)
    with tenant.uow() as uow:
        webhooks.update_endpoint(uow, webhooks.get_endpoint(uow, issued.endpoint.id), {"enabled": False})
        uow.commit()
    [while_paused] = emit(tenant, subject="parcel/paused")
    settle(worker, 0.2)
    receiver.status = 200
    with tenant.uow() as uow:
        webhooks.update_endpoint(uow, webhooks.get_endpoint(uow, issued.endpoint.id), {"enabled": True})
        uow.commit()
    [after] = emit(tenant, subject="parcel/after")
    advance_past(timedelta(seconds=6))
    drive(worker, lambda: status_of(tenant, queued) == status_of(tenant, after) == "succeeded")
    # then what was queued waited and went out, and the event of the pause was never queued for it
    assert message_of(tenant, while_paused) is None
    assert not [d for d in receiver.deliveries if while_paused.encode() in d.body]


def test_deleting_an_endpoint_dead_letters_what_waited_for_it_and_replay_is_refused(tenant, receiver, worker):
    # given an endpoint with a message waiting for its retry
    issued = make_endpoint(tenant, receiver.url, ["test_parcel.scanned.v1"])
    receiver.status = 500
    [waiting] = emit(tenant, subject="parcel/deleted")
    drive(worker, lambda: tried(tenant, waiting))
    assert status_of(tenant, waiting) == "pending"
    # when the endpoint is deleted
    with tenant.uow() as uow:
        webhooks.delete_endpoint(uow, webhooks.get_endpoint(uow, issued.endpoint.id))
        uow.commit()
    # then nothing waits for an endpoint that will never be sent to (no backlog for ever in health)
    assert status_of(tenant, waiting) == "dead"
    assert message_of(tenant, waiting).last_error == webhooks.ENDPOINT_DELETED
    with tenant.uow(readonly=True) as uow:
        assert messages.health(uow)["webhooks"]["pending"] == 0
    # and replaying it is refused instead of leaving it pending with no endpoint to go to
    with tenant.uow() as uow, pytest.raises(messages.EndpointDeleted):
        messages.replay_message(uow, messages.get_message(uow, message_of(tenant, waiting).id))
    assert status_of(tenant, waiting) == "dead"
