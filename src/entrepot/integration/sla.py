"""The integration SLA: deliveries waiting longer than the threshold raise `integration.sla_breached.v1`."""

from __future__ import annotations

import os
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from entrepot.integration.events import IntegrationSlaBreached
from entrepot.integration.models import OutboxEvent, WebhookMessage
from entrepot.integration.outbox import record_event_in
from entrepot.kernel import clock
from entrepot.kernel.events import type_of

QUIET = timedelta(hours=1)  # one breach event per tenant per hour at most


def threshold() -> timedelta:
    return timedelta(minutes=float(os.environ.get("ENTREPOT_INTEGRATION_SLA_MINUTES", "15")))


def check_sla(session: Session, limit: timedelta | None = None) -> int:
    """Platform-wide check; emits one event per breaching tenant. Returns how many were emitted."""
    limit = limit or threshold()
    now = clock.now()
    rows = session.execute(
        select(WebhookMessage.tenant_id, func.min(WebhookMessage.created_at), func.count())
        .where(WebhookMessage.status.in_(("pending", "delivering")))
        .group_by(WebhookMessage.tenant_id)
    ).all()
    kind = type_of(IntegrationSlaBreached(oldest_pending_age_seconds=0, threshold_seconds=0, pending_messages=0))
    emitted = 0
    for tenant_id, oldest, pending in rows:
        if oldest is None or now - oldest < limit:
            continue
        recent = session.scalar(select(func.count()).where(
            OutboxEvent.tenant_id == tenant_id, OutboxEvent.type == kind, OutboxEvent.time > now - QUIET))
        if recent:
            continue
        record_event_in(session, tenant_id, IntegrationSlaBreached(
            oldest_pending_age_seconds=int((now - oldest).total_seconds()),
            threshold_seconds=int(limit.total_seconds()), pending_messages=int(pending)),
            subject="integration/sla")
        emitted += 1
    return emitted
