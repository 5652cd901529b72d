"""INSERT … ON CONFLICT (key) DO NOTHING in the database's own dialect.

Rows created on first use (sequences, audit chain heads, periods, lots, cursors,
leases) can be met by two transactions at once: both insert-if-missing and then
read, so they end up with the one row instead of one failing on a duplicate key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Result
from sqlalchemy.orm import Session


def insert_if_missing(bind: Connection | Session, target: Any, values: dict[str, Any], key: Sequence[str],
                      returning: Sequence[Any] = ()) -> Result[Any]:
    """Insert `values` into `target` (a table or mapped class) unless a row with the same `key`
    columns exists; with `returning`, the inserted row's columns (no row when it existed)."""
    engine_bind = bind.get_bind() if isinstance(bind, Session) else bind
    dialect_insert = postgresql.insert if engine_bind.dialect.name == "postgresql" else sqlite.insert
    statement = dialect_insert(target).values(**values).on_conflict_do_nothing(index_elements=list(key))
    if returning:
        statement = statement.returning(*returning)
    return bind.execute(statement)
