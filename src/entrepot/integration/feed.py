"""Reading the outbox in order without ever skipping an event.

On PostgreSQL two transactions can take outbox sequence numbers in one order
and commit in the other, so a reader that trusted `seq` alone could move its
cursor past an event that becomes visible later. Readers therefore:

* only see rows whose writing transaction is older than the oldest one still
  running (`txid < pg_snapshot_xmin(pg_current_snapshot())`, minus transactions
  known to belong to other databases of the cluster): those are final;
* order by (txid, seq): every transaction that commits later has a txid at
  least that horizon, so it sorts after any position already handed out.

On SQLite there is one writer at a time and sequence order is commit order.
The same position (txid, seq) is the `/events` cursor and each worker
consumer's saved progress.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from sqlalchemy import (
    Integer,
    Row,
    Select,
    Text,
    bindparam,
    cast,
    func,
    literal_column,
    select,
    text,
    tuple_,
    type_coerce,
)
from sqlalchemy.orm import Session

from entrepot.db.engine import TenancyViolation
from entrepot.db.prepared import Prepared
from entrepot.integration.models import OutboxEvent
from entrepot.integration.stored_ids import read_id, read_shared_id
from entrepot.kernel.errors import invalid

# The oldest transaction still in flight when this statement's snapshot was taken, ignoring
# those positively identified as another database's (they write no rows here): every
# transaction that can still commit an outbox row of this database has a txid at least this.
# Without the exclusion this is pg_snapshot_xmin, which any writer anywhere in the cluster
# holds back. Identification is by the xid's low 32 bits (pg_stat_activity shows 32-bit xids).
_HORIZON = literal_column("""coalesce(
    (SELECT min(x::text::bigint) FROM pg_snapshot_xip(pg_current_snapshot()) AS x
     WHERE NOT EXISTS (
        SELECT 1 FROM pg_stat_activity AS a
        WHERE a.datname IS DISTINCT FROM current_database() AND a.backend_xid IS NOT NULL
          AND a.backend_xid::text::bigint = (x::text::bigint & 4294967295))),
    pg_snapshot_xmax(pg_current_snapshot())::text::bigint)""")


@dataclass(frozen=True, order=True)
class Position:
    txid: int = 0
    seq: int = 0

    @classmethod
    def of(cls, row: OutboxEvent | Row | FeedRow) -> Position:  # type: ignore[type-arg]
        return cls(row.txid or 0, row.seq)

    def encode(self) -> str:
        return f"{self.txid}.{self.seq}" if self.txid else str(self.seq)


START = Position()


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def settled(session: Session, query: Select, after: Position) -> Select:  # type: ignore[type-arg]
    """Restrict `query` on OutboxEvent to final rows after `after`, in read order."""
    if _is_postgres(session):
        # record_event sets txid on every PostgreSQL row; the row comparison uses the (txid, seq) indexes
        return (query.where(tuple_(OutboxEvent.txid, OutboxEvent.seq) > tuple_(after.txid, after.seq))
                .where(OutboxEvent.txid < _HORIZON)
                .order_by(OutboxEvent.txid, OutboxEvent.seq))
    return query.where(OutboxEvent.seq > after.seq).order_by(OutboxEvent.seq)


def events_after(
    session: Session,
    after: Position,
    *,
    limit: int,
    types: Sequence[str] | None = None,
    subject: str | None = None,
) -> list[OutboxEvent]:
    query = select(OutboxEvent)
    if types:
        query = query.where(OutboxEvent.type.in_(list(types)))
    if subject:
        query = query.where(OutboxEvent.subject == subject)
    return list(session.scalars(settled(session, query, after).limit(limit)).all())


class FeedRow(NamedTuple):
    """An outbox event as the worker's fan-out reads it: its `data` as JSON text, not parsed."""

    seq: int
    id: uuid.UUID
    tenant_id: uuid.UUID
    type: str
    source: str
    subject: str
    time: datetime
    txid: int | None
    data_json: str


@functools.cache
def _rows_after(dialect: str) -> Prepared:
    c = OutboxEvent.__table__.c
    limit = bindparam("limit", type_=Integer)
    # the payload goes out as the text the database holds: parsing it to dump it again would
    # cost more than the rest of the envelope (SQLite's json() gives it compact; PostgreSQL's
    # jsonb text puts a space after each colon and comma)
    data = func.json(c.data) if dialect == "sqlite" else cast(c.data, Text)
    query = select(c.seq, read_id(c.id), read_shared_id(c.tenant_id), c.type, c.source, c.subject, c.time, c.txid,
                   type_coerce(data, Text))
    if dialect == "postgresql":
        query = (query.where(tuple_(c.txid, c.seq) > tuple_(bindparam("txid"), bindparam("seq")))
                 .where(c.txid < _HORIZON).order_by(c.txid, c.seq))
    else:
        query = query.where(c.seq > bindparam("seq")).order_by(c.seq)
    return Prepared(query.limit(limit))


