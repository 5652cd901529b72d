from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model

from entrepot.identity.services.tenant_settings import SETTINGS


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = "admin"
    name: str = Field(default="", max_length=200)
    expires_at: AwareDatetime | None = Field(default=None, description="Refused from then on (default: never, "
                                                                       "until revoked); with a time zone")


class ApiKeyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    prefix: str
    role: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None = None
    last_used_at: datetime | None


class ApiKeyIssued(ApiKeyRead):
    key: str = Field(description="The key itself. Shown once; store it now.")


class TenantRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    slug: str
    name: str
    parent_id: uuid.UUID | None
    status: str
    currency: str
    template: str | None


class AuditEntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    seq: int
    at: datetime
    actor: str
    action: str
    entity_type: str
    entity_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    hash: str


class RoleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    permissions: list[str]
    description: str = Field(default="", max_length=500)


class RoleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    permissions: list[str] | None = None
    description: str | None = Field(default=None, max_length=500)


class RoleRead(BaseModel):
    name: str
    permissions: list[str]
    builtin: bool
    description: str = ""


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str
    name: str
    password: str = Field(min_length=10, max_length=200)
    role: str = "viewer"


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    email: str
    name: str
    role: str
    active: bool
    created_at: datetime


def _settings_model(name: str, *, update: bool) -> type[BaseModel]:
    # Made from the one declaration of the settings (identity/services/tenant_settings.py), which
    # also checks the values: the schema fixes the names and documents them.
    fields: dict[str, Any] = {
        key: (Any, Field(default=None if update else setting.default, description=setting.description))
        for key, setting in SETTINGS.items()
    }
    # An update passes unknown names on to the settings check, which names them beside any bad value
    # (one 422 for every fault); the schema still says that only these names exist.
    config = ConfigDict(extra="allow", json_schema_extra={"additionalProperties": False}) if update else ConfigDict()
    return create_model(name, __config__=config, **fields)


TenantSettingsRead = _settings_model("TenantSettingsRead", update=False)
TenantSettingsUpdate = _settings_model("TenantSettingsUpdate", update=True)
TenantSettingsUpdate.__doc__ = ("The settings to change; the others stay as they are. null resets a setting to its "
                                "default.")
