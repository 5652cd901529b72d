"""Engine, sessions and the tenancy wall.

Two kinds of session exist:

* a *tenant session* (`session.info["tenant_id"]` set): every ORM query on a
  `TenantOwned` model is filtered by tenant, inserts get the tenant, and on
  PostgreSQL each transaction runs `SET LOCAL ROLE <app role>` and
  `set_config('entrepot.tenant_id', …, true)` so row-level security filters
  raw SQL as well. Both settings end with the transaction, so a pooled
  connection carries nothing over.
* a *platform session* (`session.info["platform"] = True`): authentication,
  tenant provisioning and the worker's cross-tenant claims. It runs as the
  login role, which owns the schema and bypasses RLS.

A session that is neither refuses to query tenant-owned data: fail closed.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker, with_loader_criteria

from entrepot.db.base import TenantOwned
from entrepot.db.settings import get_settings

_engines: dict[str, Engine] = {}
_readonly_views: dict[Engine, Engine] = {}
_lock = threading.Lock()


class TenancyViolation(RuntimeError):
    """A query or insert tried to cross the tenant wall."""


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the driver so writes can BEGIN IMMEDIATE:
        # a deferred transaction that later writes fails with SQLITE_BUSY instead
        # of waiting its turn.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        # Checkpoint the WAL every ~40 MB instead of every 4 MB: the pages every transaction
        # touches (sequence and chain heads, stock balances) are copied into the database
        # file once per checkpoint, so fewer checkpoints write much less (about 15% less CPU
        # per small transaction measured). The file is trimmed back to 64 MB after one.
        cur.execute("PRAGMA wal_autocheckpoint=10000")
        cur.execute("PRAGMA journal_size_limit=67108864")
        # 8 MB page cache instead of SQLite's 2 MB (balances, reservations and ledger indexes of a
        # real tenant outgrow 2 MB, and every miss is a read from the OS cache), but not more: a
        # commit after a b-tree split that swapped page numbers (balance_nonroot renumbers pages
        # through the pending-byte page, 262145 with 4 KB pages) walks the whole page cache while
        # the database is under 1 GB (pcache1Truncate, SQLite 3.40). Random-order inserts (the
        # outbox's subject index) make that ~40% of commits: at 64 MB such a commit cost 0.5-1 ms.
        # Allocation bench, 1M moves, CPU of commits per order 0.5 -> 0.22 ms with 8 MB, its
        # statements no slower (most of a 64 MB cache held pages no allocation read again).
        cur.execute("PRAGMA cache_size=-8192")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        readonly = conn._execution_options.get("entrepot_readonly", False)
        _run_on_driver(conn, "BEGIN" if readonly else "BEGIN IMMEDIATE", ())


# A pooled connection idle longer than this is pinged before use. Pinging on
# every checkout (pool_pre_ping) costs a round trip per transaction; a
# connection in steady use has just proved itself alive.
IDLE_PING_SECONDS = 10.0


def _ping_idle_connections(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < IDLE_PING_SECONDS:
            return
        try:
            cur = dbapi_conn.cursor()
            cur.execute("SELECT 1")
            cur.close()
            dbapi_conn.rollback()
        except Exception as exc:
            # The pool discards this connection and checks out a fresh one.
            raise DisconnectionError("idle connection is gone") from exc


def get_engine(url: str | None = None) -> Engine:
    settings = get_settings()
    url = url or settings.database_url
    engine = _engines.get(url)  # every unit of work asks: no lock once the engine exists
    if engine is not None:
        return engine
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                # LIFO: a unit of work gets the connection given back last. SQLite keeps a page
                # cache per connection and drops it when another connection has committed since
                # (a shared file): handing out the pool's connections in turn (FIFO, the default)
                # made every API request read its pages again once the pool held two connections
                # (a key lookup records the key's use in a second one): ~46 pread() per request
                # of the order-to-cash flow, 3 with LIFO.
                engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                                       pool_use_lifo=True)
                _configure_sqlite(engine)
            else:
                engine = create_engine(
                    url,
                    pool_size=settings.db_pool_size,
                    max_overflow=settings.db_pool_size,
                )
                _ping_idle_connections(engine)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
        _readonly_views.clear()


_factory = sessionmaker(expire_on_commit=False, autoflush=True)


def _bind(url: str | None, readonly: bool) -> Engine:
    engine = get_engine(url)
    if not readonly:
        return engine
    # One read-only view per engine (it shares the pool), not a new one per session.
    view = _readonly_views.get(engine)
    if view is None:
        view = _readonly_views[engine] = engine.execution_options(entrepot_readonly=True)
    return view


def tenant_session(tenant_id: uuid.UUID, *, readonly: bool = False, url: str | None = None) -> Session:
    bind = _bind(url, readonly)
    session = _factory(bind=bind)
    session.info["tenant_id"] = tenant_id
    return session


def platform_session(*, readonly: bool = False, url: str | None = None) -> Session:
    bind = _bind(url, readonly)
    session = _factory(bind=bind)
    session.info["platform"] = True
    return session


@event.listens_for(Session, "after_begin")
def _set_tenant_for_rls(session: Session, transaction: Any, connection: Any) -> None:
    if connection.dialect.name != "postgresql" or transaction.nested:
        # A savepoint runs inside the transaction that already set both values.
        return
    tenant_id = session.info.get("tenant_id")
    if tenant_id is None:
        return
    # One round trip: set_config(..., true) is SET LOCAL, so both end with the transaction.
    _run_on_driver(connection, _SET_TENANT, (get_settings().db_app_role, str(tenant_id)))


_SET_TENANT = "SELECT set_config('role', %s, true), set_config('entrepot.tenant_id', %s, true)"


def _run_on_driver(conn: Any, sql: str, args: tuple[Any, ...]) -> None:
    """A statement every transaction runs, sent on the driver's cursor: SQLAlchemy's
    execution machinery would cost more than the statement. Listeners still see it."""
    # The pool's DB-API connection is the driver's own for pysqlite and psycopg (they differ
    # only for asyncio drivers), and a plain attribute where `driver_connection` is a lookup.
    cursor = conn.connection.dbapi_connection.cursor()
    dbapi_error = conn.dialect.loaded_dbapi.Error
    try:
        announce(conn, cursor, sql, args, executemany=False)
        cursor.execute(sql, args)
    except dbapi_error as exc:
        # Wrapped as SQLAlchemy wraps its own statements' errors, so a locked SQLite database
        # (BEGIN IMMEDIATE past busy_timeout) is the API's 503 database_unavailable, not a 500.
        raise DBAPIError.instance(sql, args, exc, dbapi_error, dialect=conn.dialect) from exc
    finally:
        cursor.close()


def announce(conn: Any, cursor: Any, sql: str, args: Any, *, executemany: bool) -> None:
    """Tell `before_cursor_execute` listeners (statement counts in tests and benchmarks,
    logging) of a statement sent on the driver's cursor, as SQLAlchemy tells them of its own."""
    if conn._has_events:
        conn.dispatch.before_cursor_execute(conn, cursor, sql, args, None, executemany)
    elif conn.engine._has_events:
        # Only the engine's listeners (and those on the Engine class): asked directly, not through
        # the connection's own dispatch, which SQLAlchemy would first build for this connection
        # (a connection lives for one transaction).
        conn.engine.dispatch.before_cursor_execute(conn, cursor, sql, args, None, executemany)


