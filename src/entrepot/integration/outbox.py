"""`record_event`: the one call services use to emit an event.

The row is inserted in the caller's transaction, so an event exists exactly
when its change committed. Delivery (webhooks, NATS, in-process reactions) is
the worker's job, from these rows, after commit.

A unit of work's rows are made when recorded (id, time, payload as they are at that
moment) and kept on it (`uow.pending_events`) until commit, where they go in as one
multi-row INSERT, in recording order (so their `seq` follows it), before the audit
chain. A savepoint that rolls back drops the rows recorded inside it (see db/uow.py);
a read of the outbox through the session writes them first, so the transaction sees
its own events.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import uuid_utils
from sqlalchemy import TextClause, bindparam, event, insert, literal_column
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import ORMExecuteState, Session
from sqlalchemy.sql.util import find_tables
from sqlalchemy.types import TypeDecorator, TypeEngine

from entrepot.db.prepared import Prepared, PreparedRows, bind_processor, json_text
from entrepot.db.uow import UnitOfWork, set_events_writer
from entrepot.integration.models import OutboxEvent
from entrepot.kernel import clock
from entrepot.kernel.events import EventData, type_of

SPECVERSION = "1.0"
_COLUMNS = ("id", "tenant_id", "type", "source", "subject", "time", "data")
_TABLE = OutboxEvent.__table__


class _Converted(TypeDecorator[Any]):
    """A column's type (same SQL, same PostgreSQL cast) for a value bound already converted
    for the driver: a batch's tenant and time are converted once, not once per row."""

    impl = TypeEngine
    cache_ok = True

    def __init__(self, column_type: TypeEngine[Any]) -> None:
        super().__init__()
        self.impl = column_type

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return self.impl._unwrapped_dialect_impl(dialect)

    def bind_processor(self, dialect: Dialect) -> None:
        return None


def _converted(name: str, column: str | None = None) -> Any:
    return bindparam(name, type_=_Converted(_TABLE.c[column or name].type))


# The payload goes in already serialised: pydantic writes an event's JSON faster than it
# builds a dict for json.dumps to walk again.
_VALUES = {"id": _converted("id"), "tenant_id": _converted("tenant_id"), "time": _converted("time"),
           "data": json_text("data")}
_INSERT = Prepared(insert(_TABLE).values(**_VALUES).inline(), columns=_COLUMNS)
# On PostgreSQL the writing transaction's id goes with the row, so the feed can hold
# back events of transactions still in flight. (`inline`: no RETURNING of seq, nobody reads it.)
_INSERT_PG = Prepared(
    insert(_TABLE).values(**_VALUES, txid=literal_column("pg_current_xact_id()::text::bigint")).inline(),
    columns=_COLUMNS,
)


# On PostgreSQL a transaction's pending rows go in as one INSERT … VALUES (…), (…), …; on
# SQLite as one executemany of the one-row statement, cheaper there (see PreparedRows).
_CONVERTED = ("id", "tenant_id", "time")


def _bind_row(column: str, name: str) -> Any:
    if column in _CONVERTED:
        return _converted(name, column)
    if column == "data":
        return json_text(name)
    return bindparam(name, type_=_TABLE.c[column].type)


_ROWS_PG = PreparedRows(_TABLE, _COLUMNS, bind=_bind_row, single=_INSERT_PG,
                        fixed={"txid": literal_column("pg_current_xact_id()::text::bigint")})


class _Dialect:
    """What one database takes for the outbox's converted columns."""

    __slots__ = ("id", "insert", "instant", "rows", "tenant", "tenants")

    def __init__(self, dialect: Dialect) -> None:
        def convert(column: str) -> Callable[[Any], Any]:
            process = bind_processor(_TABLE.c[column].type, dialect)
            return process if process is not None else _as_is

        self.insert = _INSERT_PG if dialect.name == "postgresql" else _INSERT
        self.rows = _ROWS_PG if dialect.name == "postgresql" else None
        self.instant = convert("time")
        self.tenant = convert("tenant_id")
        # An id is made as a uuid_utils UUID (what kernel.ids.new_id wraps): its text costs a
        # tenth of a uuid.UUID's. SQLite stores its hex digits, as the Uuid conversion writes
        # them (it reads only `.int`); PostgreSQL takes the text, cast to uuid by the statement.
        self.id = convert("id") if dialect.name != "postgresql" else str
        # Per tenant, its events' source and its id as bound (a process serves few tenants;
        # the bound keeps a platform-wide job over many from growing it without end).
        self.tenants: dict[uuid.UUID, tuple[str, Any]] = {}

    def tenant_columns(self, tenant_id: uuid.UUID) -> tuple[str, Any]:
        if len(self.tenants) >= _TENANTS_KEPT:
            self.tenants.clear()
        found = self.tenants[tenant_id] = (source_for(tenant_id), self.tenant(tenant_id))
        return found


def _as_is(value: Any) -> Any:
    return value


_DIALECTS: dict[str, _Dialect] = {}
_TENANTS_KEPT = 1024
# Per payload class, its type name and its pydantic serialiser (what model_dump_json calls,
# without its keyword handling).
_TYPES: dict[type[EventData], tuple[str, Callable[..., bytes]]] = {}


def source_for(tenant_id: object) -> str:
    return f"/entrepot/tenants/{tenant_id}"


