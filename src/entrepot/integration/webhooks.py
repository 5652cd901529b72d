"""Webhook endpoints (per tenant), Standard Webhooks signing, and the receiver's check.

Receivers verify a delivery with `verify(payload, headers, secret)` (or any
Standard Webhooks library): the signature is `v1,<base64 HMAC-SHA256>` of
`{webhook-id}.{webhook-timestamp}.{body}` keyed by the base64-decoded secret;
during a rotation the header carries one signature per valid secret,
space-separated.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from standardwebhooks import Webhook, WebhookVerificationError

from entrepot.db.audit_trail import audit
from entrepot.db.settings import get_settings
from entrepot.db.uow import UnitOfWork
from entrepot.integration import secrets
from entrepot.integration.catalog import known_event_types
from entrepot.integration.events import (
    WebhookEndpointCreated,
    WebhookEndpointDeleted,
    WebhookEndpointSecretRotated,
    WebhookEndpointUpdated,
)
from entrepot.integration.models import WebhookEndpoint, WebhookMessage
from entrepot.integration.outbox import record_event
from entrepot.kernel import clock
from entrepot.kernel.errors import NotFound, invalid
from entrepot.kernel.ids import new_id

ROTATION_GRACE = timedelta(hours=24)
ENDPOINT_DELETED = "the endpoint was deleted"
MAX_RATE_LIMIT = 100_000

__all__ = [
    "IssuedEndpoint", "WebhookVerificationError", "create_endpoint", "delete_endpoint", "get_endpoint",
    "rotate_secret", "sign", "signing_secrets", "update_endpoint", "verify",
]


# --- receiving side -------------------------------------------------------------------------------


def verify(payload: bytes | str, headers: Mapping[str, str], secret: str) -> Any:
    """Check a delivery's signature and timestamp (±5 min); returns the parsed JSON event.

    Raises `WebhookVerificationError` when the headers are missing, the
    timestamp is stale, or no signature matches `secret`.
    """
    return Webhook(secret).verify(payload, dict(headers))


# --- sending side ---------------------------------------------------------------------------------


def sign(message_id: str, payload: str, secret_list: list[str], at: float | None = None) -> dict[str, str]:
    """Standard Webhooks headers for `payload`, one signature per secret.

    The timestamp is wall-clock time (not the simulated clock): receivers
    compare it to their own clock.
    """
    moment = datetime.fromtimestamp(int(at if at is not None else time.time()), tz=UTC)
    signatures = " ".join(_signer(s).sign(message_id, moment, payload) for s in secret_list)
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": "Entrepot-Webhooks/1",
    }


@functools.lru_cache(maxsize=1024)
def _signer(secret: str) -> Webhook:
    """One signer per secret: it decodes the secret once, not once per delivery."""
    return Webhook(secret)


def signing_secrets(endpoint: WebhookEndpoint, now: datetime | None = None) -> list[str]:
    """The current secret, plus the previous one while its 24 h grace lasts."""
    now = now or clock.now()
    found = [secrets.open_sealed(endpoint.sealed_secret)]
    if (endpoint.sealed_previous_secret and endpoint.previous_secret_expires_at
            and endpoint.previous_secret_expires_at > now):
        found.append(secrets.open_sealed(endpoint.sealed_previous_secret))
    return found


# --- target safety --------------------------------------------------------------------------------

_resolved: dict[str, tuple[float, bool]] = {}


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                or ip.is_reserved or ip.is_unspecified)


def target_refusal(url: str) -> str | None:
    """Why `url` may not receive webhooks, or None when it may."""
    refusal, host, port = _url_refusal(url)
    if refusal or get_settings().webhook_allow_private:
        return refusal
    cached = _resolved.get(host)
    if cached and time.monotonic() - cached[0] < 60:
        return None if cached[1] else "resolves to a private, loopback or link-local address"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return "host does not resolve"
    public = bool(infos) and all(_is_public(str(info[4][0])) for info in infos)
    _resolved[host] = (time.monotonic(), public)
    return None if public else "resolves to a private, loopback or link-local address"


def vetted_without_lookup(url: str) -> bool:
    """`target_refusal(url)` answers now without resolving the host (a lookup may block for
    seconds): private targets are allowed, or the host was resolved less than 50 s ago (it is
    looked up again after 60 s)."""
    if get_settings().webhook_allow_private:
        return True
    cached = _resolved.get(_url_refusal(url)[1])
    return cached is not None and time.monotonic() - cached[0] < 50


@functools.lru_cache(maxsize=4096)
def _url_refusal(url: str) -> tuple[str | None, str, int]:
    """What the URL alone refuses, and its host and port (checked once per URL: the sender
    asks before every delivery, and endpoints are few)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "not a valid URL", "", 0
    if parts.scheme not in ("http", "https") or not host:
        return "must be an http or https URL with a host", "", 0
    if parts.username or parts.password:
        return "must not carry credentials", host, 0
    return None, host, port or (443 if parts.scheme == "https" else 80)


