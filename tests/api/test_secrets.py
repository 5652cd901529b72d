"""Secrets are shown once, in the answer that issues them, and nowhere else: not in the audit
trail, the events, the logs, nor in the clear in the database."""

from __future__ import annotations

import logging

from sqlalchemy import text

from tests.factories.integration import endpoint_body


def test_issued_secrets_appear_in_no_audit_entry_event_log_or_table(api, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    # given an API key, a webhook endpoint's secret and its rotation, and an inbound connector's secret
    key = api.post("/api-keys", json={"role": "viewer", "name": "web shop"}).json()
    endpoint = api.post("/webhook-endpoints", json=endpoint_body(enabled=False)).json()
    rotated = api.post(f"/webhook-endpoints/{endpoint['id']}/rotate-secret").json()
    connector = api.client.put("/api/v1/inbound-connectors/carrier", headers=api.headers).json()
    # and the key used, refused a permission, revoked, then refused
    headers = {"Authorization": f"Bearer {key['key']}"}
    assert api.client.get("/api/v1/tenant", headers=headers).status_code == 200
    assert api.client.post("/api/v1/products", headers=headers, json={}).status_code == 403
    assert api.post(f"/api-keys/{key['id']}/revoke").status_code == 200
    assert api.client.get("/api/v1/tenant", headers=headers).status_code == 401
    secrets = {"api key": key["key"], "its random part": key["key"].split("_", 2)[2],
               "webhook secret": endpoint["secret"], "rotated webhook secret": rotated["secret"],
               "inbound connector secret": connector["secret"]}
    # when everything the tenant and the operator can read is gathered
    audit = api.get("/audit-entries", params={"limit": 200}).text
    events = api.get("/events", params={"limit": 200}).text
    captured = capsys.readouterr()
    logs = captured.out + captured.err + caplog.text
    with api.tenant.uow(readonly=True) as uow:
        tables = " ".join(str(row) for table in ("audit_entries", "outbox_events", "api_keys", "webhook_endpoints",
                                                 "inbound_connectors")
                          for row in uow.session.execute(text(f"SELECT * FROM {table}")).all())
    # then no secret is in any of it
    assert "api_key.revoke" in audit and "api_key.created.v1" in events and "status=401" in logs  # read them all
    for name, secret in secrets.items():
        for where, content in {"audit": audit, "events": events, "logs": logs, "tables": tables}.items():
            assert secret not in content, f"the {name} is in the {where}"
