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

import threading
import uuid
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker, with_loader_criteria

from entrepot.db.base import TenantOwned
from entrepot.db.settings import get_settings

_engines: dict[str, Engine] = {}
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
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        readonly = conn.get_execution_options().get("entrepot_readonly", False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def get_engine(url: str | None = None) -> Engine:
    settings = get_settings()
    url = url or settings.database_url
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            if url.startswith("sqlite"):
                engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
                _configure_sqlite(engine)
            else:
                engine = create_engine(
                    url,
                    pool_size=settings.db_pool_size,
                    max_overflow=settings.db_pool_size,
                    pool_pre_ping=True,
                )
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


_factory = sessionmaker(expire_on_commit=False, autoflush=True)


def tenant_session(tenant_id: uuid.UUID, *, readonly: bool = False, url: str | None = None) -> Session:
    engine = get_engine(url)
    bind = engine.execution_options(entrepot_readonly=True) if readonly else engine
    session = _factory(bind=bind)
    session.info["tenant_id"] = tenant_id
    return session


def platform_session(*, readonly: bool = False, url: str | None = None) -> Session:
    engine = get_engine(url)
    bind = engine.execution_options(entrepot_readonly=True) if readonly else engine
    session = _factory(bind=bind)
    session.info["platform"] = True
    return session


@event.listens_for(Session, "after_begin")
def _set_tenant_for_rls(session: Session, _tx: Any, connection: Any) -> None:
    if connection.dialect.name != "postgresql":
        return
    tenant_id = session.info.get("tenant_id")
    if tenant_id is None:
        return
    # One round trip: set_config(..., true) is SET LOCAL, so both end with the transaction.
    connection.execute(
        text("SELECT set_config('role', :role, true), set_config('entrepot.tenant_id', :tenant, true)"),
        {"role": get_settings().db_app_role, "tenant": str(tenant_id)},
    )


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
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantOwned,
            lambda cls: cls.tenant_id == tenant_id,
            include_aliases=True,
        )
    )


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
