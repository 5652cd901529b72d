"""Integration permissions (domain.noun.verb)."""

EVENT_READ = "integration.event.read"
EVENT_TYPE_READ = "integration.event_type.read"
WEBHOOK_READ = "integration.webhook.read"
WEBHOOK_MANAGE = "integration.webhook.manage"
HEALTH_READ = "integration.health.read"
INBOUND_MANAGE = "integration.inbound.manage"
INBOUND_RECEIVE = "integration.inbound.receive"