# PostgreSQL, for the rest of the reading transaction: the generic plan of `_rows_after`, which reads
# the (txid, seq) index in order and stops after `limit` rows. Planned for each call's values, the
# row comparison past the statistics' last txid looks like a few rows, and PostgreSQL took them all
# (a bitmap scan of every event after the cursor, sorted for the first `limit`): with a backlog of
# 20,000 events, 65 ms for a read of 200 instead of 0.8 ms.
_GENERIC_PLANS = Prepared(text("SELECT set_config('plan_cache_mode', 'force_generic_plan', true)"))


def event_rows_after(session: Session, after: Position, *, limit: int) -> list[FeedRow]:
    """`events_after` for the worker's fan-out, which reads every event and needs no ORM objects:
    the same events in the same order, from one prepared statement. Every tenant's events:
    only a platform session may ask (the statement has no tenant filter)."""
    if not session.info.get("platform"):
        raise TenancyViolation("event_rows_after reads every tenant's events: platform sessions only")
    conn = session.connection()
    if conn.dialect.name == "postgresql":
        _GENERIC_PLANS.execute(conn, {})
    rows = _rows_after(conn.dialect.name).execute(conn, {"txid": after.txid, "seq": after.seq, "limit": limit})
    return [FeedRow._make(row) for row in rows]


@functools.cache
def _newest(dialect: str) -> Prepared:
    c = OutboxEvent.__table__.c
    # the last entry of the (txid, seq) index, or of the primary key on SQLite: one probe,
    # whatever the planner thinks of the table's size (no parameters to estimate)
    if dialect == "postgresql":
        query = select(c.txid, c.seq).where(c.txid.is_not(None)).order_by(c.txid.desc(), c.seq.desc())
    else:
        query = select(literal_column("0"), c.seq).order_by(c.seq.desc())
    return Prepared(query.limit(1))


def anything_after(session: Session, after: Position) -> bool:
    """Whether any committed event lies after `after`, settled or not: one index probe.

    The worker's consumers look for new events every few milliseconds; most looks find
    none, and `event_rows_after`'s settled-horizon check (and, for the fan-out, its
    write lock on the cursor) costs the database far more than this. No row after
    `after` means no settled row after it either, so a consumer that remembers a
    position at or behind its cursor may skip the full read when this says False.
    Platform sessions only (every tenant's events, like `event_rows_after`).
    """
    if not session.info.get("platform"):
        raise TenancyViolation("anything_after reads every tenant's events: platform sessions only")
    conn = session.connection()
    rows = _newest(conn.dialect.name).execute(conn, {})
    return bool(rows) and Position(rows[0][0] or 0, rows[0][1]) > after


def latest(session: Session) -> Position | None:
    """The newest settled position of the whole outbox (platform sessions)."""
    query = select(OutboxEvent.txid, OutboxEvent.seq)
    if _is_postgres(session):
        query = (query.where(OutboxEvent.txid < _HORIZON)
                 .order_by(OutboxEvent.txid.desc(), OutboxEvent.seq.desc()))
    else:
        query = query.order_by(OutboxEvent.seq.desc())
    row = session.execute(query.limit(1)).first()
    return Position(row.txid or 0, row.seq) if row else None


_MAX_BIGINT = 2**63 - 1


def parse_cursor(session: Session, cursor: str | None) -> Position:
    """A cursor this API issued ("txid.seq" or "seq"), an event's `sequence`, an event id, or
    "0" for the beginning.

    Anything else is a 422 naming `after`, never a silent restart from the beginning: a
    reader that lost its place must hear about it. Each form must name one of this tenant's
    events (the session's tenant filter applies), as every cursor this API issues does.
    """
    text = (cursor or "").strip()
    if text in ("", "0"):
        return START  # no cursor, or the beginning named explicitly
    txid: int | None = None
    try:
        if "." in text:
            txid_text, seq_text = text.split(".", 1)
            txid, seq = _number(txid_text), _number(seq_text)
        elif text.isascii() and text.isdigit():
            seq = _number(text)
        else:
            event_id = uuid.UUID(text)
            row = session.scalar(select(OutboxEvent).where(OutboxEvent.id == event_id))
            if row is None:
                raise invalid("after", "no event with this id", "cursor")
            return Position.of(row)
    except ValueError as exc:
        raise invalid("after", "not a cursor this API issued", "cursor") from exc
    found = session.execute(select(OutboxEvent.txid).where(OutboxEvent.seq == seq)).first()
    if found is None:
        raise invalid("after", "no event at this position", "cursor")
    if txid is not None and txid != (found.txid or 0):
        raise invalid("after", "not a cursor this API issued", "cursor")
    return Position(found.txid or 0, seq)


def _number(text: str) -> int:
    """A cursor part: plain ASCII digits within the database's bigint range."""
    if not (text.isascii() and text.isdigit()) or int(text) > _MAX_BIGINT:
        raise ValueError(text)
    return int(text)
