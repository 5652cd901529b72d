"""Dependencies every route uses: the credential, the permission, the unit of work.

A route states the one permission it needs:

    def confirm(uow: Annotated[UnitOfWork, Requires(perms.ORDER_CONFIRM)]): ...

`Requires` authenticates the bearer key (the key decides the tenant), checks
the permission (403 naming it), applies the tenant's rate limit and opens a
tenant unit of work that rolls back unless the route commits.

`RequiresActor` does the same checks but yields the actor only, for the async
read routes of `entrepot.api.reads` (no worker thread on PostgreSQL, one hop on SQLite).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from entrepot.api import ratelimit
from entrepot.db.settings import get_settings
from entrepot.db.uow import UnitOfWork, platform_uow
from entrepot.identity.models import Tenant
from entrepot.identity.services.api_keys import AUTH_REFRESH_AFTER_S, authenticate_api_key, cached_actor_and_age
from entrepot.kernel.context import Actor
from entrepot.kernel.errors import Unauthenticated

_limits_cache: dict[uuid.UUID, tuple[float, int]] = {}
_limits_lock = threading.Lock()


def _cached_rate_limit(tenant_id: uuid.UUID) -> int | None:
    with _limits_lock:
        cached = _limits_cache.get(tenant_id)
    if cached and time.monotonic() - cached[0] < 30:
        return cached[1]
    return None


def forget_rate_limit(tenant_id: uuid.UUID) -> None:
    """The tenant's settings changed: read its limit again on the next request (in this process;
    others read it again within 30 s)."""
    with _limits_lock:
        _limits_cache.pop(tenant_id, None)


def _tenant_rate_limit(platform: UnitOfWork, tenant_id: uuid.UUID) -> int:
    now = time.monotonic()
    with _limits_lock:
        cached = _limits_cache.get(tenant_id)
        # Reloaded by any key lookup past 20 s, so the refresh-ahead of a key in use renews
        # it before it expires at 30 s (`_cached_rate_limit`).
        if cached and now - cached[0] < 20:
            return cached[1]
    tenant = platform.session.get(Tenant, tenant_id)
    limit = int((tenant.settings or {}).get("rate_limit_per_minute") or
                get_settings().rate_limit_per_minute) if tenant else 0
    with _limits_lock:
        _limits_cache[tenant_id] = (now, limit)
    return limit


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("send an API key as 'Authorization: Bearer <key>'")
    return token.strip()


def _authenticate_from_database(token: str, request_id: str | None) -> tuple[Actor, int]:
    """The slow path (a key not seen in the last seconds): one indexed lookup. Blocks."""
    with platform_uow(readonly=True) as platform:
        actor = authenticate_api_key(platform, token, request_id)
        return actor, _tenant_rate_limit(platform, actor.tenant_id)  # type: ignore[arg-type]


_lookups: RunVar[dict[str, asyncio.Future[tuple[Actor, int]]]] = RunVar("entrepot_key_lookups")


def _lookups_in_flight() -> dict[str, asyncio.Future[tuple[Actor, int]]]:
    """This event loop's key lookups in flight, by key."""
    try:
        return _lookups.get()
    except LookupError:
        lookups: dict[str, asyncio.Future[tuple[Actor, int]]] = {}
        _lookups.set(lookups)
        return lookups


async def _authenticate_once(token: str, request_id: str | None) -> tuple[Actor, int]:
    """The database lookup of a key, shared by the requests that need it at the same time.

    A key's cached entry expires for every request in flight at once: without this,
    each of them (as many as the clients of that key) took a worker thread and a
    pooled connection for the same lookup, every few seconds."""
    lookups = _lookups_in_flight()
    pending = lookups.get(token)
    if pending is None:
        pending = asyncio.ensure_future(run_in_threadpool(_authenticate_from_database, token, request_id))
        lookups[token] = pending

        def done(finished: asyncio.Future[tuple[Actor, int]]) -> None:
            lookups.pop(token, None)
            if not finished.cancelled():
                finished.exception()  # retrieved: waiters that went away leave no "never retrieved" log

        pending.add_done_callback(done)
    # Shielded: a waiter that is cancelled (its client went away) leaves the lookup to the others.
    actor, limit = await asyncio.shield(pending)
    if actor.request_id != request_id:
        actor = dataclasses.replace(actor, request_id=request_id)
    return actor, limit


def _refresh_ahead(token: str) -> None:
    """Check a key in use against the database again before its cache entry expires, in the
    background: requests go on being served from the entry (never older than the cache's
    limit, so a revocation still takes effect in time) instead of all waiting on one lookup
    when it expires. A key revoked meanwhile fails the check and its entry simply expires."""
    lookups = _lookups_in_flight()
    if token in lookups:
        return

    async def refresh() -> None:
        with contextlib.suppress(Unauthenticated):
            await _authenticate_once(token, None)

    task = asyncio.ensure_future(refresh())
    _background.add(task)
    task.add_done_callback(_background.discard)


# Strong references to refreshes in flight (the event loop keeps only weak ones).
_background: set[asyncio.Future[None]] = set()


