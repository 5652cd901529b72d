"""Cursor pagination: opaque cursors over a unique, ordered key (ids are UUIDv7)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import date
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute

from entrepot.db.uow import UnitOfWork
from entrepot.kernel.errors import invalid

T = TypeVar("T")
MAX_LIMIT = 200


# A list's date range (`?from=&to=`, both days included), as the ledger's reports take it.
FromDate = Annotated[date | None, Query(alias="from", description="first day (inclusive)")]
ToDate = Annotated[date | None, Query(alias="to", description="last day (inclusive)")]


def within(query: Select[Any], column: Any, start: date | None, end: date | None) -> Select[Any]:
    """`query` kept to rows whose `column` (a day) is from `start` to `end`; a range that ends before
    it begins is a 422 on `from`, not an empty page."""
    if start is not None and end is not None and start > end:
        raise invalid("from", "must not be after 'to'", "range")
    if start is not None:
        query = query.where(column >= start)
    if end is not None:
        query = query.where(column <= end)
    return query


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid("cursor", "not a cursor this API issued", "cursor") from exc


def check_limit(limit: int) -> int:
    if limit < 1 or limit > MAX_LIMIT:
        raise invalid("limit", f"must be between 1 and {MAX_LIMIT}", "range")
    return limit


def paginate(
    uow: UnitOfWork,
    query: Select[Any],
    key: InstrumentedAttribute[Any],
    *,
    cursor: str | None,
    limit: int,
    to_key: Callable[[Any], Any] = str,
    from_key: Callable[[Any], Any] | None = None,
) -> tuple[Sequence[Any], str | None]:
    """Rows after `cursor` ordered by `key`, and the cursor of the next page."""
    check_limit(limit)
    if cursor:
        raw = decode_cursor(cursor)
        try:
            value = from_key(raw) if from_key else _coerce_key(key, raw)
        except (ValueError, TypeError) as exc:
            raise invalid("cursor", "not a cursor this API issued", "cursor") from exc
        query = query.where(key > value)
    rows = uow.session.scalars(query.order_by(key).limit(limit + 1)).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(to_key(getattr(rows[-1], key.key)))
    return rows, next_cursor


_BIGINT = 2**63


def _coerce_key(key: InstrumentedAttribute[Any], raw: Any) -> Any:
    """The key value a cursor of this list holds, or ValueError: only the JSON type `paginate` wrote
    is taken (a list, an object, `true` or `1.5` made into a key moved the walk somewhere, or ended it
    at once with no error), and only a value the database can compare (a lone surrogate or NUL in a
    text key failed in the driver: a 500)."""
    import uuid

    python_type = key.type.python_type
    if python_type is int:
        if type(raw) is not int or not -_BIGINT <= raw < _BIGINT:
            raise ValueError(raw)
        return raw
    if not isinstance(raw, str) or "\x00" in raw:
        raise ValueError(raw)
    raw.encode()  # UnicodeEncodeError (a ValueError) on a lone surrogate
    if python_type is uuid.UUID:
        return uuid.UUID(raw)
    return python_type(raw)
