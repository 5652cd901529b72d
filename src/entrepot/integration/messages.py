"""What an integrator sees of deliveries: messages, attempts, replay, recovery, health."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, case, func, literal_column, select, update

from entrepot.db.audit_trail import audit
from entrepot.db.settings import get_settings
from entrepot.db.uow import UnitOfWork
from entrepot.integration.consumers import read_position
from entrepot.integration.delivery import lock_queues, settle_heads
from entrepot.integration.feed import START, settled
from entrepot.integration.models import OutboxEvent, WebhookAttempt, WebhookEndpoint, WebhookMessage
from entrepot.kernel import clock
from entrepot.kernel.errors import Conflict, NotFound

STATUSES = ("pending", "delivering", "succeeded", "dead")
# statuses rendered inline, not as bound parameters, so the planners (SQLite's always) can match the
# partial indexes of dead and open messages
_STATUS_SQL = {status: literal_column(f"'{status}'") for status in STATUSES}
_OPEN_SQL = [_STATUS_SQL["pending"], _STATUS_SQL["delivering"]]


class EndpointDisabled(Conflict):
    code = "endpoint_disabled"


def get_message(uow: UnitOfWork, message_id: uuid.UUID | str) -> WebhookMessage:
    try:
        key = uuid.UUID(str(message_id))
    except ValueError as exc:
        raise NotFound("webhook message", message_id) from exc
    message = uow.session.get(WebhookMessage, key)
    if message is None or message.tenant_id != uow.tenant_id:
        raise NotFound("webhook message", message_id)
    return message


def messages_query(endpoint_id: uuid.UUID, status: str | None = None) -> Select[Any]:
    query = select(WebhookMessage).where(WebhookMessage.endpoint_id == endpoint_id)
    if status:
        query = query.where(WebhookMessage.status == _STATUS_SQL[status])
    return query


def attempts_query(message_id: uuid.UUID) -> Select[Any]:
    return select(WebhookAttempt).where(WebhookAttempt.message_id == message_id)


def replay_message(uow: UnitOfWork, message: WebhookMessage) -> WebhookMessage:
    """Send a message again from the first step of the retry schedule (its attempts are kept)."""
    if message.status == "delivering":
        raise Conflict("the message is being delivered right now")
    lock_queues(uow.session, [(message.endpoint_id, message.subject)])
    message.status = "pending"
    message.attempt_count = 0
    message.next_attempt_at = clock.now()
    message.dead_at = None
    uow.session.flush()
    # open again, it goes back in its place: later open messages of its subject wait for it
    settle_heads(uow.session, [message.tenant_id], [message.endpoint_id], [(message.endpoint_id, message.subject)],
                 demote=True)
    uow.session.refresh(message)
    audit(uow, "webhook_message.replay", "webhook_message", message.id, after={"status": "pending"})
    return message


def recover_endpoint(uow: UnitOfWork, endpoint: WebhookEndpoint, since: datetime) -> int:
    """Replay every dead-lettered message of `endpoint` created since `since`. Returns how many."""
    now = clock.now()
    dead = (WebhookMessage.tenant_id == uow.tenant_id, WebhookMessage.endpoint_id == endpoint.id,
            WebhookMessage.status == _STATUS_SQL["dead"], WebhookMessage.created_at >= since)
    subjects = set(uow.session.scalars(select(WebhookMessage.subject).where(*dead).distinct()))
    lock_queues(uow.session, [(endpoint.id, subject) for subject in subjects])
    result = uow.session.execute(
        update(WebhookMessage).where(*dead)
        .values(status="pending", attempt_count=0, next_attempt_at=now, dead_at=None)
        .execution_options(synchronize_session=False)
    )
    count = result.rowcount or 0
    if count:
        settle_heads(uow.session, [uow.tenant_id], [endpoint.id], demote=True)
    audit(uow, "webhook_endpoint.recover", "webhook_endpoint", endpoint.id,
          after={"since": since.isoformat(), "messages": count})
    return count


def health(uow: UnitOfWork) -> dict[str, Any]:
    """This tenant's integration health: backlogs, ages, per-endpoint success, dead letters, NATS lag."""
    s = uow.session
    now = clock.now()
    counts = dict(s.execute(select(WebhookMessage.status, func.count()).group_by(WebhookMessage.status)).all())
    oldest = s.scalar(select(func.min(WebhookMessage.created_at)).where(WebhookMessage.status.in_(
        ("pending", "delivering"))))
    fan_out_backlog, fan_out_oldest = _outbox_lag(uow, "webhooks")
    nats = None
    if get_settings().nats_url:
        nats_backlog, nats_oldest = _outbox_lag(uow, "nats")
        nats = {"backlog": nats_backlog, "lag_seconds": _age(now, nats_oldest)}
    since = now - _DAY
    stats = {row.endpoint_id: row for row in s.execute(
        select(WebhookAttempt.endpoint_id, func.count().label("n"),
               func.sum(case((WebhookAttempt.succeeded.is_(True), 1), else_=0)).label("ok"))
        .where(WebhookAttempt.attempted_at >= since).group_by(WebhookAttempt.endpoint_id))}
    endpoints = []
    for e in s.scalars(select(WebhookEndpoint).where(WebhookEndpoint.deleted_at.is_(None))
                       .order_by(WebhookEndpoint.id)):
        last_failure = s.scalar(select(WebhookAttempt).where(
            WebhookAttempt.endpoint_id == e.id, WebhookAttempt.succeeded.is_(False))
            .order_by(WebhookAttempt.attempted_at.desc()).limit(1))
        row = stats.get(e.id)
        pending = s.scalar(select(func.count()).where(WebhookMessage.endpoint_id == e.id,
                                                      WebhookMessage.status.in_(_OPEN_SQL)))
        dead = s.scalar(select(func.count()).where(WebhookMessage.endpoint_id == e.id,
                                                   WebhookMessage.status == _STATUS_SQL["dead"]))
        endpoints.append({
            "id": str(e.id), "url": e.url, "enabled": e.enabled, "disabled_reason": e.disabled_reason,
            "attempts_24h": int(row.n) if row else 0,
            "success_rate_24h": round(int(row.ok or 0) / int(row.n), 4) if row and row.n else None,
            "pending": pending, "dead_letters": dead,
            "failing_since": e.failing_since.isoformat() if e.failing_since else None,
            "last_error": ({"at": last_failure.attempted_at.isoformat(), "status_code": last_failure.status_code,
                            "error": last_failure.error} if last_failure else None),
        })
    pending_total = int(counts.get("pending", 0)) + int(counts.get("delivering", 0))
    return {
        "outbox": {"backlog": fan_out_backlog, "oldest_pending_age_seconds": _age(now, fan_out_oldest)},
        "webhooks": {
            "pending": pending_total,
            "succeeded": int(counts.get("succeeded", 0)),
            "dead_letters": int(counts.get("dead", 0)),
            "oldest_pending_age_seconds": _age(now, oldest),
            "endpoints": endpoints,
        },
        "nats": nats,
    }


_DAY = timedelta(days=1)


def _age(now: datetime, then: datetime | None) -> float | None:
    return round((now - then).total_seconds(), 3) if then else None


def _outbox_lag(uow: UnitOfWork, consumer: str) -> tuple[int, datetime | None]:
    """Events of this tenant the consumer has not taken yet, and the oldest one's time."""
    position = read_position(uow.session, consumer) or START
    base = select(func.count(), func.min(OutboxEvent.time))
    # settled() adds ordering for readers; for an aggregate only the filter matters
    query = settled(uow.session, base, position).order_by(None)
    count, oldest = uow.session.execute(query).one()
    return int(count or 0), oldest
