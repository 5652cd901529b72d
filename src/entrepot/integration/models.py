from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Text, UniqueConstraint, Uuid, text
from sqlalchemy.orm import Mapped, mapped_column

from entrepot.db.base import Base, HasId, TenantOwned, Timestamps, Versioned
from entrepot.kernel import clock


class OutboxEvent(TenantOwned, Base):
    """One canonical event, written in the transaction of the change it describes.

    Insert-only. `seq` orders events globally (the `/events` cursor); `txid` is
    the PostgreSQL transaction that wrote it, so readers can hold back events of
    transactions still in flight and never skip one that commits later with a
    smaller `seq`.
    """

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_tenant_id_seq", "tenant_id", "seq"),
        Index("ix_outbox_events_tenant_id_subject_seq", "tenant_id", "subject", "seq"),
        Index("ix_outbox_events_tenant_id_type_seq", "tenant_id", "type", "seq"),
        # PostgreSQL readers go in (txid, seq) order (see integration/feed.py): per tenant for
        # /events, and platform-wide for the worker's consumers, the one index here that does
        # not lead with tenant_id, on purpose. Partial: SQLite leaves txid empty, so there every
        # event would write two index entries no query reads; PostgreSQL's readers ask for
        # `txid < horizon`, which implies the predicate, so they keep using them.
        Index("ix_outbox_events_tenant_id_txid_seq", "tenant_id", "txid", "seq",
              sqlite_where=text("txid IS NOT NULL"), postgresql_where=text("txid IS NOT NULL")),
        Index("ix_outbox_events_txid_seq", "txid", "seq",
              sqlite_where=text("txid IS NOT NULL"), postgresql_where=text("txid IS NOT NULL")),
    )
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    type: Mapped[str] = mapped_column(String(120))
    source: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(200))
    time: Mapped[datetime]
    data: Mapped[dict[str, Any]]
    txid: Mapped[int | None] = mapped_column(BigInteger)


class ConsumerCursor(Base):
    """How far one outbox consumer (reactions, webhook fan-out, nats) has read.

    Platform-wide (the worker reads every tenant's events). `position` is the
    last event consumed in the outbox read order: (txid, seq) on PostgreSQL,
    seq alone on SQLite where txid is empty.
    """

    __tablename__ = "integration_consumer_cursors"
    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    last_txid: Mapped[int] = mapped_column(BigInteger, default=0)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    # messages handed out so far (the webhook fan-out numbers its messages with it)
    emitted: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now)


class ScheduledJobState(Base):
    """When each periodic job last ran and is next due (the lease says who runs it)."""

    __tablename__ = "integration_scheduled_jobs"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_run_at: Mapped[datetime | None]
    next_run_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)


