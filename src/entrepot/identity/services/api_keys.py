"""API keys: high-entropy secrets, shown once, matched by a keyed hash.

A key looks like `ent_<prefix>_<secret>`. We store HMAC-SHA256(server secret,
key): one fast hash per request is enough for a 256-bit random secret (argon2
is for low-entropy passwords and would cost milliseconds per request), and a
database leak alone does not reveal usable keys.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, update

from entrepot.db.settings import get_settings
from entrepot.db.uow import UnitOfWork, platform_uow
from entrepot.identity.events import ApiKeyCreated, ApiKeyRevoked
from entrepot.identity.models import ApiKey, Role, Tenant
from entrepot.identity.permissions import permissions_for_builtin, require_grantable
from entrepot.identity.services.audit import audit, snapshot
from entrepot.integration.outbox import record_event
from entrepot.kernel import clock
from entrepot.kernel.context import Actor
from entrepot.kernel.errors import NotFound, Unauthenticated, invalid

KEY_PREFIX = "ent"
LAST_USED_RESOLUTION_S = 60.0
# Authenticated keys are remembered per process for a few seconds, so a request
# costs no extra transaction. A revocation clears this process's cache at once;
# other API processes honour it within AUTH_CACHE_TTL_S.
AUTH_CACHE_TTL_S = 5.0
# A key in use is checked again in the background this long after its last check, so its
# entry is renewed before it expires and requests never queue behind the lookup.
AUTH_REFRESH_AFTER_S = 4.0


def hash_key(key: str) -> str:
    # hmac.digest: the same HMAC in one C call (it runs on every request, on the event loop).
    return hmac.digest(get_settings().secret_key.encode(), key.encode(), hashlib.sha256).hex()


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    secret: str  # the whole key, shown once


def resolve_role_permissions(uow: UnitOfWork, role: str) -> frozenset[str]:
    builtin = permissions_for_builtin(role)
    if builtin is not None:
        return builtin
    custom = uow.session.scalar(select(Role).where(Role.name == role))
    if custom is None:
        raise invalid("role", f"unknown role {role!r}", "exists")
    return frozenset(custom.permissions)


NAME_MAX = 200  # api_keys.name


def create_api_key(uow: UnitOfWork, *, role: str = "admin", name: str = "",
                   expires_at: datetime | None = None) -> IssuedKey:
    """A new key acting with `role`; `expires_at` (optional, in the future) ends it without a revoke."""
    if len(name) > NAME_MAX:  # the API's schema says so first; the command line only here
        raise invalid("name", f"at most {NAME_MAX} characters", "length")
    if expires_at is not None and expires_at.tzinfo is not None:
        try:  # stored in UTC: a time at the calendar's end in a zone behind it has no UTC time
            expires_at = expires_at.astimezone(UTC)
        except OverflowError as exc:
            raise invalid("expires_at", "a time in the future, with its time zone, by the end of year 9999 UTC",
                          "range") from exc
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= clock.now()):
        raise invalid("expires_at", "a time in the future, with its time zone", "future")
    require_grantable(uow.actor, resolve_role_permissions(uow, role))
    prefix = secrets.token_hex(4)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey(name=name, prefix=prefix, key_hash=hash_key(key), role=role, expires_at=expires_at)
    uow.session.add(api_key)
    uow.session.flush()
    audit(uow, "api_key.create", "api_key", api_key.id, after=snapshot(api_key))
    record_event(
        uow,
        ApiKeyCreated(api_key_id=str(api_key.id), prefix=prefix, role=role,
                      expires_at=expires_at.isoformat() if expires_at else None),
        subject=f"api_key/{api_key.id}",
    )
    return IssuedKey(api_key, key)


def revoke_api_key(uow: UnitOfWork, key_ref: str) -> ApiKey:
    """Revoke by id or by prefix."""
    query = select(ApiKey)
    try:
        query = query.where(ApiKey.id == uuid.UUID(key_ref))
    except ValueError:
        query = query.where(ApiKey.prefix == key_ref)
    api_key = uow.session.scalar(query)
    if api_key is None:
        raise NotFound("api key", key_ref)
    # as for issuing one: a key allowed to manage keys revokes only those holding no more than it does
    # (else it could lock the tenant's admins out)
    require_grantable(uow.actor, resolve_role_permissions(uow, api_key.role))
    before = snapshot(api_key)
    if api_key.revoked_at is None:
        uow.after_commit.append(clear_auth_cache)
        api_key.revoked_at = clock.now()
        uow.session.flush()
        audit(uow, "api_key.revoke", "api_key", api_key.id, before=before, after=snapshot(api_key))
        record_event(
            uow,
            ApiKeyRevoked(api_key_id=str(api_key.id), prefix=api_key.prefix),
            subject=f"api_key/{api_key.id}",
        )
    return api_key


def list_api_keys(uow: UnitOfWork) -> list[ApiKey]:
    return list(uow.session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


# --- authentication -------------------------------------------------------

_last_used_lock = threading.Lock()
_last_used_written: dict[uuid.UUID, float] = {}


def _touch_last_used(key_id: uuid.UUID) -> None:
    """Record use at most once a minute per key and process: no write per request.

    In its own short write transaction, not the caller's read-only one: on SQLite a
    read transaction that then writes fails ("database is locked", a 503) when another
    process wrote since it began, e.g. another API process touching the same key."""
    now = time.monotonic()
    with _last_used_lock:
        if now - _last_used_written.get(key_id, -1e9) < LAST_USED_RESOLUTION_S:
            return
        _last_used_written[key_id] = now
    with platform_uow() as writer:
        writer.session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=clock.now()))
        writer.commit()


# key hash -> (when it was checked, its actor, when it expires): an expiry is checked on every hit, so a
# cached key is refused from the moment it expires, not a cache lifetime later
_auth_cache: dict[str, tuple[float, Actor, datetime | None]] = {}
_auth_cache_lock = threading.Lock()


def clear_auth_cache() -> None:
    with _auth_cache_lock:
        _auth_cache.clear()


def cached_actor(key: str, request_id: str | None = None) -> Actor | None:
    """The actor of a key authenticated in the last few seconds by this process, if any."""
    return cached_actor_and_age(key, request_id)[0]


def cached_actor_and_age(key: str, request_id: str | None = None) -> tuple[Actor | None, float]:
    """`cached_actor`, with how many seconds ago the key was checked against the database
    (so a caller can refresh it ahead of expiry)."""
    digest = hash_key(key)
    with _auth_cache_lock:
        hit = _auth_cache.get(digest)
    if hit is None:
        return None, 0.0
    age = time.monotonic() - hit[0]
    if age > AUTH_CACHE_TTL_S or (hit[2] is not None and hit[2] <= clock.now()):
        return None, age
    actor = hit[1]
    return Actor(actor.kind, actor.id, actor.tenant_id, actor.role, actor.permissions, request_id, actor.label), age


def authenticate_api_key(platform: UnitOfWork, key: str, request_id: str | None = None) -> Actor:
    """Match a presented key to its tenant and role. Runs in a platform unit of work."""
    if not key.startswith(KEY_PREFIX + "_") or len(key) > 200:
        raise Unauthenticated("invalid API key")
    digest = hash_key(key)
    row = platform.session.execute(
        select(ApiKey.id, ApiKey.tenant_id, ApiKey.role, ApiKey.revoked_at, ApiKey.expires_at, ApiKey.prefix,
               Tenant.status)
        .join(Tenant, Tenant.id == ApiKey.tenant_id)
        .where(ApiKey.key_hash == digest)
    ).one_or_none()
    if row is None or row.revoked_at is not None:
        raise Unauthenticated("invalid or revoked API key")
    if row.expires_at is not None and row.expires_at <= clock.now():
        raise Unauthenticated("expired API key")
    if row.status != "active":
        raise Unauthenticated("tenant is not active")
    platform.session.info["tenant_id"] = row.tenant_id
    permissions = resolve_role_permissions(platform, row.role)
    _touch_last_used(row.id)
    actor = Actor(
        kind="api_key",
        id=row.id,
        tenant_id=row.tenant_id,
        role=row.role,
        permissions=permissions,
        request_id=request_id,
        label=row.prefix,
    )
    with _auth_cache_lock:
        if len(_auth_cache) > 10_000:
            _auth_cache.clear()
        _auth_cache[digest] = (time.monotonic(), actor, row.expires_at)
    return actor
