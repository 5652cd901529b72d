"""Webhook delivery: fan-out from the outbox, claims, attempts, retries, dead letters.

The worker drives it in three steps, each its own short transaction:

1. `fan_out`: new outbox events → one `WebhookMessage` per subscribed endpoint.
2. `claim`: due messages, at most one per (endpoint, subject) — the oldest not
   yet succeeded or dead-lettered, so a subject's events arrive in order — and
   at most `per_endpoint` in flight per endpoint, so a slow endpoint cannot
   take every slot. PostgreSQL claims with `FOR UPDATE SKIP LOCKED`; a claim
   is a lease (`claimed_until`), so a crashed worker's messages come back.
3. `send` (no database) then `record`: the attempt row, the next try on the
   retry schedule, the dead letter, or the disabled endpoint.

The messages of one (endpoint, subject) are a queue in `ordinal` order whose
open message with the smallest ordinal carries `queue_head`; claims read heads
only (an index of a few rows per queue, not a check of every open message).
Whatever opens or closes a message keeps the flag right: fan-out sets it on new
messages of empty queues, `record` calls `promote_next` (one index probe per
closed message) and replay/recover call `settle_heads`. On
PostgreSQL those writers first take a transaction-scoped advisory lock per
queue (`lock_queues`), so a fan-out and a completion of the same queue in two
workers cannot both miss each other's uncommitted row and leave a queue
without a head.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.client
import json
import os
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import httpx
from sqlalchemy import (
    BigInteger,
    Connection,
    Integer,
    String,
    TypeDecorator,
    Uuid,
    and_,
    any_,
    bindparam,
    func,
    insert,
    literal_column,
    not_,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from entrepot.db.prepared import Prepared
from entrepot.integration.consumers import hold_cursor, save_cursor
from entrepot.integration.envelopes import envelope_json
from entrepot.integration.events import WebhookEndpointDisabled, WebhookMessageExhausted
from entrepot.integration.feed import FeedRow, Position, anything_after, event_rows_after
from entrepot.integration.http_client import Exchange, PooledClient, Response
from entrepot.integration.models import WebhookAttempt, WebhookEndpoint, WebhookMessage
from entrepot.integration.outbox import record_event_in
from entrepot.integration.stored_ids import read_id, read_shared_id
from entrepot.integration.webhooks import (
    sign,
    signing_secrets,
    subscribes,
    target_refusal,
    vetted_without_lookup,
)
from entrepot.kernel import clock
from entrepot.kernel.ids import new_id

FAN_OUT = "webhooks"
# attempt n happens SCHEDULE[n-1] after the previous failure; 8 attempts over about 28 h
SCHEDULE = (
    timedelta(0), timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30),
    timedelta(hours=2), timedelta(hours=5), timedelta(hours=10), timedelta(hours=10),
)
JITTER = 0.1
TIMEOUT_SECONDS = 15.0
BODY_CAP = 64 * 1024  # bytes of a response read at most
STORED_BODY = 2000  # characters of it kept on the attempt
CLAIM_LEASE = timedelta(seconds=60)
DISABLE_AFTER = timedelta(days=5)
# deliveries in flight per endpoint at once (all workers together, per claim round)
PER_ENDPOINT = int(os.environ.get("ENTREPOT_WEBHOOK_ENDPOINT_CONCURRENCY", "16"))
OPEN = ("pending", "delivering")
# rendered inline, not as bound parameters, so the planner can match the partial indexes
OPEN_SQL = [literal_column("'pending'"), literal_column("'delivering'")]
# a bare column term, as in the partial indexes' WHERE (SQLite matches the term itself)
HEAD_SQL = literal_column("webhook_messages.queue_head")
DELIVERING_SQL = literal_column("'delivering'")


# --- the statements of a delivery round -------------------------------------------------------------
#
# A worker round (record what finished, claim the next batch) runs the same dozen statements
# over and over, and building a SQLAlchemy statement costs far more Python than running it:
# built per call they took most of the worker's CPU. They are built once per dialect here, as
# Core statements on the tables (no ORM unit of work involved); those of every round are
# `Prepared` (run on the driver's cursor of the session's connection: SQLAlchemy's execution
# and its per-row parameter handling cost more than the statements), the rare ones run
# through SQLAlchemy.

_MESSAGES = WebhookMessage.__table__
_ATTEMPTS = WebhookAttempt.__table__
_ENDPOINTS = WebhookEndpoint.__table__
# what the prepared inserts set, every column with a default included (they apply none)
MESSAGE_COLUMNS = ("id", "tenant_id", "endpoint_id", "event_id", "event_type", "subject", "ordinal", "payload",
                   "status", "queue_head", "attempt_count", "next_attempt_at", "created_at")
ATTEMPT_COLUMNS = ("id", "tenant_id", "message_id", "endpoint_id", "attempted_at", "succeeded", "status_code",
                   "latency_ms", "response_body", "error")


class _ListParam(TypeDecorator[list[Any]]):
    """SQLite: a list parameter sent as one JSON array (ids as the 32 hex digits SQLite stores)."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> str:
        return json.dumps([v.hex if isinstance(v, uuid.UUID) else v for v in value])


