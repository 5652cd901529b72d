"""Per-consumer progress through the outbox (reactions, webhook fan-out, nats).

A consumer locks its cursor row for the length of a batch, so on PostgreSQL
two workers never process the same consumer's batch at once; the cursor moves
in the same transaction that records what the batch did.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from entrepot.db.insert_if_missing import insert_if_missing
from entrepot.db.prepared import Prepared
from entrepot.integration.feed import Position
from entrepot.integration.models import ConsumerCursor
from entrepot.kernel import clock

# cursors this process has seen in a database: no need to create them again on every lock
_seen: set[tuple[str, str]] = set()


def lock_cursor(session: Session, name: str, *, nowait: bool = False) -> ConsumerCursor | None:
    """The consumer's cursor row, locked; None when another worker holds it (PostgreSQL)."""
    bind = session.get_bind()
    dialect = bind.dialect.name
    key = (str(bind.url), name)
    query = select(ConsumerCursor).where(ConsumerCursor.name == name).execution_options(populate_existing=True)
    if dialect == "postgresql":
        query = query.with_for_update(skip_locked=nowait)
    if key in _seen:
        cursor = session.scalar(query)
        if cursor is not None or nowait:
            # None with nowait: held by another worker, or gone (a recreated database); the
            # next call creates it again
            if cursor is None:
                _seen.discard(key)
            return cursor
    _create(session, name)
    cursor = session.scalar(query)
    _seen.add(key)
    return cursor


def _create(session: Session, name: str) -> None:
    insert_if_missing(session, ConsumerCursor, {"name": name, "last_txid": 0, "last_seq": 0, "emitted": 0,
                                                "updated_at": clock.now()}, key=["name"])


# --- the same on Core rows, for the webhook fan-out that locks its cursor on every pass ---------------

_CURSORS = ConsumerCursor.__table__
_READ = select(_CURSORS.c.last_txid, _CURSORS.c.last_seq, _CURSORS.c.emitted).where(
    _CURSORS.c.name == bindparam("cursor_name"))
# prepared: run on every fan-out pass, where SQLAlchemy's execution would cost more than the statement
_READ_PLAIN = Prepared(_READ)
_READ_LOCKED = {False: Prepared(_READ.with_for_update()), True: Prepared(_READ.with_for_update(skip_locked=True))}
_SAVE = Prepared(update(_CURSORS).where(_CURSORS.c.name == bindparam("cursor_name")).values(
    last_txid=bindparam("txid"), last_seq=bindparam("seq"), emitted=bindparam("emitted"),
    updated_at=bindparam("at", type_=_CURSORS.c.updated_at.type)))


@dataclass
class HeldCursor:
    """A consumer's cursor, locked until the transaction ends (`lock_cursor` without the ORM)."""

    name: str
    position: Position
    emitted: int


def hold_cursor(session: Session, name: str, *, nowait: bool = False) -> HeldCursor | None:
    """Lock the consumer's cursor row: one statement; None when another worker holds it (PostgreSQL)."""
    conn = session.connection()
    query = _READ_LOCKED[nowait] if conn.dialect.name == "postgresql" else _READ_PLAIN
    key = (str(conn.engine.url), name)
    rows = query.execute(conn, {"cursor_name": name}) if key in _seen else []
    if not rows:
        if key in _seen and nowait:
            _seen.discard(key)  # held by another worker, or gone: the next call creates it again
            return None
        _create(session, name)
        _seen.add(key)
        rows = query.execute(conn, {"cursor_name": name})
        if not rows:
            return None
    last_txid, last_seq, emitted = rows[0]
    return HeldCursor(name, Position(last_txid or 0, last_seq or 0), emitted or 0)


def saved_position(session: Session, name: str) -> Position | None:
    """`read_position` in one prepared statement (no ORM object): for the worker's publisher."""
    rows = _READ_PLAIN.execute(session.connection(), {"cursor_name": name})
    return Position(rows[0][0] or 0, rows[0][1] or 0) if rows else None


def save_cursor(session: Session, cursor: HeldCursor) -> None:
    """Write a held cursor's position and count back (in the transaction that holds it)."""
    _SAVE.execute(session.connection(), {"cursor_name": cursor.name, "txid": cursor.position.txid,
                                         "seq": cursor.position.seq, "emitted": cursor.emitted,
                                         "at": clock.now()})


def position_of(cursor: ConsumerCursor) -> Position:
    return Position(cursor.last_txid or 0, cursor.last_seq or 0)


def advance(cursor: ConsumerCursor, to: Position) -> None:
    cursor.last_txid = to.txid
    cursor.last_seq = to.seq
    cursor.updated_at = clock.now()


def read_position(session: Session, name: str) -> Position | None:
    row = session.get(ConsumerCursor, name)
    return position_of(row) if row else None
