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


class EndpointDeleted(Conflict):
    code = "endpoint_deleted"


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
    endpoint = uow.session.get(WebhookEndpoint, message.endpoint_id)
    if endpoint is None or endpoint.deleted_at is not None:
        raise EndpointDeleted("the message's endpoint was deleted: nothing would ever send it")
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
    """This tenant's integration health: backlogs, ages, per-endpoint success, dead letters, NATS lag.

    A fixed number of grouped reads whatever the number of endpoints (not three per endpoint).
    """
    s = uow.session
    tenant_id = uow.tenant_id
    now = clock.now()
    m = WebhookMessage
    # per endpoint and status in one pass over the tenant's messages; the tenant's totals are its sums
    # (messages of deleted endpoints included, as the totals always counted them)
    by_endpoint: dict[uuid.UUID, dict[str, int]] = {}
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for endpoint_id, status, n in s.execute(select(m.endpoint_id, m.status, func.count())
                                            .where(m.tenant_id == tenant_id).group_by(m.endpoint_id, m.status)):
        by_endpoint.setdefault(endpoint_id, {})[status] = int(n)
        counts[status] = counts.get(status, 0) + int(n)
    oldest = s.scalar(select(func.min(m.created_at)).where(m.tenant_id == tenant_id, m.status.in_(_OPEN_SQL)))
    fan_out_backlog, fan_out_oldest = _outbox_lag(uow, "webhooks")
    nats = None
    if get_settings().nats_url:
        nats_backlog, nats_oldest = _outbox_lag(uow, "nats")
        nats = {"backlog": nats_backlog, "lag_seconds": _age(now, nats_oldest)}
    since = now - _DAY
    a = WebhookAttempt
    stats = {row.endpoint_id: row for row in s.execute(
        select(a.endpoint_id, func.count().label("n"),
               func.sum(case((a.succeeded.is_(True), 1), else_=0)).label("ok"))
        .where(a.tenant_id == tenant_id, a.attempted_at >= since).group_by(a.endpoint_id))}
    # each endpoint's latest failed attempt: one probe of the (tenant, endpoint, attempted_at) index
    # per endpoint, inside the one statement that reads the endpoints
    e = WebhookEndpoint
    last_failure_id = (select(a.id).where(a.tenant_id == e.tenant_id, a.endpoint_id == e.id, a.succeeded.is_(False))
                       .order_by(a.attempted_at.desc()).limit(1).correlate(e).scalar_subquery())
    found = s.execute(select(e, last_failure_id).where(e.tenant_id == tenant_id, e.deleted_at.is_(None))
                      .order_by(e.id)).all()
    failure_ids = [failure_id for _, failure_id in found if failure_id is not None]
    failures = ({f.id: f for f in s.scalars(select(a).where(a.tenant_id == tenant_id, a.id.in_(failure_ids)))}
                if failure_ids else {})
    endpoints = []
    for endpoint, failure_id in found:
        last_failure = failures.get(failure_id) if failure_id is not None else None
        row = stats.get(endpoint.id)
        mine = by_endpoint.get(endpoint.id, {})
        endpoints.append({
            "id": str(endpoint.id), "url": endpoint.url, "enabled": endpoint.enabled,
            "disabled_reason": endpoint.disabled_reason,
            "attempts_24h": int(row.n) if row else 0,
            "success_rate_24h": round(int(row.ok or 0) / int(row.n), 4) if row and row.n else None,
            "pending": mine.get("pending", 0) + mine.get("delivering", 0), "dead_letters": mine.get("dead", 0),
            "failing_since": endpoint.failing_since.isoformat() if endpoint.failing_since else None,
            "last_error": ({"at": last_failure.attempted_at.isoformat(), "status_code": last_failure.status_code,
                            "error": last_failure.error} if last_failure else None),
        })
    pending_total = counts["pending"] + counts["delivering"]
    return {
        "outbox": {"backlog": fan_out_backlog, "oldest_pending_age_seconds": _age(now, fan_out_oldest)},
        "webhooks": {
            "pending": pending_total,
            "succeeded": counts["succeeded"],
            "dead_letters": counts["dead"],
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
