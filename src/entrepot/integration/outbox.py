"""`record_event`: the one call services use to emit an event.

The row is inserted in the caller's transaction, so an event exists exactly
when its change committed. Delivery (webhooks, NATS, in-process reactions) is
the worker's job, from these rows, after commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Any

import uuid_utils
from sqlalchemy import bindparam, insert, literal_column
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator, TypeEngine

from entrepot.db.prepared import Prepared, bind_processor, json_text
from entrepot.db.uow import UnitOfWork
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


def _converted(name: str) -> Any:
    return bindparam(name, type_=_Converted(_TABLE.c[name].type))


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


class _Dialect:
    """What one database takes for the outbox's converted columns."""

    __slots__ = ("id", "insert", "instant", "tenant", "tenants")

    def __init__(self, dialect: Dialect) -> None:
        def convert(column: str) -> Callable[[Any], Any]:
            process = bind_processor(_TABLE.c[column].type, dialect)
            return process if process is not None else _as_is

        self.insert = _INSERT_PG if dialect.name == "postgresql" else _INSERT
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
    return _insert(uow.session, uow.tenant_id, ((data, subject),))[0]


def record_event_in(session: Session, tenant_id: uuid.UUID, data: EventData, *, subject: str) -> str:
    """`record_event` for code that works in a platform session across tenants (the worker)."""
    return _insert(session, tenant_id, ((data, subject),))[0]


def record_events(uow: UnitOfWork, events: Sequence[tuple[EventData, str]]) -> list[str]:
    """Append several (event, subject) pairs in one statement, in the given order.

    For services that emit one event per document line, and for bulk imports: the
    same rows, in the same order (their `seq` follows the list), as calling
    `record_event` for each."""
    return _insert(uow.session, uow.tenant_id, events)


def _dialect(dialect: Dialect) -> _Dialect:
    found = _DIALECTS[dialect.name] = _Dialect(dialect)
    return found


def _type(data: EventData) -> tuple[str, Callable[..., bytes]]:
    cls = data.__class__
    found = _TYPES[cls] = (type_of(data), cls.__pydantic_serializer__.to_json)
    return found


def _insert(session: Session, tenant_id: uuid.UUID, events: Sequence[tuple[EventData, str]]) -> list[str]:
    if not events:
        return []
    # A prepared insert on the transaction's connection: no autoflush and no ORM machinery
    # (this runs several times per business action).
    uow = session.info.get("uow")
    conn = uow.connection() if uow is not None else session.connection()
    dialect = conn.dialect
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
    db.insert.execute_many(conn, rows)
    return ids


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
