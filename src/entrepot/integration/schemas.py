from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class WebhookEndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(max_length=2000)
    event_types: list[str] = Field(default_factory=lambda: ["*"], description="Event types, or ['*'] for all")
    description: str = Field(default="", max_length=500)
    enabled: bool = True
    rate_limit: int | None = Field(default=None, description="Deliveries per second at most")


class WebhookEndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = Field(default=None, max_length=2000)
    event_types: list[str] | None = None
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None
    rate_limit: int | None = None


class WebhookEndpointRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    rate_limit: int | None
    disabled_reason: str | None
    failing_since: datetime | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class WebhookEndpointIssued(WebhookEndpointRead):
    secret: str = Field(description="Signing secret (whsec_…). Shown once; store it now.")


class RecoverRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    since: datetime = Field(description="Replay dead-lettered messages created at or after this time")


class RecoverResult(BaseModel):
    recovered: int


class WebhookMessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    subject: str
    status: str
    attempt_count: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None


class WebhookAttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    message_id: uuid.UUID
    attempted_at: datetime
    succeeded: bool
    status_code: int | None
    latency_ms: int
    response_body: str | None
    error: str | None


class EventTypeRead(BaseModel):
    type: str
    description: str
    schema_: dict[str, Any] = Field(alias="schema", serialization_alias="schema")

    model_config = ConfigDict(populate_by_name=True)


class InboundConnectorIssued(BaseModel):
    connector: str
    secret: str = Field(description="Signing secret the connector signs callbacks with. Shown once.")


class InboundReceipt(BaseModel):
    id: uuid.UUID
    message_id: str
    duplicate: bool
