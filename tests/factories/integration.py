"""Integration records through the API: webhook endpoints and their messages."""

from __future__ import annotations

from typing import Any

from tests.factories import example_body, factory

CLOSED_PORT_URL = "http://127.0.0.1:9/hook"  # discard port: nothing listens, deliveries fail fast


def endpoint_body(url: str = CLOSED_PORT_URL, **extra: Any) -> dict[str, Any]:
    return {"url": url, "event_types": ["*"], "description": "test endpoint", **extra}


@factory("endpoint_id")
def make_webhook_endpoint(api) -> str:  # type: ignore[no-untyped-def]
    r = api.post("/webhook-endpoints", json=endpoint_body(enabled=False))
    assert r.status_code == 201, r.text
    return r.json()["id"]


@factory("message_id")
def make_webhook_message(api) -> str:  # type: ignore[no-untyped-def]
    """An endpoint, an event after it, and the worker's fan-out of that event to it."""
    from entrepot.db.uow import platform_uow
    from entrepot.integration import delivery

    r = api.post("/webhook-endpoints", json=endpoint_body())
    assert r.status_code == 201, r.text
    endpoint_id = r.json()["id"]
    assert api.patch(f"/webhook-endpoints/{endpoint_id}", json={"description": "changed"}).status_code == 200
    with platform_uow(url=api.tenant.url) as uow:
        while delivery.fan_out(uow.session):
            pass
        uow.commit()
    # stop deliveries: the message only needs to exist
    assert api.patch(f"/webhook-endpoints/{endpoint_id}", json={"enabled": False}).status_code == 200
    messages = api.get(f"/webhook-endpoints/{endpoint_id}/messages").json()["items"]
    assert messages, "the fan-out made no message"
    return messages[0]["id"]


@example_body("POST", "/api/v1/webhook-endpoints/{endpoint_id}/recover")
def recover_body(api) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {"since": "2020-01-01T00:00:00Z"}


@example_body("PATCH", "/api/v1/webhook-endpoints/{endpoint_id}")
def update_body(api) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {"description": "renamed"}
