"""Recording audit entries during a unit of work.

Any layer from the database up records what it changed with `audit(...)`; the
entries wait on the unit of work and identity's chain writer appends them to
the tenant's hash chain at commit (`identity/services/audit.py`). Recording
lives here, below every domain, so that the integration layer audits the same
way as the business domains above it.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlalchemy import inspect

from entrepot.db.uow import UnitOfWork

# Types JSON takes as they are, and the usual types to convert (exactly these types: an Enum
# that is also a str, a subclass of datetime, go through the tests below).
_AS_IS = frozenset({str, int, float, bool, type(None)})
_CONVERT: dict[type, Any] = {Decimal: str, uuid.UUID: str, datetime: datetime.isoformat, date: date.isoformat}


def jsonable(value: Any) -> Any:
    # Most values of an audit entry are plain strings and numbers in plain dicts and lists:
    # one type lookup settles them, before the isinstance tests for everything else.
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind is dict:
        return {k: jsonable(v) for k, v in value.items()}
    if kind is list:
        return [jsonable(v) for v in value]
    convert = _CONVERT.get(kind)
    if convert is not None:
        return convert(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return None
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def snapshot(obj: Any) -> dict[str, Any]:
    """Column values of an ORM object as JSON-ready data (secrets excluded)."""
    mapper = inspect(type(obj))
    return {
        c.key: jsonable(getattr(obj, c.key))
        for c in mapper.column_attrs
        if not c.key.endswith(("_hash", "secret"))
    }


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> tuple[dict, dict]:
    """Keep only what changed, so an update's audit row says what moved."""
    if before is None or after is None:
        return before or {}, after or {}
    keys = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    keys.discard("updated_at")
    keys.discard("version")
    return {k: before.get(k) for k in keys}, {k: after.get(k) for k in keys}


def audit(
    uow: UnitOfWork,
    action: str,
    entity_type: str,
    entity_id: object | None,
    *,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
) -> None:
    b, a = diff(before, after)
    uow.pending_audit.append(
        {
            "action": action,
            "entity_type": entity_type,
            "entity_id": str(entity_id) if entity_id is not None else None,
            "before": jsonable(b) or None,
            "after": jsonable(a) or None,
        }
    )
