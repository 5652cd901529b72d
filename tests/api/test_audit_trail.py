"""Walks the route table: every write through the API leaves audit entries naming the key that
made it and the request's id, and a refused one writes nothing, on every write route."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from entrepot.identity.models import AuditEntry
from tests.api.test_permissions import NOT_RECORDS, PARAM, WRITE_ROUTES, _counts
from tests.factories import EXAMPLE_BODIES, FACTORIES, NOT_TENANT_RECORDS


@pytest.mark.parametrize("method,path,permission", WRITE_ROUTES, ids=[f"{m} {p}" for m, p, _ in WRITE_ROUTES])
def test_a_write_is_audited_as_its_key_and_request(api, method, path, permission):
    # given the records the path names and the route's example body
    values = {param: NOT_RECORDS[param] if param in NOT_TENANT_RECORDS else FACTORIES[param](api)
              for param in PARAM.findall(path)}
    url = PARAM.sub(lambda m: values[m.group(1)], path)
    body_of = EXAMPLE_BODIES.get((method, path))
    body = body_of(api) if body_of else {}
    prefix = api.key.split("_")[1]
    key_id = next(k["id"] for k in api.get("/api-keys").json()["items"] if k["prefix"] == prefix)
    request_id = uuid.uuid4().hex
    before = _counts(api.tenant)
    # when the tenant's admin key calls it
    r = api.client.request(method, url, headers={**api.headers, "X-Request-ID": request_id},
                           json=body if method != "DELETE" else None)
    # then a refusal wrote nothing, and a write (rows or events changed) left audit entries as this call
    changed = {name: n - before[name] for name, n in _counts(api.tenant).items() if n != before[name]}
    if r.status_code >= 300:
        assert changed == {}, f"{method} {path} answered {r.status_code} but wrote {changed}"
        return
    if not changed:
        return  # nothing to do (an empty PATCH, a run with nothing to invoice)
    assert changed.get("audit_entries", 0) > 0, f"{method} {path} wrote {changed} without an audit entry"
    with api.tenant.uow(readonly=True) as uow:
        entries = uow.session.scalars(select(AuditEntry).order_by(AuditEntry.seq.desc())
                                      .limit(changed["audit_entries"])).all()
    assert {(e.actor, e.request_id) for e in entries} == {(f"api_key:{key_id}", request_id)}
