"""Settings for a long-running Entrepot process (API server, worker, CLI jobs, benchmarks).

Business actions allocate many short-lived objects (rows, Decimals, event
payloads). With CPython's default thresholds (a young-generation collection
every 700 allocations) a busy process spends up to a fifth of its time in the
garbage collector, most of it re-scanning what lives for the whole process:
modules, mappers, compiled statements, caches. `settle_after_startup()`
moves everything allocated so far out of the collector's view (`gc.freeze`)
and lets a unit of work finish before the next young collection. Reference
cycles are still collected, only less often.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000


def settle_after_startup() -> None:
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, 20, 100)
