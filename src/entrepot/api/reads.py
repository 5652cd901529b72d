"""The fast read path: a GET of one record in one worker-thread hop, pre-serialised.

A plain sync route with `Requires(...)` and `response_model` costs several hops
between the event loop and FastAPI's thread pool per request (the route, the
response-model validation, closing the unit of work) and serialises the record
twice (our `model_validate`, then FastAPI's validation and dump). Under load
those hops, not the query, dominate the latency. The hottest reads are instead
async routes that do all their blocking work in one hop:

    @router.get("/products/{product_id}", response_model=ProductRead)
    async def read_product(product_id: uuid.UUID,
                           actor: Annotated[Actor, RequiresActor(perms.PRODUCT_READ)]) -> Response:
        return await read_row(actor, Product, product_id, ProductRead, "product")

`read_row` fetches the table row by id with one cached Core statement instead of
building an ORM object (the ORM's identity map, loader options and tenant
criteria cost about twice the query itself). It is for schemas made of the
table's own columns; a record whose schema needs relationships or computed
attributes stays a plain route that reads through its service.

Behaviour is the same as the sync form: another tenant's id is 404 (the
statement filters on the unit of work's tenant, and on PostgreSQL row-level
security applies as to any statement of a tenant transaction), the body is the
schema's JSON (by alias, as FastAPI renders it) and the ETag header is set.
`response_model` stays on the decorator for the OpenAPI document.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from anyio import CapacityLimiter, to_thread
from anyio.lowlevel import RunVar
from fastapi import Response
from pydantic import BaseModel
from sqlalchemy import QueuePool, Row, Select, Table, bindparam, select

from entrepot.api.etag import etag_of
from entrepot.db.base import TenantOwned
from entrepot.db.engine import get_engine
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


def load_row(uow: UnitOfWork, model: type[TenantOwned], record_id: uuid.UUID, entity: str) -> Row[Any]:
    """The row of a tenant-owned table with this id in the unit of work's tenant, or NotFound."""
    statement = _row_by_id(model.__table__)  # type: ignore[attr-defined]
    # The session's connection, so the transaction is the unit of work's (and on
    # PostgreSQL carries the tenant for row-level security); the tenant filter is
    # explicit because Core statements skip the ORM's tenant criteria.
    row = uow.session.connection().execute(
        statement, {"id": record_id, "tenant_id": uow.tenant_id}).one_or_none()
    if row is None:
        raise NotFound(entity, record_id)
    return row


async def read_row(actor: Actor, model: type[TenantOwned], record_id: uuid.UUID,
                   schema: type[BaseModel], entity: str) -> Response:
    """GET one tenant-owned record by id: fetch, render and ETag in one worker-thread hop."""
    if not issubclass(model, TenantOwned):
        raise TypeError(f"{model.__name__} is not tenant-owned: read it through a service")
    return await run_read(actor, lambda uow: record_response(load_row(uow, model, record_id, entity), schema))
