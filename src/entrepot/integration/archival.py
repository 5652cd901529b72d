"""Soft-archiving a master record (product, category, customer, supplier, price list…).

Every domain archives the same way: the record keeps its row (old documents still
point at it) and gets `archived_at`; the change is audited and announced with the
domain's `*.archived.v1` event, all in the caller's unit of work. It lives in the
integration layer because it records the event, and every domain sits above it.
"""

from __future__ import annotations

from typing import Any, TypeVar

from entrepot.db.audit_trail import audit, snapshot
from entrepot.db.uow import UnitOfWork
from entrepot.integration.outbox import record_event
from entrepot.kernel import clock
from entrepot.kernel.errors import Conflict
from entrepot.kernel.events import EventData

R = TypeVar("R")


def archive_record(uow: UnitOfWork, record: R, entity: str, event: EventData) -> R:
    """Archive `record` (a no-op if it already is): audit `<entity>.archive`, record
    `event` for subject `<entity>/<id>`."""
    current: Any = record
    if current.archived_at is not None:
        return record
    before = snapshot(current)
    current.archived_at = clock.now()
    uow.session.flush()
    audit(uow, f"{entity}.archive", entity, current.id, before=before, after=snapshot(current))
    record_event(uow, event, subject=f"{entity}/{current.id}")
    return record


def refuse_archived(record: Any, entity: str) -> None:
    """An archived record cannot be changed (409)."""
    if record.archived_at is not None:
        raise Conflict(f"the {entity} is archived and cannot be changed")
