"""Per-tenant rate limits (moving window of one minute), answered with 429 and Retry-After.

In-process storage: each API process enforces its share (docs/operating.md). A
shared store (Redis) would replace `_windows` when several API processes must
enforce one budget together.

The window keeps the time of each accepted request of the last minute in a
deque: a hit appends one and drops those older than a minute, so a check is
O(1) amortised whatever the limit. (The `limits` package's in-memory moving
window inserted at the head of a list and started a timer thread to expire
entries: at 1,000 requests/s that was a 60,000-entry copy per request and a
thread started every few milliseconds.)
"""

from __future__ import annotations

import math
import threading
import time
import uuid
from collections import deque

from entrepot.kernel.errors import RateLimited

WINDOW_S = 60.0

_windows: dict[uuid.UUID, deque[float]] = {}
_lock = threading.Lock()


def check(tenant_id: uuid.UUID, per_minute: int) -> None:
    """Count one request of the tenant, or raise RateLimited (429) when the last
    minute already holds `per_minute` of them. Refused requests are not counted."""
    now = time.monotonic()
    with _lock:
        window = _windows.get(tenant_id)
        if window is None:
            window = _windows[tenant_id] = deque()
        horizon = now - WINDOW_S
        while window and window[0] <= horizon:
            window.popleft()
        if len(window) < per_minute:
            window.append(now)
            return
        # The oldest request still counted leaves the window first; the caller may
        # retry then. A limit of 0 refuses everything (window is empty): retry in a minute.
        frees_at = window[0] + WINDOW_S if window else now + WINDOW_S
    raise RateLimited(max(1, math.ceil(frees_at - now)))


def reset() -> None:
    with _lock:
        _windows.clear()
