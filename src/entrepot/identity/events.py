from __future__ import annotations

from typing import Any

from entrepot.kernel.events import EventData, event_type


@event_type("tenant.created.v1")
class TenantCreated(EventData):
    """A tenant was provisioned."""

    tenant_id: str
    slug: str
    name: str
    parent_id: str | None = None
    template: str | None = None


@event_type("tenant.settings_changed.v1")
class TenantSettingsChanged(EventData):
    """A tenant's business settings changed: the names that changed, and every setting's value now."""

    tenant_id: str
    changed: list[str]
    settings: dict[str, Any]


@event_type("api_key.created.v1")
class ApiKeyCreated(EventData):
    """An API key was issued (the secret is never in the event)."""

    api_key_id: str
    prefix: str
    role: str
    expires_at: str | None = None  # ISO 8601, UTC; None: until revoked


@event_type("api_key.revoked.v1")
class ApiKeyRevoked(EventData):
    """An API key was revoked."""

    api_key_id: str
    prefix: str


@event_type("user.created.v1")
class UserCreated(EventData):
    """A user was added to the tenant."""

    user_id: str
    email: str
    role: str
