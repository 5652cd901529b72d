"""The one source of "now". Tests and the retry scheduler can move it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

_lock = threading.Lock()
_offset = timedelta(0)
_frozen: datetime | None = None


def now() -> datetime:
    """Current time, timezone-aware UTC."""
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC) + _offset


def today() -> date:
    return now().date()


def advance(delta: timedelta) -> None:
    """Move the clock forward (simulated time in tests)."""
    global _offset, _frozen
    with _lock:
        if _frozen is not None:
            _frozen = _frozen + delta
        else:
            _offset = _offset + delta


@contextmanager
def frozen_at(moment: datetime) -> Iterator[None]:
    global _frozen
    with _lock:
        previous = _frozen
        _frozen = moment
    try:
        yield
    finally:
        with _lock:
            _frozen = previous


def reset() -> None:
    global _offset, _frozen
    with _lock:
        _offset = timedelta(0)
        _frozen = None