class WebhookEndpoint(TenantOwned, HasId, Timestamps, Versioned, Base):
    """A tenant's subscriber: where to POST which event types, signed with its secret."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_tenant_id_enabled", "tenant_id", "enabled"),)
    url: Mapped[str] = mapped_column(String(2000))
    event_types: Mapped[list[Any]]
    description: Mapped[str] = mapped_column(String(500), default="")
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # deliveries per second; None = no limit beyond the per-endpoint concurrency
    rate_limit: Mapped[int | None] = mapped_column(Integer)
    # secrets are sealed with the deployment secret key (entrepot.integration.secrets)
    sealed_secret: Mapped[str] = mapped_column(Text)
    sealed_previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(200))
    failing_since: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]


_OPEN = "status IN ('pending', 'delivering')"
_OPEN_HEAD = "status IN ('pending', 'delivering') AND queue_head"
_DELIVERING = "status = 'delivering'"
_DEAD = "status = 'dead'"


class WebhookMessage(TenantOwned, HasId, Base):
    """One event to deliver to one endpoint: the delivery row the worker claims.

    Messages of one (endpoint, subject) form a queue delivered in `ordinal`
    order. `queue_head` marks the one open message of each queue that may be
    sent now (the open message with the smallest ordinal), so a claim reads
    only heads instead of checking every open message for an earlier one
    (integration/delivery.py keeps the flag right on every change of status).
    """

    __tablename__ = "webhook_messages"
    __table_args__ = (
        UniqueConstraint("tenant_id", "endpoint_id", "event_id"),
        # Partial indexes over open messages only: they stay small however much history
        # accumulates. The due-time one is the platform-wide delivery queue the worker
        # claims from (queue heads only), oldest due first across tenants (so no tenant
        # starves another); it is the one index here that does not lead with tenant_id, on purpose.
        Index("ix_webhook_messages_open_head_due", "next_attempt_at",
              sqlite_where=text(_OPEN_HEAD), postgresql_where=text(_OPEN_HEAD)),
        Index("ix_webhook_messages_open_subject", "tenant_id", "endpoint_id", "subject", "ordinal",
              sqlite_where=text(_OPEN), postgresql_where=text(_OPEN)),
        # The messages in flight (a claim counts them per endpoint) and the dead letters (recover,
        # dead-letter counts, listing by status=dead), each in an index of its own: one over every
        # status took a new entry at each change of it (claimed, then succeeded or retried: none is
        # a HOT update, the partial indexes above name the status), these only on entering their
        # status. Listing the other statuses reads the primary key in id order (the page order)
        # and filters: succeeded ones are most of the history, pending ones a backlog.
        Index("ix_webhook_messages_delivering", "tenant_id", "endpoint_id",
              sqlite_where=text(_DELIVERING), postgresql_where=text(_DELIVERING)),
        Index("ix_webhook_messages_dead", "tenant_id", "endpoint_id", "created_at",
              sqlite_where=text(_DEAD), postgresql_where=text(_DEAD)),
    )
    endpoint_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_endpoints.id"))
    event_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    event_type: Mapped[str] = mapped_column(String(120))
    subject: Mapped[str] = mapped_column(String(200))
    # fan-out order: per (endpoint, subject) a message waits for every smaller ordinal
    ordinal: Mapped[int] = mapped_column(BigInteger)
    payload: Mapped[str] = mapped_column(Text)  # the exact JSON body that is signed
    status: Mapped[str] = mapped_column(String(20), default="pending")  # pending|delivering|succeeded|dead
    queue_head: Mapped[bool] = mapped_column(Boolean, default=False)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_by: Mapped[str | None] = mapped_column(String(120))
    claimed_until: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    delivered_at: Mapped[datetime | None]
    dead_at: Mapped[datetime | None]


class WebhookAttempt(TenantOwned, HasId, Base):
    """One HTTP attempt of a message: when, what came back, how long it took."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_tenant_id_message_id", "tenant_id", "message_id"),
                      Index("ix_webhook_attempts_tenant_id_endpoint_id_attempted_at", "tenant_id", "endpoint_id",
                            "attempted_at"))
    message_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_messages.id"))
    endpoint_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    attempted_at: Mapped[datetime]
    succeeded: Mapped[bool] = mapped_column(Boolean)
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


class InboundConnector(TenantOwned, HasId, Timestamps, Base):
    """A connector that calls us back (carrier, payment provider): its signing secret."""

    __tablename__ = "inbound_connectors"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    name: Mapped[str] = mapped_column(String(60))
    sealed_secret: Mapped[str] = mapped_column(Text)


class InboundMessage(TenantOwned, HasId, Base):
    """A verified connector callback, kept once per message id (dedupe)."""

    __tablename__ = "inbound_messages"
    __table_args__ = (UniqueConstraint("tenant_id", "connector", "message_id"),)
    connector: Mapped[str] = mapped_column(String(60))
    message_id: Mapped[str] = mapped_column(String(200))
    received_at: Mapped[datetime] = mapped_column(default=clock.now)
    payload: Mapped[dict[str, Any]]