# --- endpoint management --------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedEndpoint:
    endpoint: WebhookEndpoint
    secret: str


def _check_url(url: str) -> str:
    url = url.strip()
    if len(url) > 2000:
        raise invalid("url", "at most 2000 characters", "max_length")
    reason = target_refusal(url)
    if reason:
        raise invalid("url", reason, "webhook_target")
    return url


def _check_types(event_types: list[str]) -> list[str]:
    if not event_types:
        raise invalid("event_types", "list at least one event type, or '*' for all", "min_items")
    known = known_event_types()
    cleaned: list[str] = []
    for i, name in enumerate(event_types):
        if not isinstance(name, str) or not name.strip():
            raise invalid(f"event_types[{i}]", "must be an event type name", "event_type")
        name = name.strip()
        if "*" not in name and name not in known and any(k.rpartition(".v")[0] == name for k in known):
            # A type named without its version ("invoice.posted") subscribes to every version of it;
            # stored as the pattern that says so ("X.v[0-9]*": not X.voided.v1), which the endpoint shows back.
            name += ".v[0-9]*"
        if "*" in name:
            if not any(fnmatchcase(k, name) for k in known) and name != "*":
                raise invalid(f"event_types[{i}]", f"{name} matches no event type", "event_type")
        elif name not in known:
            raise invalid(f"event_types[{i}]", f"unknown event type {name}", "event_type")
        if name not in cleaned:
            cleaned.append(name)
    return cleaned


def _check_rate(rate_limit: int | None) -> int | None:
    if rate_limit is not None and not 1 <= rate_limit <= MAX_RATE_LIMIT:
        raise invalid("rate_limit", f"deliveries per second, between 1 and {MAX_RATE_LIMIT}", "range")
    return rate_limit


def subscribes(endpoint: WebhookEndpoint, event_type: str) -> bool:
    return any(fnmatchcase(event_type, pattern) for pattern in endpoint.event_types)


def _snapshot(endpoint: WebhookEndpoint) -> dict[str, Any]:
    return {"url": endpoint.url, "event_types": list(endpoint.event_types), "description": endpoint.description,
            "enabled": endpoint.enabled, "rate_limit": endpoint.rate_limit,
            "disabled_reason": endpoint.disabled_reason}


def create_endpoint(
    uow: UnitOfWork,
    *,
    url: str,
    event_types: list[str],
    description: str = "",
    enabled: bool = True,
    rate_limit: int | None = None,
) -> IssuedEndpoint:
    """Register a webhook endpoint; the returned secret is the only time it is readable."""
    secret = secrets.new_secret()
    endpoint = WebhookEndpoint(
        id=new_id(), url=_check_url(url), event_types=_check_types(event_types),
        description=description, enabled=enabled, rate_limit=_check_rate(rate_limit),
        sealed_secret=secrets.seal(secret),
    )
    uow.session.add(endpoint)
    uow.session.flush()
    audit(uow, "webhook_endpoint.create", "webhook_endpoint", endpoint.id, after=_snapshot(endpoint))
    record_event(uow, WebhookEndpointCreated(endpoint_id=str(endpoint.id), url=endpoint.url,
                                             event_types=list(endpoint.event_types)),
                 subject=f"webhook_endpoint/{endpoint.id}")
    return IssuedEndpoint(endpoint, secret)


