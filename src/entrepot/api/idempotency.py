"""Idempotency-Key for POSTs, as a pure ASGI middleware.

Same key + same request (method, path, query, and body: for JSON its content, not its key
order or spacing; for an upload, not its multipart boundary) from the same API key: the
first response is replayed. Same key + another request, or from another API key of the
tenant: 422 (a replay would hand one key's answer, perhaps a new API key or signing secret,
to a caller that may not make the request). Same key while the first is still running: 409.
Records live 24 h per tenant. A 5xx or a 429 (rate limited) is not stored, so the client's
retry runs again.

The stored response is sealed (db.sealing): it may carry what is shown only once (a new API
key, a webhook signing secret) or a customer's data, and a database dump must not reveal it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

import structlog
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from entrepot.db.infrastructure import IdempotencyRecord
from entrepot.db.sealing import Unreadable, open_bytes, seal_bytes
from entrepot.db.uow import UnitOfWork, platform_uow
from entrepot.identity.services.api_keys import authenticate_api_key
from entrepot.kernel import clock
from entrepot.kernel.context import system_actor
from entrepot.kernel.errors import DomainError

log = structlog.get_logger("entrepot.idempotency")
TTL = timedelta(hours=24)
REPLAYED_HEADERS = ("content-type", "location", "etag")
_PURPOSE = b"entrepot/idempotency-response"
# Before a stored response: it marks it sealed. A response stored plain by an earlier version
# (JSON, or empty) never starts with a NUL byte, and is replayed as it is until it expires.
_SEALED = b"\x00sealed1"


def _problem(status: int, title: str, detail: str, code: str, *, rule: str | None = None) -> tuple[int, bytes]:
    body: dict[str, Any] = {"type": "https://entrepot.dev/problems/" + code, "title": title, "status": status,
                            "detail": detail, "code": code}
    if rule is not None:  # a 422: the field at fault is the header, as for any validation error
        body["errors"] = [{"field": "Idempotency-Key", "message": detail, "rule": rule}]
    return status, json.dumps(body).encode()


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        # Header names arrive lower-cased (ASGI); only these two are decoded, on every POST.
        raw_key = content_type = b""
        token = ""
        for name, value in scope["headers"]:
            if name == b"idempotency-key":
                raw_key = value
            elif name == b"authorization":
                token = value.decode("latin-1")  # as Starlette reads it: a bad key is the route's 401
            elif name == b"content-type":
                content_type = value
        if not raw_key or not token.lower().startswith("bearer "):
            await self.app(scope, receive, send)
            return
        try:
            key = raw_key.decode()
        except UnicodeDecodeError:
            await _send_simple(send, *_problem(422, "Validation failed",
                                               "Idempotency-Key: must be UTF-8 text (a UUID is fine)",
                                               "validation_failed", rule="format"))
            return
        if len(key) > 255:
            await _send_simple(send, *_problem(422, "Validation failed",
                                               "Idempotency-Key: at most 255 characters",
                                               "validation_failed", rule="length"))
            return
        body = await _read_body(receive)
        request_line = scope["method"].encode() + b" " + scope["path"].encode() + b"\n"

        from starlette.concurrency import run_in_threadpool

        try:
            actor = await run_in_threadpool(_actor_of, token[7:].strip())
        except DomainError:
            actor = None
        if actor is None:  # let the route answer 401
            await self.app(scope, _replay_receive(body), send)
            return
        tenant_id = actor.tenant_id
        canonical = _canonical(body, content_type)
        # The API key and the query (`?dry_run=true` is another request) are part of the request:
        # another key of the tenant never gets this key's stored answer (a new API key, a signing
        # secret), whatever the permissions behind it.
        request_hash = hashlib.sha256(
            request_line + b"api-key " + str(actor.id).encode() + b"\n" + _query(scope) + b"\n"
            + canonical).hexdigest()
        # Records written before the API key was part of the request hold the hash of the request
        # alone (those before bodies were compared by content, of the bytes as sent); a retry of
        # such a request must still replay until they expire.
        legacy_hashes = (hashlib.sha256(request_line + _canonical(body)).hexdigest(),
                         hashlib.sha256(request_line + body).hexdigest())

        outcome = await run_in_threadpool(_claim, tenant_id, key, scope, request_hash, legacy_hashes)
        if outcome is not None:
            status, resp_headers, resp_body = outcome
            await send({"type": "http.response.start", "status": status,
                        "headers": [(k.encode(), v.encode()) for k, v in resp_headers.items()]})
            await send({"type": "http.response.body", "body": resp_body})
            return

        captured: dict[str, Any] = {"status": 500, "headers": [], "body": bytearray(), "stored": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = message.get("headers", [])
            elif message["type"] == "http.response.body":
                captured["body"].extend(message.get("body", b""))
                if not message.get("more_body", False):
                    # Store before the client can see the response, so a retry sent the
                    # moment it arrives finds the completed record, not "in progress".
                    await run_in_threadpool(_finish, tenant_id, key, captured)
                    captured["stored"] = True
            await send(message)

        try:
            await self.app(scope, _replay_receive(body), capture)
        finally:
            if not captured["stored"]:
                await run_in_threadpool(_finish, tenant_id, key, captured)


def _actor_of(token: str) -> Any:
    with platform_uow(readonly=True) as platform:
        return authenticate_api_key(platform, token)


def _claim(tenant_id: Any, key: str, scope: Scope, request_hash: str,  # type: ignore[no-untyped-def]
           legacy_hashes: tuple[str, ...]):
    """Insert an in-progress record, or return the response to send instead."""
    now = clock.now()
    with UnitOfWork(system_actor(tenant_id)) as uow:
        existing = uow.session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.key == key))
        if existing is not None and existing.expires_at <= now:
            uow.session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == existing.id))
            existing = None
        if existing is None:
            uow.session.add(IdempotencyRecord(
                key=key, method=scope["method"], path=scope["path"], request_hash=request_hash,
                state="in_progress", expires_at=now + TTL))
            try:
                uow.session.flush()
                uow.session.commit()
                uow.committed = True
                return None
            except IntegrityError:
                uow.session.rollback()
                existing = uow.session.scalar(
                    select(IdempotencyRecord).where(IdempotencyRecord.key == key))
                if existing is None:
                    return _as_response(*_problem(409, "Conflict", "retry the request", "conflict"))
        if existing.request_hash != request_hash and existing.request_hash not in legacy_hashes:
            return _as_response(*_problem(
                422, "Idempotency-Key reused",
                "this Idempotency-Key was used with a different request or by another API key",
                "idempotency_key_reused",
                rule="reused"))
        if existing.state != "completed":
            status, headers, problem = _as_response(*_problem(
                409, "Request in progress",
                "a request with this Idempotency-Key is still being processed", "idempotency_in_progress"))
            return status, {**headers, "retry-after": "1"}, problem
        try:
            body = _opened(existing.response_body or b"")
        except Unreadable:
            return _as_response(*_problem(
                409, "Stored response unreadable",
                "the response to this Idempotency-Key was sealed with another ENTREPOT_SECRET_KEY; use a new key",
                "idempotency_record_unreadable"))
        headers = dict(existing.response_headers or {})
        headers["idempotent-replayed"] = "true"
        return existing.response_status, headers, body


def _opened(stored: bytes) -> bytes:
    return open_bytes(stored[len(_SEALED):], _PURPOSE) if stored.startswith(_SEALED) else stored


def _as_response(status: int, body: bytes) -> tuple[int, dict[str, str], bytes]:
    return status, {"content-type": "application/problem+json"}, body


def _finish(tenant_id: Any, key: str, captured: dict[str, Any]) -> None:
    with UnitOfWork(system_actor(tenant_id)) as uow:
        record = uow.session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.key == key))
        if record is None:
            return
        if captured["status"] >= 500 or captured["status"] == 429:
            # nothing was done and the answer says "retry": the retry must run, not replay the refusal
            uow.session.delete(record)
        else:
            record.state = "completed"
            record.response_status = captured["status"]
            record.response_headers = {
                k.decode().lower(): v.decode() for k, v in captured["headers"]
                if k.decode().lower() in REPLAYED_HEADERS
            }
            record.response_body = _SEALED + seal_bytes(bytes(captured["body"]), _PURPOSE)
        uow.session.commit()
        uow.committed = True


def _query(scope: Scope) -> bytes:
    """The query string, its parameters in a fixed order (a client may order them differently)."""
    return urlencode(sorted(parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                                      keep_blank_values=True))).encode()


def _canonical(body: bytes, content_type: bytes = b"") -> bytes:
    """The request body as the same request whatever its serialisation: a JSON body with its
    keys sorted and no spacing (clients order keys and space differently; the request is the
    same), a multipart upload with its boundary (random per request: a retry of the same upload
    has another) set aside, anything else as sent."""
    if not body:
        return body
    if content_type.lower().startswith(b"multipart/"):
        boundary = _boundary(content_type)
        return body.replace(boundary, b"<boundary>") if boundary else body
    try:
        return json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, RecursionError):
        return body  # not JSON (or nested past what the parser takes): the bytes are the request


def _boundary(content_type: bytes) -> bytes:
    for param in content_type.split(b";")[1:]:
        name, _, value = param.strip().partition(b"=")
        if name.strip().lower() == b"boundary":
            return value.strip().strip(b'"')
    return b""


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay_receive(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


async def _send_simple(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/problem+json")]})
    await send({"type": "http.response.body", "body": body})
