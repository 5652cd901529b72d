"""Substring search for the `q` filter of lists."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func


def contains_text(column: Any, q: str) -> ColumnElement[bool]:
    """`column` holds `q` as typed, case aside: `%` and `_` (a SKU may hold `_`) match
    themselves, not any run of characters or any one character, as a LIKE pattern would."""
    escaped = q.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(f"%{escaped}%", escape="\\")