def _among(column: Any, name: str, dialect: str) -> ColumnElement[bool]:
    """`column IN (:name...)` for a list parameter, with SQL text that does not depend on its length.

    So the driver prepares each statement once and SQLAlchemy renders it once: PostgreSQL
    gets `= ANY(:name)` with one array, SQLite `IN (SELECT value FROM json_each(:name))`
    with one JSON array (an expanding IN would render and prepare anew for every length).
    """
    if dialect == "postgresql":
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    values = select(literal_column("value")).select_from(func.json_each(bindparam(name, type_=_ListParam())))
    return column.in_(values.scalar_subquery())


class _Statements:
    """The prebuilt statements of fan-out, claim and record for one dialect."""

    def __init__(self, dialect: str) -> None:
        m = _MESSAGES.c
        e = _ENDPOINTS.c
        now = bindparam("now", type_=m.next_attempt_at.type)
        is_open = m.status.in_(OPEN_SQL)
        due = or_(
            and_(m.status == "pending", m.next_attempt_at <= now),
            and_(m.status == "delivering", m.claimed_until < now),
        )
        live = select(e.id).where(e.enabled.is_(True), e.deleted_at.is_(None))
        # fan-out: the tenants' live endpoints, and which of these queues already have an open head
        self.live_endpoints = Prepared(select(read_shared_id(e.id), read_shared_id(e.tenant_id), e.event_types).where(
            _among(e.tenant_id, "tenants", dialect), e.deleted_at.is_(None), e.enabled.is_(True)))
        # which of the given queues (parallel lists: tenant, endpoint, subject) have an open message:
        # one probe of the open messages' (tenant, endpoint, subject, ordinal) index per queue, the
        # positions of the busy ones back (no index of heads of its own: that cost two more index
        # entries per message, at its promotion and at its claim)
        if dialect == "postgresql":
            self.busy_queues = Prepared(text(
                "SELECT q.i FROM unnest(CAST(:tenants AS uuid[]), CAST(:endpoints AS uuid[]),"
                " CAST(:subjects AS text[])) WITH ORDINALITY AS q(tenant_id, endpoint_id, subject, i)"
                " CROSS JOIN LATERAL (SELECT 1 FROM webhook_messages AS m WHERE m.tenant_id = q.tenant_id"
                " AND m.endpoint_id = q.endpoint_id AND m.subject = q.subject"
                " AND m.status IN ('pending', 'delivering') LIMIT 1) AS busy"
            ).bindparams(bindparam("tenants", type_=ARRAY(Uuid)), bindparam("endpoints", type_=ARRAY(Uuid)),
                         bindparam("subjects", type_=ARRAY(String))).columns(i=BigInteger))
        else:
            self.busy_queues = Prepared(text(
                "SELECT q.key + 1 FROM json_each(:queues) AS q"
                " WHERE EXISTS (SELECT 1 FROM webhook_messages AS m WHERE m.tenant_id = json_extract(q.value, '$[0]')"
                " AND m.endpoint_id = json_extract(q.value, '$[1]') AND m.subject = json_extract(q.value, '$[2]')"
                " AND m.status IN ('pending', 'delivering'))"
            ).bindparams(bindparam("queues", type_=_ListParam())).columns(i=BigInteger))
        if dialect == "postgresql":
            # a pass's messages in one statement, the columns as arrays (as the attempts below)
            self.insert_messages = _insert_unnest(_MESSAGES, MESSAGE_COLUMNS)
        else:
            self.insert_messages = Prepared(insert(_MESSAGES), columns=MESSAGE_COLUMNS)
        # claim, first look: the oldest due queue heads, read in order off the due-time index
        # (stops after `limit` rows, nothing to sort); PostgreSQL locks them in the same statement,
        # skipping rows another worker holds (and re-checking those it just changed)
        due_heads = (select(read_id(m.id), read_shared_id(m.tenant_id), read_shared_id(m.endpoint_id))
                     .where(is_open, HEAD_SQL, due, m.endpoint_id.in_(live))
                     .order_by(m.next_attempt_at).limit(bindparam("limit", type_=Integer)))
        if dialect == "postgresql":
            due_heads = due_heads.with_for_update(skip_locked=True, of=_MESSAGES)
        self.due_heads = Prepared(due_heads)
        # claim, second look, when endpoints already at their limit filled the first: the due heads
        # of the other endpoints, at most `per_endpoint` each, oldest due first (so a backlog on
        # one endpoint cannot crowd the others out of the batch)
        heads = (
            select(m.id, m.tenant_id, m.endpoint_id, m.next_attempt_at,
                   func.row_number().over(partition_by=m.endpoint_id, order_by=m.next_attempt_at).label("rank"))
            .where(is_open, HEAD_SQL, due, m.endpoint_id.in_(live), not_(_among(m.endpoint_id, "full", dialect)))
            .subquery()
        )
        self.fair_due_heads = (select(heads.c.id, heads.c.tenant_id, heads.c.endpoint_id)
                               .where(heads.c.rank <= bindparam("per_endpoint", type_=Integer))
                               .order_by(heads.c.next_attempt_at).limit(bindparam("limit", type_=Integer)))
        # PostgreSQL: lock what is still a due head; rows another worker holds or just took are skipped
        self.lock_candidates = (select(m.id).where(_among(m.id, "ids", dialect), is_open, HEAD_SQL, due)
                                .with_for_update(skip_locked=True))
        self.in_flight = Prepared(select(read_shared_id(m.endpoint_id), func.count())
                                  .where(m.status == DELIVERING_SQL, m.claimed_until >= now,
                                         _among(m.tenant_id, "tenants", dialect),
                                         _among(m.endpoint_id, "endpoints", dialect))
                                  .group_by(m.endpoint_id))
        # one statement marks the claim and reads back what to send; on PostgreSQL with the
        # endpoints' addresses and secrets too (UPDATE … FROM: a statement fewer per round; SQLite's
        # RETURNING cannot name the FROM table, so there a second statement reads the endpoints)
        mark_claimed = (update(_MESSAGES).where(_among(m.id, "ids", dialect))
                        .values(status="delivering", claimed_by=bindparam("worker"),
                                claimed_until=bindparam("until", type_=m.claimed_until.type)))
        returned = (read_id(m.id), read_shared_id(m.tenant_id), read_shared_id(m.endpoint_id), m.subject,
                    m.payload, m.attempt_count)
        endpoint_columns = (e.url, e.sealed_secret, e.sealed_previous_secret, e.previous_secret_expires_at,
                            e.failing_since)
        self.endpoints: Prepared | None = None
        if dialect == "postgresql":
            self.mark_claimed = Prepared(mark_claimed.where(e.id == m.endpoint_id, e.tenant_id == m.tenant_id)
                                         .returning(*returned, *endpoint_columns))
        else:
            self.mark_claimed = Prepared(mark_claimed.returning(*returned))
            self.endpoints = Prepared(select(read_shared_id(e.id), *endpoint_columns)
                                      .where(_among(e.id, "ids", dialect)))
        # record
        if dialect == "postgresql":
            # a round's attempts in one statement, the columns as arrays: executemany sends one
            # execution per row, each an executor start-up and a round of its own on the server
            self.insert_attempts = _insert_unnest(_ATTEMPTS, ATTEMPT_COLUMNS)
        else:
            self.insert_attempts = Prepared(insert(_ATTEMPTS), columns=ATTEMPT_COLUMNS)
        self.mark_succeeded = Prepared(update(_MESSAGES).where(_among(m.id, "ids", dialect))
                                       .values(status="succeeded", attempt_count=m.attempt_count + 1,
                                               delivered_at=bindparam("at", type_=m.delivered_at.type),
                                               last_status_code=bindparam("code", type_=m.last_status_code.type),
                                               last_error=None, claimed_by=None, claimed_until=None))
        self.endpoints_recovered = (update(_ENDPOINTS)
                                    .where(_among(e.id, "ids", dialect), e.failing_since.is_not(None))
                                    .values(failing_since=None))
        # the first open message of each closed message's queue: one index probe per queue
        candidate = _MESSAGES.alias("candidate")
        closed = _MESSAGES.alias("closed")
        first = (select(candidate.c.id)
                 .where(candidate.c.tenant_id == closed.c.tenant_id, candidate.c.endpoint_id == closed.c.endpoint_id,
                        candidate.c.subject == closed.c.subject, candidate.c.status.in_(OPEN_SQL))
                 .order_by(candidate.c.ordinal).limit(1).correlate(closed).scalar_subquery())
        self.promote_next = Prepared(update(_MESSAGES)
                                     .where(m.id.in_(select(first).where(_among(closed.c.id, "ids", dialect))),
                                            not_(HEAD_SQL))
                                     .values(queue_head=True))
        # PostgreSQL: see `begin_round`
        self.begin_round = Prepared(text("SELECT set_config('plan_cache_mode', 'force_generic_plan', true)"))
        # PostgreSQL: the queues' advisory locks (see `lock_queues`)
        self.lock_queues = Prepared(
            text("SELECT pg_advisory_xact_lock(k) FROM unnest(:keys) AS k")
            .bindparams(bindparam("keys", type_=ARRAY(BigInteger))))


