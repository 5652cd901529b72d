"""Pooled PostgreSQL connections: a connection that died while idle in the pool
is replaced before use, without a ping on every transaction."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from entrepot.db import engine as engine_module
from entrepot.db.engine import get_engine
from entrepot.db.uow import platform_uow


def _backend_pid() -> int:
    with platform_uow(readonly=True) as uow:
        return int(uow.session.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_connection_killed_while_idle_is_replaced(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # given one pooled connection, idle, whose server process is then terminated
    postgres_url = pg_url
    get_engine(postgres_url).dispose()
    first = _backend_pid()
    with psycopg.connect(postgres_url.replace("+psycopg", "")) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first,))
    monkeypatch.setattr(engine_module, "IDLE_PING_SECONDS", 0.0)

    # when the next unit of work checks a connection out
    second = _backend_pid()

    # then it runs on a fresh connection instead of failing
    assert second != first


def test_a_connection_in_steady_use_is_not_pinged(pg_url: str) -> None:
    # given a pool whose connection was used a moment ago
    engine = get_engine(pg_url)
    engine.dispose()
    _backend_pid()
    pings: list[str] = []

    def count_pings(_conn, _cursor, statement, *_args) -> None:
        pings.append(statement)

    from sqlalchemy import event

    event.listen(engine, "before_cursor_execute", count_pings)
    try:
        # when ten more units of work run
        for _ in range(10):
            _backend_pid()
    finally:
        event.remove(engine, "before_cursor_execute", count_pings)

    # then each sent its own statement and nothing else through the engine
    assert [s for s in pings if "pg_backend_pid" in s] == pings
    assert len(pings) == 10


def _connection_id(url: str) -> int:
    with platform_uow(readonly=True) as uow:
        uow.session.execute(text("SELECT 1"))
        return id(uow.session.connection().connection.dbapi_connection)


def test_sqlite_hands_out_the_connection_returned_last(sqlite_only: str) -> None:
    # given a pool holding two connections (one unit of work opened inside another, as an API
    # key lookup does when it records the key's use)
    get_engine(sqlite_only).dispose()
    with platform_uow(readonly=True) as outer:
        outer.session.execute(text("SELECT 1"))
        _connection_id(sqlite_only)

    # when units of work then run one after the other
    used = {_connection_id(sqlite_only) for _ in range(6)}

    # then each gets the connection the previous one gave back (its page cache still holds what
    # that one read and wrote), not the pool's connections in turn: a SQLite connection whose
    # cache another connection's commit made stale reads its pages again, ~45 reads a request
    assert len(used) == 1
