"""RFC 9457 problem+json for every error, and no internals in a 500."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from entrepot.db.engine import TenancyViolation
from entrepot.kernel.errors import DomainError, RateLimited

log = structlog.get_logger("entrepot.api")
PROBLEM = "application/problem+json"
TYPE_BASE = "https://entrepot.dev/problems/"


# What every problem says of itself; an error's extra members never replace them.
MEMBERS = frozenset({"type", "title", "status", "detail", "code"})


def problem(
    status: int, title: str, detail: str, code: str, headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body = {"type": TYPE_BASE + code, "title": title, "status": status, "detail": detail,
            "code": code}
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field_path(loc: tuple[Any, ...]) -> str:
    """A location as the services name fields: `lines[0].quantity`, `event_types[1]`.

    Pydantic gives ("body", "lines", 0, "quantity"); the services' own checks (and the docs)
    say `lines[0].quantity`, so a client branching on `errors[].field` sees one name for
    one field whether the value was malformed (pydantic) or refused by a rule (service)."""
    path = ""
    for part in loc:
        if part in ("body", "query", "path", "header") and not path:
            continue
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path or "body"


def _has_nul(text: str) -> bool:
    return "\x00" in text


def _has_lone_surrogate(text: str) -> bool:
    # json.loads joins an escaped pair (\\ud83d\\ude42) into one character; what is left in
    # U+D800..U+DFFF is a lone half, which no UTF-8 database, log or response can encode
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _text_path(value: Any, bad: Any = _has_nul, path: tuple[Any, ...] = ()) -> tuple[Any, ...] | None:
    """Where in a JSON document a string (or key) is `bad` (None when nowhere)."""
    if isinstance(value, str):
        return path if bad(value) else None
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and bad(key):
            return (*path, key.encode("utf-8", "replace").decode("utf-8"))
        found = _text_path(item, bad, (*path, key))
        if found is not None:
            return found
    return None


def _nul_problem(field: str) -> JSONResponse:
    message = "must not contain a NUL character"
    return problem(422, "Validation failed", f"{field}: {message}", "validation_failed",
                   errors=[{"field": field, "message": message, "rule": "no_nul"}])


def _surrogate_problem(field: str) -> JSONResponse:
    message = "must be valid Unicode text (a lone UTF-16 surrogate escape is not a character)"
    return problem(422, "Validation failed", f"{field}: {message}", "validation_failed",
                   errors=[{"field": field, "message": message, "rule": "unicode"}])


class RefuseNulCharacters:
    """A 422 naming the field for text holding NUL (U+0000), before any route sees it.

    PostgreSQL text cannot store NUL, so such a value would otherwise fail deep in a
    write as a database error; SQLite would store it and the two backends would differ.
    A JSON string holding a lone UTF-16 surrogate (\\ud800 without its pair) is refused
    the same way: neither database driver, nor the log, nor a problem echoing the value
    can encode it as UTF-8, so it was a 500 wherever no schema constraint caught it first.
    Only requests whose query or JSON body mentions NUL (or a surrogate) at all are
    inspected further."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope.get("path", "") or b"%00" in scope.get("raw_path", b""):
            await _nul_problem("path")(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if b"%00" in query or b"\x00" in query:
            for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
                if "\x00" in name or "\x00" in value:
                    await _nul_problem(name.replace("\x00", "") or "query")(scope, receive, send)
                    return
        content_type = dict(scope.get("headers", [])).get(b"content-type", b"")
        if scope["method"] not in ("POST", "PUT", "PATCH") or b"json" not in content_type:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        # a lone surrogate arrives escaped ("\\ud800") or as its raw bytes (ED A0 80..ED BF BF),
        # which json.loads lets through; checked before NUL, whose answer names the field
        if b"\\u0000" in body or b"\\ud" in body or b"\\uD" in body or b"\xed" in body:
            try:
                document = json.loads(body)
            except (ValueError, RecursionError):
                document = None  # not JSON: the route answers 400 for that
            for bad, refuse in ((_has_lone_surrogate, _surrogate_problem), (_has_nul, _nul_problem)):
                where = _text_path(document, bad)
                if where is not None:
                    await refuse(_field_path(where))(scope, receive, send)
                    return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


def install(app: FastAPI) -> None:
    app.add_middleware(RefuseNulCharacters)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, exc: DomainError) -> JSONResponse:
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        if exc.status == 401:
            headers = {"WWW-Authenticate": "Bearer"}
        # An extra member named like one of the problem's own (a customer's `status`, say) must not
        # replace it, nor collide with problem()'s arguments: it is dropped, and the error stays a 4xx.
        extra = {k: v for k, v in exc.problem_extra().items() if k not in MEMBERS and k != "headers"}
        return problem(exc.status, exc.title, exc.detail, exc.code, headers, **extra)

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

    @app.exception_handler(StaleDataError)
    async def _stale(request: Request, exc: StaleDataError) -> JSONResponse:
        # Two changes of one record at once: the second wrote against the version the first replaced
        # (the ORM's version check). Nothing of it was written; read the record again and retry.
        log.info("stale_write", path=request.url.path, error=str(exc)[:300])
        return problem(409, "Changed by another request", "the record was changed by another request while "
                       "this one ran; nothing was written: read it again and retry", "concurrent_change")

    @app.exception_handler(IntegrityError)
    async def _integrity(request: Request, exc: IntegrityError) -> JSONResponse:
        log.info("integrity_error", error=str(exc.orig)[:300])
        return problem(409, "Conflict", "the change conflicts with existing data "
                       "(a duplicate key or a missing reference)", "conflict")

    @app.exception_handler(DataError)
    async def _data(request: Request, exc: DataError) -> JSONResponse:
        # The last wall: input checks should have named the field before the database saw the value.
        log.warning("data_error", path=request.url.path, error=str(exc.orig)[:300])
        return problem(422, "Validation failed", "a value does not fit its database column "
                       "(too long, out of range or not storable)", "invalid_value")

    @app.exception_handler(OverflowError)
    async def _overflow(request: Request, exc: OverflowError) -> JSONResponse:
        # SQLite stores exact decimals as scaled 64-bit integers; a value past that is refused here.
        log.warning("overflow_error", path=request.url.path, error=str(exc)[:300])
        return problem(422, "Validation failed", "a number is too large to store", "invalid_value")

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
