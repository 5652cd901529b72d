"""The database alone: record a run's statements, replay them straight on the `sqlite3` driver.

A benchmark snapshots its SQLite database, records every statement (with its parameters)
and every commit of a run through Entrepot, then replays exactly those on a copy of the
snapshot: same settings as `db/engine.py`, same transactions, rows fetched. The replay is
what the SQL itself costs; the difference to the recorded run is the Python above it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import struct
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

# The connection settings of db/engine.py's _configure_sqlite.
PRAGMAS = ("journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL", "wal_autocheckpoint=10000",
           "journal_size_limit=67108864", "cache_size=-8192")


@dataclass
class Replayed:
    seconds: float
    cpu_seconds: float
    statements: int
    commit_seconds: float  # SQLite's automatic checkpoints included, as in the recorded run

    def per(self, unit: str, count: int) -> dict[str, float]:
        return {f"statements_per_{unit}": round(self.statements / count, 1), "seconds": round(self.seconds, 3),
                f"{unit}s_per_s": round(count / self.seconds, 1),
                f"{unit}s_per_cpu_s": round(count / self.cpu_seconds, 1),
                f"commit_ms_per_{unit}": round(self.commit_seconds * 1000 / count, 2)}


@dataclass
class Recording:
    statements: list[tuple[str, Any, bool]] = field(default_factory=list)


def snapshot(database: str) -> str:
    """A copy of the database file as it is now (every connection of the engine closed first)."""
    copy_path = database + ".before"
    with sqlite3.connect(database) as source, sqlite3.connect(copy_path) as copy:
        source.backup(copy)
    return copy_path


@contextlib.contextmanager
def recording() -> Iterator[Recording]:
    """Every statement and commit sent through SQLAlchemy engines while inside."""
    recorded = Recording()

    def statement(_conn: Any, _cursor: Any, sql: str, params: Any, _context: Any, executemany: bool) -> None:
        recorded.statements.append((sql, params, executemany))

    def commit(_conn: Any) -> None:
        recorded.statements.append(("COMMIT", None, False))

    def rollback(_conn: Any) -> None:
        recorded.statements.append(("ROLLBACK", None, False))

    listeners = (("before_cursor_execute", statement), ("commit", commit), ("rollback", rollback))
    for name, fn in listeners:
        event.listen(Engine, name, fn)
    try:
        yield recorded
    finally:
        for name, fn in listeners:
            event.remove(Engine, name, fn)


def replay(before: str, recorded: Recording, *, writes_only: bool = False) -> Replayed:
    """Run the recorded statements on a fresh copy of `before` (reads skipped with `writes_only`)."""
    target = before + ".replay"
    conn = _fresh_copy(before, target, PRAGMAS)
    executed = 0
    committing = 0.0
    cursor = conn.cursor()
    started, cpu_started = time.perf_counter(), time.process_time()
    for sql, params, many in recorded.statements:
        if sql == "COMMIT":
            commit_started = time.perf_counter()
            conn.commit()
            committing += time.perf_counter() - commit_started
            continue
        if sql == "ROLLBACK":
            conn.rollback()
            continue
        if writes_only and sql.lstrip()[:6].upper() == "SELECT":
            continue
        executed += 1
        if many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params or ())
            if cursor.description is not None:
                cursor.fetchall()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    conn.close()
    _remove(target)
    return Replayed(seconds, cpu, executed, committing)


def wal_pages(before: str, recorded: Recording) -> Counter[str]:
    """Pages written to the WAL by the recorded statements, by the table or index they belong to
    (replayed with checkpoints off, the frames' page numbers read off the WAL and named with
    SQLite's dbstat)."""
    target = before + ".pages"
    conn = _fresh_copy(before, target, (*PRAGMAS, "wal_autocheckpoint=0"))
    cursor = conn.cursor()
    for sql, params, many in recorded.statements:
        if sql == "COMMIT":
            conn.commit()
        elif sql == "ROLLBACK":
            conn.rollback()
        elif many:
            cursor.executemany(sql, params)
        else:
            cursor.execute(sql, params or ())
    with open(target + "-wal", "rb") as wal:
        log = wal.read()
    page_size = struct.unpack(">I", log[8:12])[0]
    frames = [struct.unpack(">I", log[at:at + 4])[0] for at in range(32, len(log) - 24 - page_size + 1, 24 + page_size)]
    owner = dict(conn.execute("SELECT pageno, name FROM dbstat"))
    conn.close()
    _remove(target)
    return Counter(owner.get(page, "(free list)") for page in frames)


def _fresh_copy(before: str, target: str, pragmas: tuple[str, ...]) -> sqlite3.Connection:
    with sqlite3.connect(before) as source, sqlite3.connect(target) as copy:
        source.backup(copy)
    conn = sqlite3.connect(target, isolation_level=None)
    for pragma in pragmas:
        conn.execute("PRAGMA " + pragma)
    return conn


def _remove(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)
