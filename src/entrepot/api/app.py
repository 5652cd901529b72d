"""The FastAPI application: kernel middleware, problem+json, and each domain's router."""

from __future__ import annotations

import contextlib
import hmac
import importlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text
from starlette.routing import BaseRoute, Match, get_route_path
from starlette.types import ASGIApp, Receive, Scope, Send

from entrepot import __version__
from entrepot.api import problems
from entrepot.api.idempotency import IdempotencyMiddleware
from entrepot.api.logging import configure_logging
from entrepot.db.async_pool import close_read_pools
from entrepot.db.engine import get_engine
from entrepot.db.registry import load_all_models
from entrepot.db.settings import get_settings

API_PREFIX = "/api/v1"
_log = structlog.get_logger("entrepot.http")
# Domain packages whose `routes.router` is mounted under /api/v1 (DESIGN.md's list).
DOMAINS = (
    "identity", "catalog", "parties", "pricing", "inventory", "sales", "billing",
    "purchasing", "subscriptions", "ledger", "integration", "platform",
)


class RequestIdMiddleware:
    """A request id on every response (X-Request-ID) and every log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode()[:64]
        request_id = incoming if incoming.isprintable() and incoming else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: dict) -> None:  # type: ignore[type-arg]
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # Client errors at info (they explain a caller's trouble), the rest at debug.
            (_log.info if 400 <= status < 500 else _log.debug)(
                "request", method=scope["method"], path=scope["path"], status=status,
                ms=round((time.perf_counter() - started) * 1000, 1))
            structlog.contextvars.unbind_contextvars("request_id")


def _first_segments(included: Any) -> frozenset[str] | None:
    """The first path segments after /api/v1 of every route an included router holds,
    or None when one of them could match more (a path parameter first, a mount, a
    route outside /api/v1)."""
    from fastapi.routing import APIRoute

    segments: set[str] = set()
    for candidate in included.effective_candidates():
        if hasattr(candidate, "effective_candidates"):
            nested = _first_segments(candidate)
            if nested is None:
                return None
            segments |= nested
            continue
        if not isinstance(getattr(candidate, "original_route", None), APIRoute):
            return None
        rest = candidate.path.removeprefix(API_PREFIX + "/")
        segment = rest.split("/", 1)[0]
        if rest == candidate.path or not segment or "{" in segment:
            return None
        segments.add(segment)
    return frozenset(segments)


_SEGMENT_KEY = "entrepot.first_segment"


def _route_by_first_segment(included: BaseRoute) -> None:
    """Let an included domain router turn away, at once, a path none of its routes starts with.

    The application matches a request against each domain router in turn, and each
    of those tries its routes one by one (some 200 in all, a few microseconds each):
    before the right domain was reached, every request paid about a millisecond of
    CPU to be told "no" by the others. The answer is the same, only sooner; a path
    a router could match still goes through FastAPI's own matching."""
    segments = _first_segments(included)
    if segments is None:
        return
    matches = included.matches
    prefix = API_PREFIX + "/"

    def guarded(scope: Scope) -> tuple[Match, Scope]:
        # A dozen guards see the same request: its first segment is found once, kept in the
        # scope with the paths it was taken from (a changed path is looked at again).
        path, root = scope.get("path"), scope.get("root_path")
        found = scope.get(_SEGMENT_KEY)
        if found is None or found[0] is not path or found[1] is not root:
            route_path = get_route_path(scope) if scope["type"] in ("http", "websocket") else ""
            segment = route_path[len(prefix):].split("/", 1)[0] if route_path.startswith(prefix) else None
            found = scope[_SEGMENT_KEY] = (path, root, segment)
        if found[2] is not None and found[2] not in segments:
            return Match.NONE, {}
        return matches(scope)

    included.matches = guarded  # type: ignore[method-assign]


def _health_router() -> APIRouter:
    router = APIRouter(tags=["platform"])

    @router.get("/health", summary="Liveness and database check (no auth)")
    def health() -> JSONResponse:
        try:
            # A read transaction: a write one would wait behind any writer (SQLite's write lock)
            # and call a busy database down.
            with get_engine().execution_options(entrepot_readonly=True).connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception:
            # An error like any other (problem+json: `status` is the HTTP status), with `database: down`.
            return JSONResponse({"type": "https://entrepot.dev/problems/unavailable", "title": "Service unavailable",
                                 "status": 503, "detail": "the database does not answer", "code": "unavailable",
                                 "database": "down"},
                                status_code=503, media_type="application/problem+json")
        return JSONResponse({"status": "ok", "database": "up", "version": __version__})

    return router


def _operator_router() -> APIRouter:
    """Platform-operator endpoints, authenticated by ENTREPOT_OPERATOR_TOKEN, not by a tenant key."""
    router = APIRouter(include_in_schema=False)

    @router.get("/metrics")
    def metrics(request: Request) -> Response:
        expected = get_settings().operator_token
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
            return problems.problem(403, "Operators only",
                                    "send the operator token (ENTREPOT_OPERATOR_TOKEN) as a Bearer token",
                                    "operator_only")
        from entrepot.integration.metrics import render

        body, content_type = render()
        return Response(body, media_type=content_type)

    return router


@contextlib.asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    yield
    # The async connections of the by-id reads (api.reads) belong to this event loop.
    await close_read_pools()


def create_app() -> FastAPI:
    configure_logging()
    load_all_models()
    app = FastAPI(
        lifespan=_lifespan,
        title="Entrepot API",
        version=__version__,
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=None,
        redoc_url=None,
        description="ERP for distribution businesses. Auth: `Authorization: Bearer <api key>`.",
    )
    problems.install(app)
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(RequestIdMiddleware)

    app.include_router(_health_router(), prefix=API_PREFIX)
    app.include_router(_health_router(), include_in_schema=False)
    app.include_router(_operator_router())
    for domain in DOMAINS:
        try:
            module = importlib.import_module(f"entrepot.{domain}.routes")
        except ModuleNotFoundError as exc:
            if not f"entrepot.{domain}.routes".startswith(exc.name or "?"):
                raise
            continue
        app.include_router(module.router, prefix=API_PREFIX)
        _route_by_first_segment(app.router.routes[-1])

    import swagger_ui_bundle

    assets = Path(swagger_ui_bundle.swagger_ui_path)
    app.mount(f"{API_PREFIX}/docs-assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get(f"{API_PREFIX}/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=f"{API_PREFIX}/openapi.json",
            title="Entrepot API",
            swagger_js_url=f"{API_PREFIX}/docs-assets/swagger-ui-bundle.js",
            swagger_css_url=f"{API_PREFIX}/docs-assets/swagger-ui.css",
            swagger_favicon_url=f"{API_PREFIX}/docs-assets/favicon-32x32.png",
        )

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        # No back-office pages yet: the front door is the API reference.
        return RedirectResponse(f"{API_PREFIX}/docs")

    try:
        web = importlib.import_module("entrepot.web.pages")
        web.mount(app)
    except ModuleNotFoundError as exc:
        if not "entrepot.web.pages".startswith(exc.name or "?"):
            raise
    return app
