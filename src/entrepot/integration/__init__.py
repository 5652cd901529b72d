"""Integration: the outbox, canonical events, webhooks, the event stream, connectors."""