def record_event(uow: UnitOfWork, data: EventData, *, subject: str) -> str:
    """Append an event for `subject` (e.g. "sales_order/<id>") to the outbox. Returns its id."""
    return _record(uow, ((data, subject),))[0]


def record_event_in(session: Session, tenant_id: uuid.UUID, data: EventData, *, subject: str) -> str:
    """`record_event` for code that works in a platform session across tenants (the worker).
    The row is inserted at once."""
    return _insert(session, tenant_id, ((data, subject),))[0]


def record_events(uow: UnitOfWork, events: Sequence[tuple[EventData, str]]) -> list[str]:
    """Append several (event, subject) pairs, in the given order.

    For services that emit one event per document line, and for bulk imports: the
    same rows, in the same order (their `seq` follows the list), as calling
    `record_event` for each."""
    return _record(uow, events)


def _record(uow: UnitOfWork, events: Sequence[tuple[EventData, str]]) -> list[str]:
    if not events:
        return []
    session = uow.session
    bind = session.bind
    dialect = bind.dialect if bind is not None else session.get_bind().dialect
    ids, rows = _rows(dialect, uow.tenant_id, events)
    if not session.in_transaction():
        # Begun (no SQL yet) so that a rollback before anything else ran still drops these rows.
        session.begin()
    uow.pending_events += rows
    return ids


def _dialect(dialect: Dialect) -> _Dialect:
    found = _DIALECTS[dialect.name] = _Dialect(dialect)
    return found


def _type(data: EventData) -> tuple[str, Callable[..., bytes]]:
    cls = data.__class__
    found = _TYPES[cls] = (type_of(data), cls.__pydantic_serializer__.to_json)
    return found


def _rows(dialect: Dialect, tenant_id: uuid.UUID,
          events: Sequence[tuple[EventData, str]]) -> tuple[list[str], list[dict[str, Any]]]:
    """The outbox rows of `events`, converted for the database, and their ids."""
    db = _DIALECTS.get(dialect.name) or _dialect(dialect)
    source, tenant = db.tenants.get(tenant_id) or db.tenant_columns(tenant_id)
    now = db.instant(clock.now())  # one time for the batch, converted once
    make_id, uuid7, types = db.id, uuid_utils.uuid7, _TYPES
    ids: list[str] = []
    rows = []
    for data, subject in events:
        kind = types.get(data.__class__) or _type(data)
        new = uuid7()
        ids.append(str(new))
        rows.append({"id": make_id(new), "tenant_id": tenant, "type": kind[0], "source": source,
                     "subject": subject, "time": now, "data": kind[1](data).decode()})
    return ids, rows


def _insert(session: Session, tenant_id: uuid.UUID, events: Sequence[tuple[EventData, str]]) -> list[str]:
    if not events:
        return []
    # A prepared insert on the transaction's connection: no autoflush and no ORM machinery.
    uow = session.info.get("uow")
    if uow is not None:
        uow.write_events()  # any recorded before it go first, keeping the recording order
    conn = uow.connection() if uow is not None else session.connection()
    ids, rows = _rows(conn.dialect, tenant_id, events)
    _write(conn, rows)
    return ids


def _write(on: UnitOfWork | Any, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` in their order, in one statement."""
    conn = on.connection() if isinstance(on, UnitOfWork) else on
    dialect = conn.dialect
    db = _DIALECTS.get(dialect.name) or _dialect(dialect)
    if db.rows is None:  # SQLite: one executemany
        db.insert.execute_many(conn, rows)
    else:  # PostgreSQL: one multi-row INSERT (PreparedRows picks the form by row count)
        db.rows.execute(conn, rows)


set_events_writer(_write)


# A read of the outbox in the transaction that recorded events must see them: it writes them
# first. Only an ORM execution with events pending pays for looking at the statement.
@event.listens_for(Session, "do_orm_execute")
def _write_events_before_outbox_reads(state: ORMExecuteState) -> None:
    uow = state.session.info.get("uow")
    if (uow is None or len(uow.pending_events) == uow.events_written or state.is_column_load
            or state.is_relationship_load):
        return
    statement = state.statement
    name = _TABLE.name
    if isinstance(statement, TextClause):
        reads = name in statement.text
    else:  # ORM statements hold annotated copies of the table: compared by name
        reads = any(getattr(t, "name", None) == name
                    for t in find_tables(statement, include_aliases=True, include_joins=True, include_crud=True))
    if reads:
        uow.write_events()


@event.listens_for(Session, "before_commit")
def _write_events_on_a_bare_commit(session: Session) -> None:
    """A `session.commit()` that did not go through `uow.commit()` still writes the events."""
    uow = session.info.get("uow")
    if (uow is not None and len(uow.pending_events) > uow.events_written
            and session.get_nested_transaction() is None):
        uow.write_events()


def envelope(row: OutboxEvent) -> dict[str, Any]:
    """The CloudEvents 1.0 JSON form of an outbox row."""
    return {
        "specversion": SPECVERSION,
        "id": str(row.id),
        "source": row.source,
        "type": row.type,
        "subject": row.subject,
        "time": row.time.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "dataschema": f"/api/v1/event-types/{row.type}",
        "tenantid": str(row.tenant_id),
        "sequence": str(row.seq),
        "data": row.data,
    }
