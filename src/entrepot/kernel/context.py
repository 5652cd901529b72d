"""Who is acting, for which tenant: carried from the credential to the services."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache

from entrepot.kernel.errors import PermissionDenied


@dataclass(frozen=True)
class Actor:
    """The principal behind a change: a user, an API key, or the system itself."""

    kind: str  # "user" | "api_key" | "system"
    id: uuid.UUID | None
    tenant_id: uuid.UUID | None
    role: str = "admin"
    permissions: frozenset[str] = field(default_factory=frozenset)
    request_id: str | None = None
    label: str = ""

    def can(self, permission: str) -> bool:
        return any(fnmatchcase(permission, pattern) for pattern in self.permissions)

    def require(self, permission: str) -> None:
        if not self.can(permission):
            raise PermissionDenied(permission)

    @property
    def ref(self) -> str:
        return f"{self.kind}:{self.id}" if self.id else self.kind


_EVERYTHING = frozenset({"*"})


# What started this process, when it is a command line (`cli tenant create by ann@host`): the system's
# writes carry it as their request id, so an audit entry says which command, run by whom, made it.
_process_origin: list[str | None] = [None]


def set_process_origin(origin: str | None) -> None:
    _process_origin[0] = origin


def system_actor(tenant_id: uuid.UUID | None, request_id: str | None = None) -> Actor:
    return _system_actor(tenant_id, request_id or _process_origin[0])


@lru_cache(maxsize=4096)
def _system_actor(tenant_id: uuid.UUID | None, request_id: str | None) -> Actor:
    # Actors are immutable, and the worker and CLI act as the system in the same few tenants
    # for every unit of work: one actor per tenant, not one per transaction.
    return Actor("system", None, tenant_id, "system", _EVERYTHING, request_id, "system")
