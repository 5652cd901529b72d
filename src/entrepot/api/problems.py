"""RFC 9457 problem+json for every error, and no internals in a 500."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from entrepot.db.engine import TenancyViolation
from entrepot.kernel.errors import DomainError, RateLimited

log = structlog.get_logger("entrepot.api")
PROBLEM = "application/problem+json"
TYPE_BASE = "https://entrepot.dev/problems/"


def problem(
    status: int, title: str, detail: str, code: str, headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {"type": TYPE_BASE + code, "title": title, "status": status, "detail": detail,
            "code": code}
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field_path(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def install(app: FastAPI) -> None:
    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        if exc.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        return problem(exc.status, exc.title, exc.detail, exc.code, headers, **exc.problem_extra())

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            if err.get("type") == "json_invalid":
                return problem(400, "Malformed JSON", "the request body is not valid JSON",
                               "malformed_json")
            msg = str(err.get("msg", "invalid"))
            ctx = err.get("ctx") or {}
            if "error" in ctx and msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            errors.append({"field": _field_path(tuple(err.get("loc", ()))), "message": msg,
                           "rule": str(err.get("type", "invalid"))})
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return problem(422, "Validation failed", detail, "validation_failed", errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not found", 405: "Method not allowed", 401: "Authentication required"}
        return problem(exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail),
                       "http_" + str(exc.status_code), dict(exc.headers or {}) or None)

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        log.info("integrity_error", error=str(exc.orig)[:300])
        return problem(409, "Conflict", "the change conflicts with existing data "
                       "(a duplicate key or a missing reference)", "conflict")

    @app.exception_handler(OperationalError)
    async def _operational(request: Request, exc: OperationalError) -> JSONResponse:
        log.warning("database_unavailable", error=str(exc.orig)[:300])
        return problem(503, "Service unavailable", "the database is busy or unavailable; retry",
                       "database_unavailable", {"Retry-After": "1"})

    @app.exception_handler(TenancyViolation)
    async def _tenancy(request: Request, exc: TenancyViolation) -> JSONResponse:
        log.error("tenancy_violation", error=str(exc))
        return problem(404, "Not found", "not found", "not_found")

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected_error", path=request.url.path)
        rid = getattr(request.state, "request_id", None)
        return problem(500, "Internal error", f"an unexpected error occurred (request {rid})",
                       "internal_error")
