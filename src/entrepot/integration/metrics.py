"""Prometheus metrics for operators, computed from the database at scrape time (all tenants)."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select

from entrepot.db.settings import get_settings
from entrepot.db.uow import platform_uow
from entrepot.integration.consumers import read_position
from entrepot.integration.feed import START, settled
from entrepot.integration.models import OutboxEvent, ScheduledJobState, WebhookEndpoint, WebhookMessage
from entrepot.kernel import clock

CONSUMERS = ("webhooks", "reactions", "nats")


def render() -> tuple[bytes, str]:
    registry = CollectorRegistry()
    backlog = Gauge("entrepot_outbox_backlog_events", "Settled events a consumer has not taken yet",
                    ["consumer"], registry=registry)
    lag = Gauge("entrepot_outbox_lag_seconds", "Age of the oldest event a consumer has not taken",
                ["consumer"], registry=registry)
    messages = Gauge("entrepot_webhook_messages", "Webhook messages by status", ["status"], registry=registry)
    oldest = Gauge("entrepot_webhook_oldest_pending_seconds", "Age of the oldest undelivered webhook message",
                   registry=registry)
    endpoints = Gauge("entrepot_webhook_endpoints", "Webhook endpoints by state", ["state"], registry=registry)
    job_last_run = Gauge("entrepot_scheduled_job_last_run_timestamp_seconds",
                         "When the scheduled job last started (Unix time)", ["job"], registry=registry)
    job_next_run = Gauge("entrepot_scheduled_job_next_run_timestamp_seconds",
                         "When the scheduled job is next due (Unix time): long past, no worker runs jobs",
                         ["job"], registry=registry)
    job_failed = Gauge("entrepot_scheduled_job_failed", "1 when the scheduled job's last run failed",
                       ["job"], registry=registry)
    now = clock.now()
    with platform_uow(readonly=True) as uow:
        s = uow.session
        for consumer in CONSUMERS:
            if consumer == "nats" and not get_settings().nats_url:
                continue
            position = read_position(s, consumer) or START
            count, first = s.execute(
                settled(s, select(func.count(), func.min(OutboxEvent.time)), position).order_by(None)).one()
            backlog.labels(consumer).set(count or 0)
            lag.labels(consumer).set((now - first).total_seconds() if first else 0)
        for status, count in s.execute(select(WebhookMessage.status, func.count()).group_by(WebhookMessage.status)):
            messages.labels(status).set(count)
        first_pending = s.scalar(select(func.min(WebhookMessage.created_at))
                                 .where(WebhookMessage.status.in_(("pending", "delivering"))))
        oldest.set((now - first_pending).total_seconds() if first_pending else 0)
        live = WebhookEndpoint.deleted_at.is_(None)
        endpoints.labels("enabled").set(s.scalar(select(func.count()).where(live, WebhookEndpoint.enabled)) or 0)
        endpoints.labels("disabled").set(
            s.scalar(select(func.count()).where(live, WebhookEndpoint.enabled.is_(False))) or 0)
        for job in s.scalars(select(ScheduledJobState)):
            if job.last_run_at is not None:
                job_last_run.labels(job.name).set(_utc(job.last_run_at).timestamp())
            job_next_run.labels(job.name).set(_utc(job.next_run_at).timestamp())
            job_failed.labels(job.name).set(1 if job.last_error else 0)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def _utc(moment: datetime) -> datetime:
    """SQLite gives the stored UTC times back without their zone."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