def get_endpoint(uow: UnitOfWork, endpoint_id: uuid.UUID | str) -> WebhookEndpoint:
    try:
        key = uuid.UUID(str(endpoint_id))
    except ValueError as exc:
        raise NotFound("webhook endpoint", endpoint_id) from exc
    endpoint = uow.session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.id == key, WebhookEndpoint.deleted_at.is_(None))
    )
    if endpoint is None:
        raise NotFound("webhook endpoint", endpoint_id)
    return endpoint


def list_endpoints_query() -> Any:
    return select(WebhookEndpoint).where(WebhookEndpoint.deleted_at.is_(None))


def update_endpoint(uow: UnitOfWork, endpoint: WebhookEndpoint, changes: Mapping[str, Any]) -> WebhookEndpoint:
    """Apply the given fields (url, event_types, description, enabled, rate_limit)."""
    before = _snapshot(endpoint)
    if "url" in changes:
        endpoint.url = _check_url(changes["url"])
    if "event_types" in changes:
        endpoint.event_types = _check_types(changes["event_types"])
    if "description" in changes:
        endpoint.description = changes["description"] or ""
    if "rate_limit" in changes:
        endpoint.rate_limit = _check_rate(changes["rate_limit"])
    if "enabled" in changes:
        endpoint.enabled = bool(changes["enabled"])
        if endpoint.enabled:
            # re-enabled by a person: start the failure window afresh
            endpoint.disabled_reason = None
            endpoint.failing_since = None
    uow.session.flush()
    audit(uow, "webhook_endpoint.update", "webhook_endpoint", endpoint.id, before=before, after=_snapshot(endpoint))
    record_event(uow, WebhookEndpointUpdated(endpoint_id=str(endpoint.id), url=endpoint.url,
                                             event_types=list(endpoint.event_types), enabled=endpoint.enabled),
                 subject=f"webhook_endpoint/{endpoint.id}")
    return endpoint


def delete_endpoint(uow: UnitOfWork, endpoint: WebhookEndpoint) -> None:
    """Stop deliveries and hide the endpoint; its delivery history is kept.

    Its waiting messages are dead-lettered: nothing will ever send them, and left pending they
    would count as a backlog (integration health, the SLA alarm) for ever."""
    before = _snapshot(endpoint)
    now = clock.now()
    endpoint.deleted_at = now
    endpoint.enabled = False
    endpoint.disabled_reason = "deleted"
    uow.session.execute(
        update(WebhookMessage)
        .where(WebhookMessage.tenant_id == endpoint.tenant_id, WebhookMessage.endpoint_id == endpoint.id,
               WebhookMessage.status == "pending")
        .values(status="dead", dead_at=now, last_error=ENDPOINT_DELETED)
        .execution_options(synchronize_session=False))
    uow.session.flush()
    audit(uow, "webhook_endpoint.delete", "webhook_endpoint", endpoint.id, before=before)
    record_event(uow, WebhookEndpointDeleted(endpoint_id=str(endpoint.id)), subject=f"webhook_endpoint/{endpoint.id}")


def rotate_secret(uow: UnitOfWork, endpoint: WebhookEndpoint) -> IssuedEndpoint:
    """Issue a new secret; deliveries carry both signatures for 24 h."""
    secret = secrets.new_secret()
    endpoint.sealed_previous_secret = endpoint.sealed_secret
    endpoint.previous_secret_expires_at = clock.now() + ROTATION_GRACE
    endpoint.sealed_secret = secrets.seal(secret)
    uow.session.flush()
    audit(uow, "webhook_endpoint.rotate_secret", "webhook_endpoint", endpoint.id,
          after={"previous_secret_expires_at": endpoint.previous_secret_expires_at.isoformat()})
    record_event(uow, WebhookEndpointSecretRotated(
        endpoint_id=str(endpoint.id),
        previous_valid_until=endpoint.previous_secret_expires_at.isoformat()),
        subject=f"webhook_endpoint/{endpoint.id}")
    return IssuedEndpoint(endpoint, secret)
