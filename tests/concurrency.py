"""Two steps at once, each in its own transaction and thread, in a fixed interleaving.

`together(tenant, first, second)`: `first(uow)` runs and keeps its transaction open; then
`second(uow)` starts and, on PostgreSQL, is let run until it waits for a lock (or ends); only
then does `first` commit. No sleeps: the interleaving is observed, not hoped for. On SQLite
the second writer waits at BEGIN IMMEDIATE, so the two are serialised either way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

WAIT_LIMIT = 30.0  # seconds; only reached when the second step hangs on something else

_WAITING_FOR_A_LOCK = ("SELECT count(*) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND wait_event_type = 'Lock'")


def _waiting_for_a_lock(url: str) -> Callable[[], bool]:
    import psycopg

    def check() -> bool:
        with psycopg.connect(url.replace("+psycopg", ""), autocommit=True) as conn:
            row = conn.execute(_WAITING_FOR_A_LOCK).fetchone()
            return bool(row and row[0])

    return check


def together(tenant: Any, first: Callable[[Any], Any], second: Callable[[Any], Any]) -> list[Any]:
    """Run both steps as described above; each commits. Returns what each returned or raised."""
    outcomes: list[Any] = [None, None]
    first_done, release = threading.Event(), threading.Event()

    def run(i: int, step: Callable[[Any], Any], hold: bool) -> None:
        try:
            with tenant.uow() as uow:
                try:
                    outcomes[i] = step(uow)
                finally:
                    if hold:
                        first_done.set()
                        release.wait(WAIT_LIMIT)
                uow.commit()
        except Exception as exc:  # the caller looks at the outcomes
            outcomes[i] = exc

    a = threading.Thread(target=run, args=(0, first, True))
    a.start()
    first_done.wait(WAIT_LIMIT)
    b = threading.Thread(target=run, args=(1, second, False))
    b.start()
    if tenant.url.startswith("postgresql"):
        blocked = _waiting_for_a_lock(tenant.url)
        for _ in range(int(WAIT_LIMIT * 100)):
            if not b.is_alive() or blocked():
                break
            b.join(0.01)
    release.set()
    a.join()
    b.join()
    return outcomes
