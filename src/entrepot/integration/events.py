"""Events the integration layer itself emits."""

from __future__ import annotations

from entrepot.kernel.events import EventData, event_type


@event_type("webhook_endpoint.created.v1")
class WebhookEndpointCreated(EventData):
    """A webhook endpoint was registered (its secret is never in the event)."""

    endpoint_id: str
    url: str
    event_types: list[str]


@event_type("webhook_endpoint.updated.v1")
class WebhookEndpointUpdated(EventData):
    """A webhook endpoint's settings changed."""

    endpoint_id: str
    url: str
    event_types: list[str]
    enabled: bool


@event_type("webhook_endpoint.deleted.v1")
class WebhookEndpointDeleted(EventData):
    """A webhook endpoint was removed; nothing more is delivered to it."""

    endpoint_id: str


@event_type("webhook_endpoint.secret_rotated.v1")
class WebhookEndpointSecretRotated(EventData):
    """A new signing secret was issued; the previous one stays valid until `previous_valid_until`."""

    endpoint_id: str
    previous_valid_until: str


@event_type("webhook.endpoint.disabled.v1")
class WebhookEndpointDisabled(EventData):
    """The worker disabled an endpoint (410 Gone, or failing continuously for 5 days)."""

    endpoint_id: str
    url: str
    reason: str


@event_type("webhook.message.exhausted.v1")
class WebhookMessageExhausted(EventData):
    """A message failed every attempt of the retry schedule and moved to the dead-letter state."""

    endpoint_id: str
    message_id: str
    event_id: str
    event_type: str
    attempts: int
    last_status_code: int | None = None
    last_error: str | None = None


@event_type("integration.sla_breached.v1")
class IntegrationSlaBreached(EventData):
    """Deliveries are older than the integration SLA allows."""

    oldest_pending_age_seconds: int
    threshold_seconds: int
    pending_messages: int


@event_type("inbound_message.received.v1")
class InboundMessageReceived(EventData):
    """A verified connector callback was accepted (first time its message id was seen)."""

    connector: str
    message_id: str
    inbound_message_id: str
