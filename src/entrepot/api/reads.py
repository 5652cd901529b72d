"""The fast read path: a GET of one record, pre-serialised, without the thread pool on
PostgreSQL and in one worker-thread hop on SQLite.

A plain sync route with `Requires(...)` and `response_model` costs several hops
between the event loop and FastAPI's thread pool per request (the route, the
response-model validation, closing the unit of work) and serialises the record
twice (our `model_validate`, then FastAPI's validation and dump). Under load
those hops, not the query, dominate the latency. The hottest reads are instead
async routes that do all their blocking work in at most one hop:

    @router.get("/products/{product_id}", response_model=ProductRead)
    async def read_product(product_id: uuid.UUID,
                           actor: Annotated[Actor, RequiresActor(perms.PRODUCT_READ)]) -> Response:
        return await read_row(actor, Product, product_id, ProductRead, "product")

`read_row` fetches the table row by id with one prepared statement (`db.prepared`)
instead of building an ORM object (the ORM's identity map, loader options and tenant
criteria cost about twice the query itself). It is for schemas made of the
table's own columns; a record whose schema needs relationships or computed
attributes stays a plain route that reads through its service.

On PostgreSQL the row is fetched in one round trip instead of four (BEGIN, the
tenant settings, the SELECT, ROLLBACK), without an ORM session, and awaited on the
event loop (`db.async_pool`): no worker thread, no GIL handed between threads, no
thread left waiting for a core after PostgreSQL has answered. The connection is in
autocommit mode and receives both statements in one simple-protocol message,

    SELECT set_config('role', 'entrepot_app', true), set_config('entrepot.tenant_id', '<tenant>', true);
    SELECT ... FROM <table> WHERE id = '<id>' AND tenant_id = '<tenant>'

which PostgreSQL runs as one implicit transaction: the settings are
transaction-local as in a unit of work, so the SELECT runs as the app role under
row-level security, and they end with that transaction, error or not. The
connection goes back to the pool with no tenant, and only if it is idle outside
any transaction. SQLite keeps the worker-thread hop (its driver blocks).

Behaviour is the same as the sync form: another tenant's id is 404 (the
statement filters on the unit of work's tenant, and on PostgreSQL row-level
security applies as to any statement of a tenant transaction), the body is the
schema's JSON (by alias, as FastAPI renders it) and the ETag header is set.
`response_model` stays on the decorator for the OpenAPI document.
"""

from __future__ import annotations

import functools
import uuid
from collections import namedtuple
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from anyio import CapacityLimiter, to_thread
from anyio.lowlevel import RunVar
from fastapi import Response
from psycopg import AsyncClientCursor
from psycopg import Error as DriverError
from pydantic import BaseModel
from sqlalchemy import Dialect, QueuePool, Select, Table, bindparam, select
from sqlalchemy.exc import DBAPIError

from entrepot.api.etag import etag_of
from entrepot.db.async_pool import AsyncReadPool, async_read_pool
from entrepot.db.base import TenantOwned
from entrepot.db.engine import get_engine
from entrepot.db.prepared import Prepared
from entrepot.db.settings import get_settings
from entrepot.db.uow import UnitOfWork
from entrepot.kernel.context import Actor
from entrepot.kernel.errors import NotFound

T = TypeVar("T")


_read_slots: RunVar[CapacityLimiter] = RunVar("entrepot_read_slots")


def _read_limiter() -> CapacityLimiter:
    """At most as many reads in flight per process (and event loop) as the pool keeps
    connections. Past that a read waits here for its turn instead of taking an overflow
    connection, which the pool closes again at check-in: on PostgreSQL every overflow
    read paid a new backend (fork + authentication, milliseconds) under steady load."""
    try:
        return _read_slots.get()
    except LookupError:
        pool = get_engine().pool
        limiter = CapacityLimiter(pool.size() if isinstance(pool, QueuePool) else 40)
        _read_slots.set(limiter)
        return limiter


async def run_read(actor: Actor, read: Callable[[UnitOfWork], T]) -> T:
    """`read(uow)` in a read-only unit of work opened, used and closed in one worker thread."""

    def in_thread() -> T:
        with UnitOfWork(actor, readonly=True) as uow:
            return read(uow)

    return await to_thread.run_sync(in_thread, limiter=_read_limiter())


def record_response(record: Any, schema: type[BaseModel]) -> Response:
    """200 with `record` (an ORM object or a row) rendered through `schema`, and its ETag."""
    body = schema.model_validate(record).model_dump_json(by_alias=True).encode()
    return Response(body, media_type="application/json", headers={"ETag": etag_of(record)})


@functools.cache
def _row_by_id(table: Table) -> Select[Any]:
    # Built once per table: every request then hits SQLAlchemy's compiled cache.
    return select(table).where(table.c.id == bindparam("id"), table.c.tenant_id == bindparam("tenant_id"))


