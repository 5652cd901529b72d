"""Time-ordered UUIDv7 identifiers: index-friendly and unguessable enough for URLs."""

from __future__ import annotations

import uuid
from typing import Any

import uuid_utils

# Read once: an Enum member costs a slow class-attribute lookup each time it is named.
_SAFE = uuid.SafeUUID.unknown
_new = object.__new__
_set = object.__setattr__


def _uuid_of(number: int) -> uuid.UUID:
    # What `uuid.UUID(int=number)` makes, without its range checks (the number is a UUID's).
    made = _new(uuid.UUID)
    _set(made, "int", number)
    _set(made, "is_safe", _SAFE)
    return made


def new_id() -> uuid.UUID:
    # A standard uuid.UUID from uuid_utils' generator (its `compat.uuid7` does the same, at
    # twice the cost: it names SafeUUID.unknown on every call). Every row written gets one.
    return _uuid_of(uuid_utils.uuid7().int)


def id_from_hex(value: Any) -> uuid.UUID | None:
    """The `uuid.UUID` of an id stored as its 32 hex digits (SQLite), made from the integer
    without `uuid.UUID()`'s parsing, which costs three times as much: every row read back
    carries ids. Equal to `uuid.UUID(value)` for what the database holds; None stays None, a
    UUID is returned as it is."""
    if value is None or isinstance(value, uuid.UUID):
        return value
    if len(value) != 32:
        return uuid.UUID(value)  # not the stored form: uuid.UUID() parses it or refuses it
    return _uuid_of(int(value, 16))
