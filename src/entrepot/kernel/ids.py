"""Time-ordered UUIDv7 identifiers: index-friendly and unguessable enough for URLs."""

from __future__ import annotations

import uuid

import uuid_utils


def new_id() -> uuid.UUID:
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)
