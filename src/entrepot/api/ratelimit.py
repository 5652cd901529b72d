"""Per-tenant rate limits (moving window), answered with 429 and Retry-After.

In-process storage: each API process enforces its share. A shared store
(Redis, which `limits` supports) is the operator's switch when several API
processes must enforce one budget together.
"""

from __future__ import annotations

import math
import time
import uuid

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter

from entrepot.kernel.errors import RateLimited

_storage = MemoryStorage()
_limiter = MovingWindowRateLimiter(_storage)
_items: dict[int, RateLimitItemPerMinute] = {}


def check(tenant_id: uuid.UUID, per_minute: int) -> None:
    item = _items.get(per_minute)
    if item is None:
        item = _items[per_minute] = RateLimitItemPerMinute(per_minute)
    key = str(tenant_id)
    if not _limiter.hit(item, "tenant", key):
        reset_at, _remaining = _limiter.get_window_stats(item, "tenant", key)
        raise RateLimited(max(1, math.ceil(reset_at - time.time())))


def reset() -> None:
    _storage.reset()
