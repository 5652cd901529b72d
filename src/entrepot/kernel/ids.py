"""Time-ordered UUIDv7 identifiers: index-friendly and unguessable enough for URLs."""

from __future__ import annotations

import uuid

from uuid_utils import compat


def new_id() -> uuid.UUID:
    # compat builds a standard uuid.UUID directly (no round trip through bytes)
    return compat.uuid7()
