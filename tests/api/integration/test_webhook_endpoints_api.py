"""Webhook endpoint management through the API."""

from __future__ import annotations

import base64
import uuid

from tests.api.conftest import key_for
from tests.factories.integration import endpoint_body


def test_create_returns_the_secret_once(api):
    # when an endpoint is created
    r = api.post("/webhook-endpoints", json=endpoint_body(event_types=["webhook_endpoint.updated.v1"]))
    # then the secret is a whsec_ of at least 24 random bytes, and only in this response
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["secret"].startswith("whsec_")
    assert len(base64.b64decode(body["secret"].removeprefix("whsec_"))) >= 24
    assert body["event_types"] == ["webhook_endpoint.updated.v1"]
    again = api.get(f"/webhook-endpoints/{body['id']}")
    assert again.status_code == 200
    assert "secret" not in again.json()
    assert all("secret" not in e for e in api.get("/webhook-endpoints").json()["items"])


def test_a_type_named_without_its_version_subscribes_to_every_version(api):
    from entrepot.integration.webhooks import subscribes

    # when an endpoint names a type without its version
    r = api.post("/webhook-endpoints", json=endpoint_body(event_types=["webhook_endpoint.updated"]))
    # then it is stored as the pattern of all its versions, which matches them and nothing else
    assert r.status_code == 201, r.text
    assert r.json()["event_types"] == ["webhook_endpoint.updated.v[0-9]*"]

    class Endpoint:
        event_types = r.json()["event_types"]

    assert subscribes(Endpoint, "webhook_endpoint.updated.v1")
    assert subscribes(Endpoint, "webhook_endpoint.updated.v2")
    assert not subscribes(Endpoint, "webhook_endpoint.updated_twice.v1")
    assert not subscribes(Endpoint, "webhook_endpoint.updated.voided.v1")
    assert not subscribes(Endpoint, "webhook_endpoint.created.v1")
    # while a name that is no type, with or without a version, is still refused
    for unknown in ("webhook_endpoint.vanished", "webhook_endpoint"):
        bad = api.post("/webhook-endpoints", json=endpoint_body(event_types=[unknown]))
        assert bad.status_code == 422, (unknown, bad.text)


def test_the_secret_is_not_stored_in_clear(api):
    # given an endpoint
    body = api.post("/webhook-endpoints", json=endpoint_body()).json()
    # when its row is read from the database
    from sqlalchemy import select

    from entrepot.integration.models import WebhookEndpoint

    with api.tenant.uow(readonly=True) as uow:
        row = uow.session.scalar(select(WebhookEndpoint).where(WebhookEndpoint.id == uuid.UUID(body["id"])))
    # then the secret is not in it
    assert body["secret"] not in (row.sealed_secret or "")
    assert body["secret"].removeprefix("whsec_") not in (row.sealed_secret or "")


def test_bad_input_names_the_field_and_changes_nothing(api):
    before = len(api.get("/webhook-endpoints").json()["items"])
    cases = [
        ({"url": "ftp://example.com/x", "event_types": ["*"]}, "url"),
        ({"url": "http://127.0.0.1:1/x", "event_types": ["no_such.event.v1"]}, "event_types[0]"),
        ({"url": "http://127.0.0.1:1/x", "event_types": []}, "event_types"),
        ({"url": "http://127.0.0.1:1/x", "event_types": ["*"], "rate_limit": 0}, "rate_limit"),
    ]
    for body, field in cases:
        r = api.post("/webhook-endpoints", json=body)
        assert r.status_code == 422, (body, r.text)
        assert field in [e["field"] for e in r.json()["errors"]] or field in r.text
    assert api.post("/webhook-endpoints", json={"url": "http://x", "bogus": 1}).status_code == 422
    assert len(api.get("/webhook-endpoints").json()["items"]) == before


def test_private_targets_are_refused_unless_allowed(api, monkeypatch):
    # given a deployment that does not allow private targets
    from entrepot.db.settings import reset_settings

    monkeypatch.setenv("ENTREPOT_WEBHOOK_ALLOW_PRIVATE", "0")
    reset_settings()
    try:
        # when endpoints on loopback, private and link-local addresses are registered
        for url in ("http://127.0.0.1:8080/x", "http://10.1.2.3/x", "http://169.254.169.254/latest",
                    "http://[::1]/x", "http://localhost/x"):
            r = api.post("/webhook-endpoints", json=endpoint_body(url))
            # then each is refused
            assert r.status_code == 422, (url, r.text)
            assert r.json()["errors"][0]["rule"] == "webhook_target"
    finally:
        monkeypatch.setenv("ENTREPOT_WEBHOOK_ALLOW_PRIVATE", "1")
        reset_settings()


