"""The worker: outbox → reactions, webhooks, NATS; the scheduler. See runtime.py."""
