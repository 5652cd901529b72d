"""Inbound connector callbacks (signed, deduplicated) and the integration health endpoint."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from standardwebhooks import Webhook


def _signed(secret: str, message_id: str, body: dict) -> tuple[bytes, dict[str, str]]:
    payload = json.dumps(body)
    now = datetime.now(UTC)
    return payload.encode(), {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, payload),
        "content-type": "application/json",
    }


def test_a_signed_callback_is_accepted_once(api):
    # given a connector with its secret
    r = api.put("/inbound-connectors/carrier-x")
    assert r.status_code == 200, r.text
    secret = r.json()["secret"]
    body, headers = _signed(secret, "msg_1", {"tracking": "1Z999", "status": "delivered"})
    # when the same callback arrives twice
    first = api.post("/inbound/carrier-x", content=body, headers=headers)
    second = api.post("/inbound/carrier-x", content=body, headers=headers)
    # then it is stored once and the repeat is answered as a duplicate
    assert first.status_code == 202, first.text
    assert second.status_code == 200 and second.json()["duplicate"] is True
    assert second.json()["id"] == first.json()["id"]
    from tests.api.integration.test_events_api import settled_events

    received = settled_events(api, {"type": "inbound_message.received.v1"})
    assert [e["data"]["message_id"] for e in received] == ["msg_1"]


def test_a_bad_signature_is_refused_and_stores_nothing(api):
    # given a connector
    secret = api.put("/inbound-connectors/pay-y").json()["secret"]
    body, headers = _signed(secret, "msg_2", {"amount": "10.00"})
    # when the body was tampered with, or the signature is missing
    tampered = api.post("/inbound/pay-y", content=body.replace(b"10.00", b"99.00"), headers=headers)
    unsigned = api.post("/inbound/pay-y", content=body, headers={"content-type": "application/json"})
    unknown = api.post("/inbound/nobody", content=body, headers=headers)
    # then each is refused, and no event was recorded
    assert tampered.status_code == 401
    assert tampered.headers["content-type"].startswith("application/problem+json")
    assert unsigned.status_code == 401
    assert unknown.status_code == 404
    assert api.get("/events", params={"type": "inbound_message.received.v1"}).json()["items"] == []


def test_bad_connector_names_are_422(api):
    assert api.put("/inbound-connectors/Bad Name!").status_code in (404, 422)
    assert api.put("/inbound-connectors/x").status_code == 422


def test_integration_health_has_its_sections(api):
    r = api.get("/integration/health")
    assert r.status_code == 200
    body = r.json()
    assert set(body) >= {"outbox", "webhooks", "nats"}
    assert {"backlog", "oldest_pending_age_seconds"} <= set(body["outbox"])
    assert {"pending", "dead_letters", "endpoints", "oldest_pending_age_seconds"} <= set(body["webhooks"])