def _row_type(table: Table) -> Callable[..., Any]:
    # Rows shaped as `Row`s are (attributes named by column key) for the schema's `model_validate`.
    return namedtuple(f"{table.name}_row", [column.key for column in _row_by_id(table).selected_columns])


@functools.cache
def _prepared_row_by_id(table: Table) -> tuple[Prepared, Callable[..., Any]]:
    return Prepared(_row_by_id(table)), _row_type(table)


def load_row(uow: UnitOfWork, model: type[TenantOwned], record_id: uuid.UUID, entity: str) -> Any:
    """The row of a tenant-owned table with this id in the unit of work's tenant, or NotFound."""
    statement, make_row = _prepared_row_by_id(model.__table__)  # type: ignore[attr-defined]
    # A prepared statement on the unit of work's connection, so the transaction is the unit
    # of work's (and on PostgreSQL carries the tenant for row-level security); the tenant
    # filter is explicit because Core statements skip the ORM's tenant criteria.
    rows = statement.execute(uow, {"id": record_id, "tenant_id": uow.tenant_id})
    if not rows:
        raise NotFound(entity, record_id)
    return make_row(*rows[0])


# The tenant settings of `db.engine`'s tenant transactions, as the first statement of the
# message; its parameter names are apart from those of `_row_by_id` (`id`, `tenant_id`).
_IN_TENANT = ("SELECT set_config('role', %(entrepot_role)s, true), "
              "set_config('entrepot.tenant_id', %(entrepot_tenant)s, true); ")


class _RowByIdOnPostgres:
    """`_row_by_id(table)` compiled once for PostgreSQL (as a prepared statement is, with its
    parameter and result conversions), behind the tenant settings."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        self.compiled = Prepared(_row_by_id(table)).compiled(dialect)
        self.sql = _IN_TENANT + self.compiled.sql
        self.make_row = _row_type(table)

    def params(self, record_id: uuid.UUID, tenant_id: uuid.UUID) -> dict[str, Any]:
        return {**self.compiled.bind({"id": record_id, "tenant_id": tenant_id}),
                "entrepot_role": get_settings().db_app_role, "entrepot_tenant": str(tenant_id)}

    def row(self, raw: Sequence[Any], cursor: Any) -> Any:
        # The converters depend on the PostgreSQL type of each column (the driver's type
        # codes): learnt from the first result, then reused.
        return self.make_row(*self.compiled.row_function(cursor.description)(raw))


@functools.cache
def _row_by_id_on_postgres(table: Table, dialect: Dialect) -> _RowByIdOnPostgres:
    return _RowByIdOnPostgres(table, dialect)


async def fetch_row_on_postgres(pool: AsyncReadPool, dialect: Dialect, model: type[TenantOwned],
                                record_id: uuid.UUID, tenant_id: uuid.UUID) -> Any | None:
    """The row of a tenant-owned table with this id in this tenant, or None: one round trip
    that sets the tenant (app role, `entrepot.tenant_id`) and selects, in one implicit
    transaction, awaited on the event loop."""
    statement = _row_by_id_on_postgres(model.__table__, dialect)  # type: ignore[attr-defined]
    params = statement.params(record_id, tenant_id)
    async with pool.connection() as conn:
        cursor = AsyncClientCursor(conn)
        try:
            await cursor.execute(statement.sql, params)
            cursor.nextset()  # past the settings' result to the SELECT's
            raw = await cursor.fetchone()
            return None if raw is None else statement.row(raw, cursor)
        except DriverError as exc:
            # As for any statement: SQLAlchemy's error (OperationalError answers 503); the
            # pool closes a connection left broken or mid-transaction instead of reusing it.
            raise DBAPIError.instance(statement.sql, params, exc, DriverError) from exc
        finally:
            await cursor.close()


async def read_row(actor: Actor, model: type[TenantOwned], record_id: uuid.UUID,
                   schema: type[BaseModel], entity: str) -> Response:
    """GET one tenant-owned record by id: fetch, render and ETag (on the event loop on
    PostgreSQL, in one worker-thread hop on SQLite)."""
    if not issubclass(model, TenantOwned):
        raise TypeError(f"{model.__name__} is not tenant-owned: read it through a service")
    engine = get_engine()
    if engine.dialect.name != "postgresql":
        return await run_read(actor, lambda uow: record_response(load_row(uow, model, record_id, entity), schema))
    tenant_id = actor.tenant_id
    if tenant_id is None:
        raise RuntimeError("a tenant-owned record is read for a tenant")
    row = await fetch_row_on_postgres(async_read_pool(engine), engine.dialect, model, record_id, tenant_id)
    if row is None:
        raise NotFound(entity, record_id)
    return record_response(row, schema)
