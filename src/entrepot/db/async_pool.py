"""A small pool of async PostgreSQL connections for the API's one-round-trip reads.

The by-id reads of `entrepot.api.reads` are one message to PostgreSQL. Run through
FastAPI's thread pool, each paid a hop to a worker thread and back, the GIL handed
between a dozen threads, and SQLAlchemy's pool check-out and check-in: more CPU than the
statement itself, and under load threads waiting to be scheduled after PostgreSQL had
already answered. Here the read awaits the answer on the event loop instead, on a
psycopg `AsyncConnection`.

The connections are made with the engine's own connect arguments (same server, login
role and psycopg adapters as the sync pool), in autocommit mode: each message runs as one
implicit transaction, so the tenant settings a read sends with its SELECT
(`set_config(..., true)`) end with it, error or not. A connection goes back to the pool
only when it is idle outside any transaction; anything else (broken, cancelled mid-query,
left in a transaction) is closed instead of reused.

One pool per event loop and database (asyncio connections belong to the loop that opened
them), closed by `close_read_pools()` when the application shuts down. psycopg_pool would
do the same with more machinery (a scheduler thread, background refills) than a handful
of connections used by one loop needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any

from anyio.lowlevel import RunVar
from psycopg import AsyncConnection
from psycopg import Error as DriverError
from psycopg.pq import TransactionStatus
from sqlalchemy import Engine, QueuePool
from sqlalchemy.exc import DBAPIError

from entrepot.db.engine import IDLE_PING_SECONDS


class AsyncReadPool:
    """At most `size` autocommit connections, the most recently used handed out first."""

    def __init__(self, connect_args: dict[str, Any], size: int) -> None:
        self.connect_args = connect_args
        self.size = size
        # Bounds the connections in use; idle + in use never exceeds `size`, since a new
        # connection is opened only when none is idle.
        self._slots = asyncio.Semaphore(size)
        self._idle: list[tuple[AsyncConnection[Any], float]] = []
        self._closed = False

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection[Any]]:
        """A connection for one message; database errors are SQLAlchemy's, as for any statement
        (OperationalError, e.g. the server is down, answers 503)."""
        if self._closed:
            raise RuntimeError("the read pool is closed")
        async with self._slots:
            conn = await self._take()
            try:
                yield conn
            finally:
                await self._give_back(conn)

    async def _take(self) -> AsyncConnection[Any]:
        while self._idle:
            conn, since = self._idle.pop()
            if conn.closed:
                continue
            if time.monotonic() - since < IDLE_PING_SECONDS:
                return conn
            # Idle long enough that the server may have closed it: one ping, not one per read.
            try:
                await conn.execute("SELECT 1")
                return conn
            except DriverError:
                await _discard(conn)
        try:
            return await AsyncConnection.connect(**self.connect_args, autocommit=True)
        except DriverError as exc:
            raise DBAPIError.instance("connect", None, exc, DriverError) from exc

    async def _give_back(self, conn: AsyncConnection[Any]) -> None:
        if self._closed or conn.closed or conn.broken or conn.info.transaction_status != TransactionStatus.IDLE:
            await _discard(conn)
            return
        self._idle.append((conn, time.monotonic()))

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn, _since in idle:
            await _discard(conn)


async def _discard(conn: AsyncConnection[Any]) -> None:
    with contextlib.suppress(Exception):
        await conn.close()


_pools: RunVar[dict[str, AsyncReadPool]] = RunVar("entrepot_async_read_pools")


def async_read_pool(engine: Engine) -> AsyncReadPool:
    """This event loop's pool for the engine's database, as large as the engine's own pool."""
    try:
        pools = _pools.get()
    except LookupError:
        pools = {}
        _pools.set(pools)
    key = str(engine.url)
    pool = pools.get(key)
    if pool is None:
        size = engine.pool.size() if isinstance(engine.pool, QueuePool) else 10
        pool = pools[key] = AsyncReadPool(connect_args(engine), size)
    return pool


def connect_args(engine: Engine) -> dict[str, Any]:
    """The arguments the engine gives psycopg to connect (server, role, adapters)."""
    cargs, cparams = engine.dialect.create_connect_args(engine.url)
    return {"conninfo": cargs[0], **cparams} if cargs else dict(cparams)


async def close_read_pools() -> None:
    """Close this event loop's read pools (at application shutdown)."""
    try:
        pools = _pools.get()
    except LookupError:
        return
    for pool in pools.values():
        await pool.close()
    pools.clear()
