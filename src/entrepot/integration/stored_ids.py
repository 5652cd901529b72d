"""UUID columns read for the worker's hot statements without `uuid.UUID()`'s parsing.

SQLite keeps a UUID as its 32 hex digits, and SQLAlchemy turns each back with
`uuid.UUID(hex)`, whose checks cost several microseconds: the fan-out and the
claims read several ids per delivery, so this came to a fifth of the worker's
CPU. `StoredId` makes the same `uuid.UUID` from the integer
(`kernel.ids.id_from_hex`); PostgreSQL's driver gives UUIDs already.
`SharedStoredId`, for columns with few distinct values (tenants, endpoints),
gives one object per value: no conversion after the first, and the sets and
dicts keyed by it find their key by identity.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import String, TypeDecorator, type_coerce
from sqlalchemy.sql.elements import ColumnElement

from entrepot.kernel.ids import id_from_hex as _from_stored

_SHARED_LIMIT = 10_000  # distinct values kept at most (then it starts afresh)
_shared: dict[Any, uuid.UUID] = {}


class StoredId(TypeDecorator[uuid.UUID]):
    impl = String
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Any) -> uuid.UUID | None:
        return _from_stored(value)


class SharedStoredId(StoredId):
    def process_result_value(self, value: Any, dialect: Any) -> uuid.UUID | None:
        found = _shared.get(value)
        if found is None:
            if len(_shared) >= _SHARED_LIMIT:
                _shared.clear()
            found = _from_stored(value)
            if found is None:
                return None
            _shared[value] = found
        return found


def read_id(column: Any) -> ColumnElement[uuid.UUID]:
    """`column` (a Uuid column) in a SELECT or RETURNING list, read through `StoredId`, same label."""
    return type_coerce(column, StoredId()).label(column.key)


def read_shared_id(column: Any) -> ColumnElement[uuid.UUID]:
    """`read_id` for a column of few distinct values (a tenant, an endpoint): `SharedStoredId`."""
    return type_coerce(column, SharedStoredId()).label(column.key)