def _insert_unnest(table: Any, names: Sequence[str]) -> Prepared:
    """PostgreSQL: `INSERT … SELECT FROM unnest(:col1, :col2, …)`, one array parameter per column.

    One execution for any number of rows: psycopg's executemany sends one execution per row,
    each an executor start-up and a round of its own on the server.
    """
    columns = [bindparam(name, type_=ARRAY(table.c[name].type)) for name in names]
    rows = func.unnest(*columns).table_valued(*names).render_derived(name="row")
    return Prepared(insert(table).from_select(names, select(*[rows.c[name] for name in names])), columns=names)


def _columns(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> dict[str, list[Any]]:
    """Rows (dicts) as one list per column, the parameters of `_insert_unnest`."""
    return {name: [row[name] for row in rows] for name in names}


@functools.cache
def _statements_for(dialect: str) -> _Statements:
    return _Statements(dialect)


def _sql(conn: Connection) -> _Statements:
    return _statements_for(conn.dialect.name)


def _connection(session: Session) -> Connection:
    """The transaction's connection (the unit of work keeps it: asking the session costs more)."""
    uow = session.info.get("uow")
    return uow.connection() if uow is not None else session.connection()


def begin_round(session: Session) -> None:
    """PostgreSQL: generic plans for the statements of this delivery round (record and claim).

    A round's statements are the same few, prepared by the driver, and PostgreSQL keeps a
    generic plan for most; but it estimates the in-flight count and the head promotion (array
    parameters) cheaper when planned for each call's values, so it plans those two anew every
    round, which costs it more than running them. Their generic plans are the same plans (same
    indexes, same joins). LOCAL: this transaction only, not whatever next uses the connection.
    """
    conn = _connection(session)
    if conn.dialect.name == "postgresql":
        _sql(conn).begin_round.execute(conn, {})


def round_pipeline(session: Session, outcomes: Sequence[Outcome]) -> contextlib.AbstractContextManager[Any]:
    """PostgreSQL: send what a round records (`begin_round`, `record`) in psycopg's pipeline mode.

    These statements (the generic plans' setting, the queue locks, the attempts, the
    successes, the promotions) return nothing the round reads, so they go out together and
    the round waits for the server once instead of once each; the pipeline ends (and any
    error surfaces) before the claim reads. Not when an outcome failed or an endpoint
    recovers: those go through the ORM and SQLAlchemy's execution, which read each
    statement's row count as it returns.
    """
    conn = _connection(session)
    if conn.dialect.name != "postgresql" or any(
            not o.succeeded or o.claimed.endpoint_failing for o in outcomes):
        return contextlib.nullcontext()
    return conn.connection.dbapi_connection.pipeline()  # type: ignore[union-attr,no-any-return]


def retry_delay(failed_attempts: int) -> timedelta | None:
    """Delay before the next attempt after `failed_attempts` failures; None when exhausted."""
    if failed_attempts >= len(SCHEDULE):
        return None
    base = SCHEDULE[failed_attempts]
    return base * (1 + random.uniform(-JITTER, JITTER)) if base else base


# --- subject queues -------------------------------------------------------------------------------


def _queue_key(endpoint_id: uuid.UUID, subject: str) -> int:
    digest = hashlib.blake2b(f"{endpoint_id}/{subject}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_queues(session: Session, queues: Iterable[tuple[uuid.UUID, str]]) -> None:
    """PostgreSQL: hold the (endpoint, subject) queues until commit, in one global order (no deadlock).

    Whoever opens or closes messages of a queue takes this first, so the next
    one to look sees the other's committed rows (READ COMMITTED reads afresh
    per statement). SQLite has a single writer and needs nothing.
    """
    conn = session.connection()
    if conn.dialect.name != "postgresql":
        return
    keys = sorted({_queue_key(endpoint_id, subject) for endpoint_id, subject in queues})
    if keys:
        _sql(conn).lock_queues.execute(conn, {"keys": keys})


def settle_heads(session: Session, tenant_ids: Iterable[uuid.UUID], endpoint_ids: Iterable[uuid.UUID],
                 queues: Iterable[tuple[uuid.UUID, str]] | None = None, *, demote: bool = False) -> None:
    """Make the open message with the smallest ordinal of each queue in scope its head.

    Scope: the given (endpoint, subject) queues, or every queue of the endpoints.
    `demote` also takes the flag off any other open message (needed when an
    older message is opened again by replay or recovery).
    """
    m = WebhookMessage
    scope = [m.status.in_(OPEN_SQL), m.tenant_id.in_(set(tenant_ids)), m.endpoint_id.in_(set(endpoint_ids))]
    if queues is not None:
        pairs = set(queues)
        # the plain IN lists let the index narrow the scan; the pairs keep it to these queues exactly
        scope += [m.subject.in_({subject for _, subject in pairs}), tuple_(m.endpoint_id, m.subject).in_(pairs)]
    first = select(m.tenant_id, m.endpoint_id, m.subject, func.min(m.ordinal)).where(*scope).group_by(
        m.tenant_id, m.endpoint_id, m.subject)
    row = tuple_(m.tenant_id, m.endpoint_id, m.subject, m.ordinal)
    if demote:
        session.execute(update(m).where(*scope, HEAD_SQL, row.not_in(first)).values(queue_head=False)
                        .execution_options(synchronize_session=False))
    session.execute(update(m).where(*scope, not_(HEAD_SQL), row.in_(first)).values(queue_head=True)
                    .execution_options(synchronize_session=False))


def promote_next(session: Session, message_ids: Iterable[uuid.UUID]) -> None:
    """Make the first open message of each of these messages' queues its head (after they closed).

    One index probe per queue (the oldest open message of the same endpoint and subject).
    """
    ids = list(message_ids)
    if not ids:
        return
    conn = session.connection()
    _sql(conn).promote_next.execute(conn, {"ids": ids})


# --- 1. fan-out -----------------------------------------------------------------------------------


class _LiveEndpoint(NamedTuple):
    id: uuid.UUID
    tenant_id: uuid.UUID
    event_types: list[str]


@dataclass
class FanOutProgress:
    """What one worker last knew of the fan-out cursor: at or behind it (cursors only move on)."""

    position: Position | None = None


def fan_out(session: Session, *, limit: int = 500, progress: FanOutProgress | None = None) -> int:
    """Turn the next settled outbox events into delivery rows. Returns events consumed.

    Plain rows throughout (the cursor, the events, the endpoints) from prepared statements:
    this reads every event the platform emits, and ORM objects would cost more than the
    statements. Each message carries its event's tenant. With `progress`, a look that
    finds no event after the position it remembers ends there, before the cursor's lock
    (a write) and the settled read.
    """
    if progress is not None and progress.position is not None and not anything_after(session, progress.position):
        return 0
    cursor = hold_cursor(session, FAN_OUT, nowait=True)
    if cursor is None:
        return 0  # another worker is fanning out
    if progress is not None:
        progress.position = cursor.position
    rows = event_rows_after(session, cursor.position, limit=limit)
    if not rows:
        return 0
    conn = _connection(session)
    sql = _sql(conn)
    tenants = list({r.tenant_id for r in rows})
    endpoints: dict[uuid.UUID, list[_LiveEndpoint]] = defaultdict(list)
    for found_endpoint in sql.live_endpoints.execute(conn, {"tenants": tenants}):
        endpoint = _LiveEndpoint._make(found_endpoint)
        endpoints[endpoint.tenant_id].append(endpoint)
    # (event, endpoint) pairs to deliver, in outbox order; a type's subscribers are worked out once
    subscribers: dict[tuple[uuid.UUID, str], list[_LiveEndpoint]] = {}
    pairs: list[tuple[FeedRow, _LiveEndpoint]] = []
    for row in rows:
        key = (row.tenant_id, row.type)
        found = subscribers.get(key)
        if found is None:
            found = subscribers[key] = [e for e in endpoints.get(row.tenant_id, ()) if subscribes(e, row.type)]
        pairs.extend((row, endpoint) for endpoint in found)
    if pairs:
        # the rows first, then the queues' locks: held until commit, so as little as possible
        # happens under them (a delivery round that closes a message of one of these queues
        # waits for them)
        now = clock.now()
        ordinal = cursor.emitted
        values: list[dict[str, Any]] = []
        first_of: dict[tuple[uuid.UUID, uuid.UUID, str], dict[str, Any]] = {}  # queue → its first new row
        body: str = ""
        body_of: Any = None
        for row, endpoint in pairs:
            if row is not body_of:  # the envelope is written once per event, whatever its subscribers
                body, body_of = envelope_json(row), row
            ordinal += 1
            value = {
                "id": new_id(), "tenant_id": row.tenant_id, "endpoint_id": endpoint.id, "event_id": row.id,
                "event_type": row.type, "subject": row.subject, "ordinal": ordinal, "payload": body,
                "status": "pending", "queue_head": False, "attempt_count": 0, "next_attempt_at": now,
                "created_at": now,
            }
            values.append(value)
            first_of.setdefault((endpoint.tenant_id, endpoint.id, row.subject), value)
        tenant_queues = list(first_of)
        # a new message heads its queue when the queue has no open message yet
        lock_queues(session, [(endpoint_id, subject) for _, endpoint_id, subject in tenant_queues])
        if conn.dialect.name == "postgresql":
            found = sql.busy_queues.execute(conn, {"tenants": [q[0] for q in tenant_queues],
                                                   "endpoints": [q[1] for q in tenant_queues],
                                                   "subjects": [q[2] for q in tenant_queues]})
        else:
            found = sql.busy_queues.execute(conn, {"queues": [[t.hex, e.hex, s] for t, e, s in tenant_queues]})
        busy = {tenant_queues[i - 1] for (i,) in found}
        for queue, value in first_of.items():
            if queue not in busy:
                value["queue_head"] = True
        if conn.dialect.name == "postgresql":
            sql.insert_messages.execute(conn, _columns(values, MESSAGE_COLUMNS))
        else:
            sql.insert_messages.execute_many(conn, values)
        cursor.emitted = ordinal
    cursor.position = Position.of(rows[-1])
    save_cursor(session, cursor)
    if progress is not None:
        progress.position = cursor.position
    return len(rows)


# --- 2. claims ------------------------------------------------------------------------------------


@dataclass
class Claimed:
    message_id: uuid.UUID
    tenant_id: uuid.UUID
    endpoint_id: uuid.UUID
    url: str
    payload: str
    secrets: list[str]
    attempt: int  # 1-based number of this attempt
    subject: str = ""
    # the endpoint was failing when claimed: a success must clear `failing_since` (when it was
    # not, a success has nothing to clear unless a failure came in meanwhile, which the next
    # success after it clears)
    endpoint_failing: bool = True


class _ClaimedEndpoint(NamedTuple):
    id: uuid.UUID
    url: str
    sealed_secret: str
    sealed_previous_secret: str | None
    previous_secret_expires_at: datetime | None
    failing_since: datetime | None


def claim(session: Session, worker_id: str, *, limit: int = 100, per_endpoint: int = PER_ENDPOINT,
          rate_budget: dict[uuid.UUID, int] | None = None, lease: timedelta = CLAIM_LEASE) -> list[Claimed]:
    """Claim due messages (see module doc). `rate_budget`: sends left this second per endpoint.

    Oldest due first, at most `per_endpoint` in flight per endpoint. The first look reads
    the oldest due heads straight off the index; only when endpoints that are already at
    their limit took places in it does a second look skip past them (a per-endpoint window
    over every due head: the fair answer, but it sorts them all).
    """
    conn = _connection(session)
    sql = _sql(conn)
    postgres = conn.dialect.name == "postgresql"  # the first look has locked its rows already
    now = clock.now()
    chosen_ids: list[uuid.UUID] = []
    seen: set[uuid.UUID] = set()
    in_flight: dict[uuid.UUID, int] = {}
    taken: dict[uuid.UUID, int] = defaultdict(int)
    full: set[uuid.UUID] = set()

    # candidates are (message id, tenant id, endpoint id)
    def pick(candidates: Sequence[Sequence[Any]], *, locked: bool) -> None:
        candidates = [c for c in candidates if c[0] not in seen]
        if candidates and not locked and postgres:
            # lock what is still a due head; rows another worker holds or just took are skipped
            locked = set(conn.scalars(sql.lock_candidates, {"ids": [c[0] for c in candidates], "now": now}))
            candidates = [c for c in candidates if c[0] in locked]
        unknown = {c[2] for c in candidates} - in_flight.keys()
        if unknown:
            in_flight.update(dict.fromkeys(unknown, 0))
            in_flight.update(sql.in_flight.execute(conn, {
                "now": now, "tenants": list({c[1] for c in candidates if c[2] in unknown}),
                "endpoints": list(unknown)}))
        for message_id, _tenant_id, endpoint_id in candidates:
            if len(chosen_ids) >= limit:
                return
            seen.add(message_id)
            room = per_endpoint - in_flight[endpoint_id] - taken[endpoint_id]
            if rate_budget is not None and endpoint_id in rate_budget:
                room = min(room, rate_budget[endpoint_id] - taken[endpoint_id])
            if room <= 0:
                full.add(endpoint_id)
                continue
            taken[endpoint_id] += 1
            chosen_ids.append(message_id)

    # `limit` heads are enough: on PostgreSQL the heads other workers hold are skipped before the
    # limit counts; a head is passed over only when its endpoint is full, which the second look is for
    first = sql.due_heads.execute(conn, {"now": now, "limit": limit})
    pick(first, locked=True)
    if len(chosen_ids) < limit and len(first) == limit and full:
        pick(conn.execute(sql.fair_due_heads, {"now": now, "limit": limit * 2, "per_endpoint": per_endpoint,
                                               "full": list(full)}).all(), locked=False)
    if not chosen_ids:
        return []
    chosen = sql.mark_claimed.execute(conn, {"ids": chosen_ids, "worker": worker_id, "until": now + lease})
    endpoints: dict[uuid.UUID, _ClaimedEndpoint] = {}
    if sql.endpoints is None:  # the claim returned each message's endpoint after its own columns
        for row in chosen:
            if row[2] not in endpoints:
                endpoints[row[2]] = _ClaimedEndpoint(row[2], *row[6:])
    else:
        endpoints = {e[0]: _ClaimedEndpoint._make(e)
                     for e in sql.endpoints.execute(conn, {"ids": list({c[2] for c in chosen})})}
    result: list[Claimed] = []
    keys: dict[uuid.UUID, list[str]] = {}
    for message_id, tenant_id, endpoint_id, subject, payload, attempt_count, *_ in chosen:
        endpoint = endpoints[endpoint_id]
        if endpoint_id not in keys:
            keys[endpoint_id] = signing_secrets(endpoint, now)
        result.append(Claimed(message_id, tenant_id, endpoint_id, endpoint.url, payload, keys[endpoint_id],
                              attempt_count + 1, subject, endpoint.failing_since is not None))
    # keep the batch in due order (RETURNING does not promise it)
    rank = {message_id: i for i, message_id in enumerate(chosen_ids)}
    result.sort(key=lambda c: rank[c.message_id])
    return result


def release(session: Session, worker_id: str) -> int:
    """Give back this worker's unfinished claims (graceful shutdown)."""
    result = session.execute(
        update(WebhookMessage)
        .where(WebhookMessage.status == DELIVERING_SQL, WebhookMessage.claimed_by == worker_id)
        .values(status="pending", claimed_by=None, claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


# --- 3. send and record ---------------------------------------------------------------------------


@dataclass
class Outcome:
    claimed: Claimed
    attempted_at: datetime
    succeeded: bool
    status_code: int | None
    latency_ms: int
    body: str | None
    error: str | None


def send(client: PooledClient | httpx.Client, item: Claimed) -> Outcome:
    """POST one message; 2xx is success, anything else (redirects included) a failure."""
    attempted_at, started, headers = _begin(item)
    if isinstance(headers, Outcome):
        return headers
    if isinstance(client, PooledClient):
        try:
            response = client.post(item.url, item.payload.encode(), headers, body_cap=BODY_CAP)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            return _outcome(item, attempted_at, started, error=_error_of(exc))
        return _outcome(item, attempted_at, started, response)
    status, body, error = _send_httpx(client, item, headers)
    return _outcome(item, attempted_at, started, status=status, body=body, error=error)


def _begin(item: Claimed) -> tuple[datetime, float, dict[str, str] | Outcome]:
    """When an attempt starts, and its signed headers or, for a refused target, its outcome."""
    attempted_at = clock.now()
    started = time.perf_counter()
    refusal = target_refusal(item.url)
    if refusal:
        return attempted_at, started, _outcome(item, attempted_at, started, error=f"target refused: {refusal}")
    return attempted_at, started, sign(str(item.message_id), item.payload, item.secrets)


@dataclass(slots=True)
class Sending:
    """A POST under way without a thread of its own (see `start_send`)."""

    item: Claimed
    attempted_at: datetime
    started: float
    exchange: Exchange


def start_send(client: PooledClient | httpx.Client, item: Claimed) -> Sending | Outcome | None:
    """`send` without waiting: the POST written on an idle kept-alive connection, its answer to be
    read as it comes (`PooledClient.feed`, then `finish_send`), so one thread can have many in
    flight. An Outcome when it ended at once (refused, a header that cannot be sent); None when
    it needs `send` on a thread (no idle connection, a proxy, a host to resolve before vetting)."""
    if not isinstance(client, PooledClient) or not vetted_without_lookup(item.url):
        return None
    attempted_at, started, headers = _begin(item)
    if isinstance(headers, Outcome):
        return headers
    try:
        exchange = client.start(item.url, item.payload.encode(), headers, body_cap=BODY_CAP)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return _outcome(item, attempted_at, started, error=_error_of(exc))
    return None if exchange is None else Sending(item, attempted_at, started, exchange)


def finish_send(sending: Sending, response: Response | None = None, *, error: BaseException | None = None,
                resume: Callable[[], Response] | None = None) -> Outcome:
    """The outcome of a `start_send`: its answer, its error, or what `resume` (a `Handoff`'s, run
    on a thread) gives."""
    if resume is not None:
        try:
            response = resume()
        except (OSError, http.client.HTTPException, ValueError) as exc:
            error = exc
    if error is not None:
        return _outcome(sending.item, sending.attempted_at, sending.started, error=_error_of(error))
    return _outcome(sending.item, sending.attempted_at, sending.started, response)


def _error_of(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"timed out after {TIMEOUT_SECONDS:g} s"
    return f"{type(exc).__name__}: {exc}"[:500]


def _outcome(item: Claimed, attempted_at: datetime, started: float, response: Response | None = None, *,
             status: int | None = None, body: str | None = None, error: str | None = None) -> Outcome:
    if response is not None:
        status = response.status
        body = response.body[:BODY_CAP].decode("utf-8", "replace")[:STORED_BODY]
        if 300 <= status < 400:
            error = f"redirect to {response.location or '?'} not followed"
    latency = int((time.perf_counter() - started) * 1000)
    ok = status is not None and 200 <= status < 300
    return Outcome(item, attempted_at, ok, status, latency, body, None if ok else error)


def _send_httpx(client: httpx.Client, item: Claimed,
                headers: dict[str, str]) -> tuple[int | None, str | None, str | None]:
    """The same exchange through httpx (used when a proxy is configured)."""
    status: int | None = None
    body: str | None = None
    error: str | None = None
    try:
        with client.stream("POST", item.url, content=item.payload.encode(), headers=headers) as response:
            status = response.status_code
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                chunks.append(chunk)
                size += len(chunk)
                if size >= BODY_CAP:
                    break
            body = b"".join(chunks)[:BODY_CAP].decode("utf-8", "replace")[:STORED_BODY]
        if 300 <= status < 400:
            error = f"redirect to {response.headers.get('location', '?')} not followed"
    except httpx.TimeoutException:
        error = f"timed out after {TIMEOUT_SECONDS:g} s"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    return status, body, error


_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy")


def new_client(max_connections: int = 64) -> PooledClient | httpx.Client:
    """The sender's HTTP client: pooled keep-alive connections; httpx when egress goes through a proxy."""
    if any(os.environ.get(name) or os.environ.get(name.upper()) for name in _PROXY_VARS):
        return httpx.Client(
            timeout=TIMEOUT_SECONDS, follow_redirects=False,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )
    return PooledClient(timeout=TIMEOUT_SECONDS, max_connections=max_connections)


def record(session: Session, outcomes: Iterable[Outcome]) -> None:
    """Write the attempts and move each message and endpoint to its next state."""
    outcomes = list(outcomes)
    if not outcomes:
        return
    lock_queues(session, {(o.claimed.endpoint_id, o.claimed.subject) for o in outcomes})
    _record(session, outcomes)
    # a message that succeeded or died hands its queue to the next open message
    session.flush()
    promote_next(session, [o.claimed.message_id for o in outcomes])


def _record(session: Session, outcomes: list[Outcome]) -> None:
    now = clock.now()
    conn = _connection(session)
    sql = _sql(conn)
    attempts = [{
        "id": new_id(), "tenant_id": o.claimed.tenant_id, "message_id": o.claimed.message_id,
        "endpoint_id": o.claimed.endpoint_id, "attempted_at": o.attempted_at, "succeeded": o.succeeded,
        "status_code": o.status_code, "latency_ms": o.latency_ms, "response_body": o.body, "error": o.error,
    } for o in outcomes]
    if conn.dialect.name == "postgresql":
        sql.insert_attempts.execute(conn, _columns(attempts, ATTEMPT_COLUMNS))
    else:
        sql.insert_attempts.execute_many(conn, attempts)
    # the common case in bulk: successes need no per-row decisions
    successes = [o for o in outcomes if o.succeeded]
    if successes:
        for status_code, group in _by_status(successes).items():
            sql.mark_succeeded.execute(conn, {"ids": [o.claimed.message_id for o in group], "at": now,
                                              "code": status_code})
        recovering = {o.claimed.endpoint_id for o in successes if o.claimed.endpoint_failing}
        if recovering:
            conn.execute(sql.endpoints_recovered, {"ids": list(recovering)})
    outcomes = [o for o in outcomes if not o.succeeded]
    if not outcomes:
        return
    messages = {m.id: m for m in session.scalars(
        select(WebhookMessage).where(WebhookMessage.id.in_([o.claimed.message_id for o in outcomes]))
        .execution_options(populate_existing=True))}
    endpoints = {e.id: e for e in session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.id.in_({o.claimed.endpoint_id for o in outcomes}))
        .execution_options(populate_existing=True))}
    for o in outcomes:
        message = messages.get(o.claimed.message_id)
        endpoint = endpoints.get(o.claimed.endpoint_id)
        if message is None or endpoint is None:
            continue
        message.attempt_count += 1
        message.last_status_code = o.status_code
        message.claimed_by = None
        message.claimed_until = None
        if o.succeeded:
            message.status = "succeeded"
            message.delivered_at = now
            message.last_error = None
            endpoint.failing_since = None
            continue
        message.last_error = o.error or (f"HTTP {o.status_code}" if o.status_code else "failed")
        if endpoint.deleted_at is not None:  # deleted while this attempt was out: no retry will come
            message.status = "dead"
            message.dead_at = now
            continue
        if o.status_code == 410:
            message.status = "dead"
            message.dead_at = now
            _disable(session, endpoint, "gone: the endpoint answered 410")
            continue
        endpoint.failing_since = endpoint.failing_since or now
        delay = retry_delay(message.attempt_count)
        if delay is None:
            message.status = "dead"
            message.dead_at = now
            record_event_in(session, message.tenant_id, WebhookMessageExhausted(
                endpoint_id=str(endpoint.id), message_id=str(message.id), event_id=str(message.event_id),
                event_type=message.event_type, attempts=message.attempt_count,
                last_status_code=message.last_status_code, last_error=message.last_error),
                subject=f"webhook_endpoint/{endpoint.id}")
        else:
            message.status = "pending"
            message.next_attempt_at = now + delay
        if endpoint.enabled and now - endpoint.failing_since >= DISABLE_AFTER:
            _disable(session, endpoint, "failing continuously for 5 days")
    session.flush()


def _by_status(outcomes: list[Outcome]) -> dict[int | None, list[Outcome]]:
    groups: dict[int | None, list[Outcome]] = defaultdict(list)
    for o in outcomes:
        groups[o.status_code].append(o)
    return groups


def _disable(session: Session, endpoint: WebhookEndpoint, reason: str) -> None:
    if not endpoint.enabled:
        return
    endpoint.enabled = False
    endpoint.disabled_reason = reason
    record_event_in(session, endpoint.tenant_id,
                    WebhookEndpointDisabled(endpoint_id=str(endpoint.id), url=endpoint.url, reason=reason),
                    subject=f"webhook_endpoint/{endpoint.id}")