async def authenticate(request: Request) -> Actor:
    """The request's actor, authenticated once per request, and the tenant's rate limit applied.

    Async on purpose: a key this process authenticated in the last seconds is a
    dictionary hit (one HMAC), cheaper than the hop to a worker thread that a sync
    dependency costs. Only a cache miss goes to the thread pool for the database."""
    cached = getattr(request.state, "actor", None)
    if cached is not None:
        return cached
    token = bearer_token(request)
    request_id = getattr(request.state, "request_id", None)
    actor, age = cached_actor_and_age(token, request_id)
    limit = _cached_rate_limit(actor.tenant_id) if actor else None  # type: ignore[arg-type]
    if actor is None or limit is None:
        actor, limit = await _authenticate_once(token, request_id)
    elif age > AUTH_REFRESH_AFTER_S:
        _refresh_ahead(token)
    ratelimit.check(actor.tenant_id, limit)  # type: ignore[arg-type]
    request.state.actor = actor
    return actor


CurrentActor = Annotated[Actor, Depends(authenticate)]


async def _raw_body(request: Request) -> bytes:
    return await request.body()


# The request body as sent (a CSV import, a signed connector callback), read on the event loop so the
# route itself can stay a plain `def`: a route's database work runs in a worker thread, never on the
# loop, where waiting for a lock would hold up every request (see test_route_table).
RawBody = Annotated[bytes, Depends(_raw_body)]


# Ending a unit of work that still holds its transaction (a route that raised after it wrote or
# locked) gets threads of its own. On the shared pool it waited behind the requests waiting for that
# very transaction's lock: with every pool thread taken by them (a burst of writes, webhook deliveries
# to this server), the rollback could only start when they gave up, after SQLite's 30 s busy timeout.
RELEASE_THREADS = 16
_release_limiter: RunVar[anyio.CapacityLimiter] = RunVar("entrepot_release_limiter")


def _release_threads() -> anyio.CapacityLimiter:
    try:
        return _release_limiter.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(RELEASE_THREADS)
        _release_limiter.set(limiter)
        return limiter


async def end_unit_of_work(uow: UnitOfWork) -> None:
    """Roll back what the route did not commit and give the connection back."""
    if uow.session.in_transaction():
        # Rolling back / releasing the connection is database I/O: not on the loop.
        await anyio.to_thread.run_sync(uow.__exit__, None, None, None, limiter=_release_threads())
    else:
        # Committed, or never touched the database: closing does no I/O.
        uow.__exit__(None, None, None)


class _Permission:
    """Callable dependency; `permission` is read by the route-table tests."""

    def __init__(self, permission: str, readonly: bool) -> None:
        self.permission = permission
        self.readonly = readonly

    async def __call__(self, request: Request) -> AsyncIterator[UnitOfWork]:
        # Async on purpose: FastAPI runs a sync generator dependency through the
        # thread pool twice (enter, exit). Here nothing blocks: authentication is a
        # per-process cache hit almost always (a miss costs one indexed lookup), and
        # a session opens its connection lazily, in the route's worker thread.
        actor = await authenticate(request)
        actor.require(self.permission)
        uow = UnitOfWork(actor, readonly=self.readonly).__enter__()
        try:
            yield uow
        finally:
            await end_unit_of_work(uow)

    def __repr__(self) -> str:
        return f"Requires({self.permission!r})"


class _ActorPermission(_Permission):
    """Like `_Permission`, but yields the checked actor and opens no unit of work:
    for the async read routes of `api.reads`, which open their own connection."""

    async def __call__(self, request: Request) -> Actor:  # type: ignore[override]
        actor = await authenticate(request)
        actor.require(self.permission)
        return actor

    def __repr__(self) -> str:
        return f"RequiresActor({self.permission!r})"


def Requires(permission: str, *, readonly: bool | None = None) -> Any:
    """Depends() on a permission-checked tenant unit of work."""
    if readonly is None:
        readonly = permission.endswith(".read")
    return Depends(_Permission(permission, readonly))


def RequiresActor(permission: str) -> Any:
    """Depends() on the permission-checked actor (no unit of work): see `api.reads`."""
    return Depends(_ActorPermission(permission, readonly=True))


def permission_of(route: Any) -> str | None:
    for dep in route.dependant.dependencies:
        if isinstance(dep.call, _Permission):  # RequiresActor's class included
            return dep.call.permission
    return None


PUBLIC = "public"


def route_table(app: Any) -> list[tuple[str, frozenset[str], Any]]:
    """(path, methods, original APIRoute) for every HTTP route, through included routers."""
    from fastapi.routing import APIRoute

    found: list[tuple[str, frozenset[str], Any]] = []

    def walk(routes: Any) -> None:
        for r in routes:
            if isinstance(r, APIRoute):
                found.append((r.path, frozenset(r.methods), r))
            elif hasattr(r, "effective_candidates"):
                for c in r.effective_candidates():
                    if hasattr(c, "effective_candidates"):
                        walk([c])
                    elif isinstance(getattr(c, "original_route", None), APIRoute):
                        found.append((c.path, frozenset(c.original_route.methods), c.original_route))

    walk(app.routes)
    return found