def test_update_with_etag_and_delete(api):
    # given an endpoint
    created = api.post("/webhook-endpoints", json=endpoint_body())
    endpoint_id = created.json()["id"]
    etag = created.headers["etag"]
    # when it is updated with the current ETag, then with the stale one
    ok = api.patch(f"/webhook-endpoints/{endpoint_id}", json={"enabled": False, "rate_limit": 5},
                   headers={"If-Match": etag})
    stale = api.patch(f"/webhook-endpoints/{endpoint_id}", json={"description": "late"},
                      headers={"If-Match": etag})
    # then the first applies and the second is 412
    assert ok.status_code == 200, ok.text
    assert ok.json()["enabled"] is False and ok.json()["rate_limit"] == 5
    assert stale.status_code == 412
    # and deleting hides it
    assert api.delete(f"/webhook-endpoints/{endpoint_id}").status_code == 204
    assert api.get(f"/webhook-endpoints/{endpoint_id}").status_code == 404
    assert endpoint_id not in [e["id"] for e in api.get("/webhook-endpoints").json()["items"]]


def test_changes_are_audited_and_emit_events(api):
    # given an endpoint created, updated, rotated and deleted
    endpoint_id = api.post("/webhook-endpoints", json=endpoint_body()).json()["id"]
    api.patch(f"/webhook-endpoints/{endpoint_id}", json={"description": "d2"})
    rotated = api.post(f"/webhook-endpoints/{endpoint_id}/rotate-secret")
    # (the rotation answers with the new version's ETag, which a change then sends)
    assert rotated.headers["etag"] == api.get(f"/webhook-endpoints/{endpoint_id}").headers["etag"]
    api.delete(f"/webhook-endpoints/{endpoint_id}")
    # then each left an audit entry and an event
    assert rotated.status_code == 200 and rotated.json()["secret"].startswith("whsec_")
    assert rotated.json()["previous_secret_expires_at"] is not None
    audit = api.get("/audit-entries", params={"entity_type": "webhook_endpoint", "entity_id": endpoint_id})
    actions = [a["action"] for a in audit.json()["items"]]
    assert actions == ["webhook_endpoint.create", "webhook_endpoint.update", "webhook_endpoint.rotate_secret",
                       "webhook_endpoint.delete"]
    from tests.api.integration.test_events_api import settled_events

    types = [e["type"] for e in settled_events(api, {"subject": f"webhook_endpoint/{endpoint_id}"}, want=4)]
    assert types == ["webhook_endpoint.created.v1", "webhook_endpoint.updated.v1",
                     "webhook_endpoint.secret_rotated.v1", "webhook_endpoint.deleted.v1"]


def test_a_viewer_can_read_but_not_manage_nor_scrape_metrics(api):
    # given a viewer key
    viewer = {"Authorization": f"Bearer {key_for(api.tenant, 'viewer')}"}
    # then it can read endpoints and health, but not create endpoints or read platform metrics
    assert api.client.get("/api/v1/webhook-endpoints", headers=viewer).status_code == 200
    assert api.client.get("/api/v1/integration/health", headers=viewer).status_code == 200
    assert api.client.post("/api/v1/webhook-endpoints", headers=viewer, json=endpoint_body()).status_code == 403
    # platform metrics span tenants: not even a tenant admin reads them (operator token only)
    assert api.client.get("/metrics", headers=viewer).status_code == 403
    assert api.client.get("/metrics", headers=api.headers).status_code == 403


def test_idempotency_key_replays_the_creation(api):
    # when the same creation is posted twice with one Idempotency-Key
    headers = {"Idempotency-Key": "create-endpoint-1"}
    first = api.post("/webhook-endpoints", json=endpoint_body(), headers=headers)
    second = api.post("/webhook-endpoints", json=endpoint_body(), headers=headers)
    # then one endpoint exists and the first response is replayed
    assert first.status_code == 201
    assert second.json()["id"] == first.json()["id"]
