"""`record_event`: the one call services use to emit an event.

The row is inserted in the caller's transaction, so an event exists exactly
when its change committed. Delivery (webhooks, NATS, in-process reactions) is
the worker's job, from these rows, after commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, literal_column
from sqlalchemy.orm import Session

from entrepot.db.prepared import Prepared, json_text
from entrepot.db.uow import UnitOfWork
from entrepot.integration.models import OutboxEvent
from entrepot.kernel import clock
from entrepot.kernel.events import EventData, type_of
from entrepot.kernel.ids import new_id

SPECVERSION = "1.0"
_COLUMNS = ("id", "tenant_id", "type", "source", "subject", "time", "data")
# The payload goes in already serialised: pydantic writes an event's JSON faster than it
# builds a dict for json.dumps to walk again.
_INSERT = Prepared(insert(OutboxEvent.__table__).values(data=json_text("data")), columns=_COLUMNS)
# On PostgreSQL the writing transaction's id goes with the row, so the feed can hold
# back events of transactions still in flight.
_INSERT_PG = Prepared(
    insert(OutboxEvent.__table__).values(data=json_text("data"),
                                         txid=literal_column("pg_current_xact_id()::text::bigint")),
    columns=_COLUMNS,
)


def source_for(tenant_id: object) -> str:
    return f"/entrepot/tenants/{tenant_id}"


def record_event(uow: UnitOfWork, data: EventData, *, subject: str) -> str:
    """Append an event for `subject` (e.g. "sales_order/<id>") to the outbox. Returns its id."""
    return record_event_in(uow.session, uow.tenant_id, data, subject=subject)


def record_event_in(session: Session, tenant_id: uuid.UUID, data: EventData, *, subject: str) -> str:
    """`record_event` for code that works in a platform session across tenants (the worker)."""
    return _insert(session, tenant_id, [(data, subject)])[0]


def record_events(uow: UnitOfWork, events: Sequence[tuple[EventData, str]]) -> list[str]:
    """Append several (event, subject) pairs in one statement, in the given order.

    For services that emit one event per document line, and for bulk imports: the
    same rows, in the same order (their `seq` follows the list), as calling
    `record_event` for each."""
    return _insert(uow.session, uow.tenant_id, events)


def _insert(session: Session, tenant_id: uuid.UUID, events: Sequence[tuple[EventData, str]]) -> list[str]:
    if not events:
        return []
    now = clock.now()
    source = source_for(tenant_id)
    rows: list[dict[str, Any]] = [
        {
            "id": new_id(),
            "tenant_id": tenant_id,
            "type": type_of(data),
            "source": source,
            "subject": subject,
            "time": now,
            "data": data.model_dump_json(),
        }
        for data, subject in events
    ]
    # A prepared insert on the transaction's connection: no autoflush and no ORM machinery
    # (this runs several times per business action).
    uow = session.info.get("uow")
    conn = uow.connection() if uow is not None else session.connection()
    (_INSERT_PG if conn.dialect.name == "postgresql" else _INSERT).execute_many(conn, rows)
    return [str(r["id"]) for r in rows]


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