@event.listens_for(Session, "do_orm_execute")
def _filter_by_tenant(state: ORMExecuteState) -> None:
    if state.is_column_load or state.is_relationship_load or state.is_insert:
        return  # the parent query already carried the criteria; inserts are stamped at flush
    session = state.session
    tenant_id = session.info.get("tenant_id")
    if tenant_id is None:
        if session.info.get("platform"):
            return
        raise TenancyViolation("query on a session with no tenant and no platform scope")
    state.statement = state.statement.options(_tenant_criteria(tenant_id))


@functools.lru_cache(maxsize=4096)
def _tenant_criteria(tenant_id: uuid.UUID) -> Any:
    # Building the option analyses the lambda's closure; doing it once per tenant
    # instead of once per query takes a good share of the ORM's per-query cost.
    return with_loader_criteria(TenantOwned, lambda cls: cls.tenant_id == tenant_id, include_aliases=True)


@event.listens_for(Session, "before_flush")
def _stamp_tenant(session: Session, _ctx: Any, _instances: Any) -> None:
    tenant_id = session.info.get("tenant_id")
    for obj in session.new:
        if not isinstance(obj, TenantOwned):
            continue
        current = obj.tenant_id
        if current is None:
            if tenant_id is None:
                raise TenancyViolation(f"{type(obj).__name__} inserted without a tenant")
            obj.tenant_id = tenant_id
        elif tenant_id is not None and current != tenant_id:
            raise TenancyViolation(f"{type(obj).__name__} inserted into another tenant")
    if tenant_id is not None:
        for obj in session.dirty:
            if isinstance(obj, TenantOwned) and obj.tenant_id != tenant_id:
                raise TenancyViolation(f"{type(obj).__name__} moved to another tenant")
