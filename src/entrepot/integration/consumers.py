"""Per-consumer progress through the outbox (reactions, webhook fan-out, nats).

A consumer locks its cursor row for the length of a batch, so on PostgreSQL
two workers never process the same consumer's batch at once; the cursor moves
in the same transaction that records what the batch did.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

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
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(ConsumerCursor).values(name=name, last_txid=0, last_seq=0, emitted=0, updated_at=clock.now())
        .on_conflict_do_nothing(index_elements=["name"])
    )
    cursor = session.scalar(query)
    _seen.add(key)
    return cursor


def position_of(cursor: ConsumerCursor) -> Position:
    return Position(cursor.last_txid or 0, cursor.last_seq or 0)


def advance(cursor: ConsumerCursor, to: Position) -> None:
    cursor.last_txid = to.txid
    cursor.last_seq = to.seq
    cursor.updated_at = clock.now()


def read_position(session: Session, name: str) -> Position | None:
    row = session.get(ConsumerCursor, name)
    return position_of(row) if row else None
