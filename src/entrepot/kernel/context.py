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


@lru_cache(maxsize=4096)
def system_actor(tenant_id: uuid.UUID | None, request_id: str | None = None) -> Actor:
    # Actors are immutable, and the worker and CLI act as the system in the same few tenants
    # for every unit of work: one actor per tenant, not one per transaction.
    return Actor("system", None, tenant_id, "system", _EVERYTHING, request_id, "system")
