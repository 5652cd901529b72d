"""The API kernel: auth, problem+json, idempotency, request ids, rate limits, docs."""

import json
import threading

from tests.api.conftest import Api, key_for


def test_health_needs_no_auth(client):
    r = client.get("/api/v1/health")
    assert r.status_code == 200
    assert r.json()["database"] == "up"


def test_health_without_a_database_is_503_problem_json(client, monkeypatch, tmp_path):
    # given a database that cannot be opened (a file in a directory that does not exist)
    from sqlalchemy import create_engine

    from entrepot.api import app as app_module

    gone = create_engine(f"sqlite:///{tmp_path / 'missing' / 'entrepot.db'}")
    monkeypatch.setattr(app_module, "get_engine", lambda: gone)
    # then
    r = client.get("/api/v1/health")
    assert r.status_code == 503
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 503 and r.json()["database"] == "down"
    assert {"type", "title", "detail"} <= set(r.json())


def test_no_or_bad_key_is_401_problem_json(client):
    r = client.get("/api/v1/tenant")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert {"type", "title", "status", "detail"} <= set(body)
    r = client.get("/api/v1/tenant", headers={"Authorization": "Bearer ent_nope_nope"})
    assert r.status_code == 401


def test_revoked_key_is_401(api):
    r = api.post("/api-keys", json={"role": "viewer"})
    key = r.json()["key"]
    api.post(f"/api-keys/{r.json()['id']}/revoke")
    assert api.client.get("/api/v1/tenant", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_a_key_is_refused_from_the_time_it_expires(api):
    from datetime import timedelta

    from entrepot.kernel import clock

    # given a viewer key that expires in an hour (a time in the past, or without a zone, is refused)
    in_an_hour = clock.now() + timedelta(hours=1)
    for bad in ((clock.now() - timedelta(seconds=1)).isoformat(), in_an_hour.replace(tzinfo=None).isoformat()):
        r = api.post("/api-keys", json={"role": "viewer", "expires_at": bad})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "expires_at", r.text
    r = api.post("/api-keys", json={"role": "viewer", "name": "auditor, this week",
                                    "expires_at": in_an_hour.isoformat()})
    assert r.status_code == 201, r.text
    key, key_id = r.json()["key"], r.json()["id"]
    assert r.json()["expires_at"] is not None
    as_key = {"Authorization": f"Bearer {key}"}
    # it works until then (and is checked again on a cached hit)
    assert api.client.get("/api/v1/tenant", headers=as_key).status_code == 200
    # when the hour has passed, it is refused, saying why
    with clock.frozen_at(in_an_hour):
        r = api.client.get("/api/v1/tenant", headers=as_key)
        assert r.status_code == 401 and "expired" in r.json()["detail"], r.text
    # and its issue said when it ends
    [created] = [e for e in api.get("/events", params={"subject": f"api_key/{key_id}"}).json()["items"]
                 if e["type"] == "api_key.created.v1"]
    assert created["data"]["expires_at"].startswith(in_an_hour.isoformat()[:19])


def test_an_expiry_past_the_last_representable_time_is_422_not_500(api):
    # given an expiry at the very end of the calendar, written in a zone behind UTC (in UTC, past year 9999)
    for late in ("9999-12-31T23:00:00-05:00", "9999-12-31T23:59:59-00:01"):
        # when a key is issued with it
        r = api.post("/api-keys", json={"role": "viewer", "expires_at": late})
        # then it is refused naming the field, and no key is made
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "expires_at", r.text
    assert len(api.get("/api-keys").json()["items"]) == 1  # the test's own key


def test_missing_permission_is_403_naming_it(api):
    viewer = key_for(api.tenant, role="viewer")
    r = api.client.post("/api/v1/api-keys", json={}, headers={"Authorization": f"Bearer {viewer}"})
    assert r.status_code == 403
    assert r.json()["permission"] == "identity.api_key.manage"


def test_every_response_has_a_request_id(api):
    r = api.get("/tenant", headers={"X-Request-ID": "abc123"})
    assert r.headers["x-request-id"] == "abc123"
    assert api.get("/tenant").headers["x-request-id"]


def test_validation_errors_name_the_field(api):
    r = api.post("/api-keys", json={"role": "admin", "bogus": 1})
    assert r.status_code == 422
    assert any(e["field"] == "bogus" for e in r.json()["errors"])


def test_malformed_json_is_400(api):
    r = api.client.post("/api/v1/api-keys", content=b"{nope",
                        headers={**api.headers, "content-type": "application/json"})
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"


def test_idempotency_replays_the_first_response(api):
    headers = {"Idempotency-Key": "create-key-1"}
    first = api.post("/api-keys", json={"role": "viewer"}, headers=headers)
    second = api.post("/api-keys", json={"role": "viewer"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers.get("idempotent-replayed") == "true"
    listed = api.get("/api-keys").json()["items"]
    assert sum(1 for k in listed if k["role"] == "viewer") == 1


def test_idempotency_key_with_another_body_is_422(api):
    headers = {"Idempotency-Key": "create-key-2"}
    assert api.post("/api-keys", json={"role": "viewer"}, headers=headers).status_code == 201
    r = api.post("/api-keys", json={"role": "sales"}, headers=headers)
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert [(e["field"], e["rule"]) for e in r.json()["errors"]] == [("Idempotency-Key", "reused")]


def test_an_idempotency_key_over_255_characters_is_a_validation_error_naming_the_header(api):
    r = api.post("/api-keys", json={"role": "viewer"}, headers={"Idempotency-Key": "k" * 256})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert [(e["field"], e["rule"]) for e in r.json()["errors"]] == [("Idempotency-Key", "length")]
    assert all(k["role"] != "viewer" for k in api.get("/api-keys").json()["items"])  # nothing done


def _raw_post(app, path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, bytes]:
    """A POST straight to the ASGI app with header bytes as given (a test client re-encodes them)."""
    import asyncio

    sent: list[dict] = []
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
             "headers": [(b"content-type", b"application/json"), *headers],
             "client": ("127.0.0.1", 1), "server": ("testserver", 80)}

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_an_idempotency_key_that_is_not_utf8_is_a_validation_error_not_a_500(app, api):
    # given a key of raw bytes that do not decode as UTF-8
    status, body = _raw_post(app, "/api/v1/warehouses",
                             [(b"authorization", f"Bearer {api.key}".encode()), (b"idempotency-key", b"\xff\xfek")],
                             b'{"code": "RAWKEY", "name": "Raw"}')
    # then it is refused naming the header, and nothing is written
    assert status == 422, body
    assert [(e["field"], e["rule"]) for e in json.loads(body)["errors"]] == [("Idempotency-Key", "format")]
    assert not [w for w in api.get("/warehouses?limit=200").json()["items"] if w["code"] == "RAWKEY"]


def test_a_bearer_token_that_is_not_utf8_is_401_with_an_idempotency_key(app, api):
    status, body = _raw_post(app, "/api/v1/warehouses",
                             [(b"authorization", b"Bearer \xff\xfe"), (b"idempotency-key", b"k")],
                             b'{"code": "RAWTOKEN", "name": "Raw"}')
    assert status == 401, body


def test_idempotency_replays_the_same_json_however_it_is_serialised(api):
    # given a request made with one key order and spacing
    headers = {"Idempotency-Key": "create-key-3", "Content-Type": "application/json"}
    first = api.post("/warehouses", content=b'{"code": "IDEM", "name": "Idempotent"}', headers=headers)
    assert first.status_code == 201, first.text
    # when the same content is sent again, keys reordered and without spaces
    second = api.post("/warehouses", content=b'{"name":"Idempotent","code":"IDEM"}', headers=headers)
    # then it is the same request: replayed, not refused
    assert second.status_code == 201, second.text
    assert second.headers.get("idempotent-replayed") == "true"
    assert second.json()["id"] == first.json()["id"]
    # while other content under the same key is still refused
    other = api.post("/warehouses", content=b'{"code":"IDEM","name":"Other"}', headers=headers)
    assert other.status_code == 422


def test_idempotency_takes_bodies_that_are_not_plain_json_without_a_500(api):
    # a lone surrogate escape, deep nesting, and bytes that are not JSON at all
    for n, body in enumerate((b'{"code": "\\ud800", "name": "x"}', b"[" * 100_000, b"not json")):
        r = api.post("/warehouses", content=body,
                     headers={"Idempotency-Key": f"odd-body-{n}", "Content-Type": "application/json"})
        assert r.status_code < 500, (n, r.status_code, r.text[:200])


def test_a_record_from_before_bodies_were_compared_by_content_still_replays(api):
    import hashlib

    from sqlalchemy import update

    from entrepot.db.infrastructure import IdempotencyRecord

    # given a request whose record holds the hash of the bytes as sent (the former rule)
    body = b'{"name": "Legacy", "code": "LEGACY"}'
    headers = {"Idempotency-Key": "legacy-key", "Content-Type": "application/json"}
    first = api.post("/warehouses", content=body, headers=headers)
    assert first.status_code == 201, first.text
    raw = hashlib.sha256(b"POST /api/v1/warehouses\n" + body).hexdigest()
    with api.tenant.uow() as uow:
        uow.session.execute(update(IdempotencyRecord).where(IdempotencyRecord.key == "legacy-key")
                            .values(request_hash=raw))
        uow.commit()
    # when the client retries with the same bytes
    again = api.post("/warehouses", content=body, headers=headers)
    # then it is replayed
    assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
    assert again.json()["id"] == first.json()["id"]


def _stored_response(api, key: str) -> bytes:
    from sqlalchemy import select

    from entrepot.db.infrastructure import IdempotencyRecord

    with api.tenant.uow() as uow:
        return uow.session.scalar(select(IdempotencyRecord.response_body).where(IdempotencyRecord.key == key))


def test_a_replayable_response_is_sealed_at_rest(api):
    # given a new API key and a webhook signing secret, each created with an Idempotency-Key
    key = api.post("/api-keys", json={"role": "viewer"}, headers={"Idempotency-Key": "sealed-key"})
    endpoint = api.post("/webhook-endpoints", json={"url": "https://hooks.example.com/in", "event_types": ["*"]},
                        headers={"Idempotency-Key": "sealed-endpoint"})
    assert (key.status_code, endpoint.status_code) == (201, 201), endpoint.text
    # then the stored responses do not hold them (a database dump does not reveal them)
    for idem, shown_once in (("sealed-key", key.json()["key"]), ("sealed-endpoint", endpoint.json()["secret"])):
        stored = _stored_response(api, idem)
        assert stored and shown_once.encode() not in stored and b'"id"' not in stored
        # and a retry still gets the first response, secret included
        again = api.post("/api-keys", json={"role": "viewer"}, headers={"Idempotency-Key": idem}) \
            if idem == "sealed-key" else \
            api.post("/webhook-endpoints", json={"url": "https://hooks.example.com/in", "event_types": ["*"]},
                     headers={"Idempotency-Key": idem})
        assert again.headers.get("idempotent-replayed") == "true"
        assert shown_once in again.text


def test_a_response_stored_plain_by_an_earlier_version_still_replays(api):
    from sqlalchemy import update

    from entrepot.db.infrastructure import IdempotencyRecord

    # given a record whose response was stored as it was sent (before responses were sealed)
    headers = {"Idempotency-Key": "plain-key"}
    first = api.post("/warehouses", json={"code": "PLAIN", "name": "Plain"}, headers=headers)
    with api.tenant.uow() as uow:
        uow.session.execute(update(IdempotencyRecord).where(IdempotencyRecord.key == "plain-key")
                            .values(response_body=first.content))
        uow.commit()
    # when the client retries, then the stored response is replayed as it is
    again = api.post("/warehouses", json={"code": "PLAIN", "name": "Plain"}, headers=headers)
    assert (again.status_code, again.json()) == (201, first.json())


def test_a_response_sealed_with_another_secret_key_is_a_409_not_a_rerun(api):
    from sqlalchemy import update

    from entrepot.db.infrastructure import IdempotencyRecord

    # given a stored response that the current ENTREPOT_SECRET_KEY cannot open (the key was changed)
    headers = {"Idempotency-Key": "rotated-key"}
    first = api.post("/warehouses", json={"code": "ROT", "name": "Rotated"}, headers=headers)
    tampered = bytearray(_stored_response(api, "rotated-key"))
    tampered[-1] ^= 0xFF
    with api.tenant.uow() as uow:
        uow.session.execute(update(IdempotencyRecord).where(IdempotencyRecord.key == "rotated-key")
                            .values(response_body=bytes(tampered)))
        uow.commit()
    # when the client retries, then it is told to use a new key, and the warehouse is not created twice
    again = api.post("/warehouses", json={"code": "ROT", "name": "Rotated"}, headers=headers)
    assert (again.status_code, again.json()["code"]) == (409, "idempotency_record_unreadable")
    assert [w["id"] for w in api.get("/warehouses?limit=200").json()["items"] if w["code"] == "ROT"] == \
        [first.json()["id"]]


def test_idempotency_keys_are_per_tenant(api, other_api):
    headers = {"Idempotency-Key": "shared-key"}
    a = api.post("/api-keys", json={"role": "viewer"}, headers=headers)
    b = other_api.post("/api-keys", json={"role": "viewer"}, headers=headers)
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


def test_another_api_key_of_the_tenant_never_gets_a_replay_of_the_first_answer(api):
    # given an admin key that created an API key with an Idempotency-Key
    headers = {"Idempotency-Key": "admin-only"}
    first = api.post("/api-keys", json={"role": "admin"}, headers=headers)
    assert first.status_code == 201, first.text
    # when a viewer key of the same tenant (which may not create keys) sends the same request
    viewer = {"Authorization": f"Bearer {key_for(api.tenant, role='viewer')}", **headers}
    r = api.client.post("/api/v1/api-keys", json={"role": "admin"}, headers=viewer)
    # then it is refused, and the new key's secret is not handed over
    assert (r.status_code, r.json()["code"]) == (422, "idempotency_key_reused")
    assert first.json()["key"] not in r.text
    # and the admin key's own retry still replays
    again = api.post("/api-keys", json={"role": "admin"}, headers=headers)
    assert again.headers.get("idempotent-replayed") == "true" and again.json()["id"] == first.json()["id"]


def test_concurrent_requests_with_one_key_run_once(api):
    results = []

    waits = []

    def go():
        r = api.post("/api-keys", json={"role": "viewer"}, headers={"Idempotency-Key": "race"})
        results.append(r.status_code)
        if r.status_code == 409:  # the first is still running (PostgreSQL; SQLite serialises them)
            waits.append(r.headers.get("retry-after"))

    threads = [threading.Thread(target=go) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count(201) >= 1
    assert set(results) <= {201, 409}
    assert set(waits) <= {"1"}
    listed = api.get("/api-keys").json()["items"]
    assert sum(1 for k in listed if k["role"] == "viewer") == 1


def test_rate_limit_answers_429_with_retry_after(api):
    from entrepot.api import deps

    with api.tenant.uow() as uow:
        from entrepot.identity.services.tenants import get_tenant

        get_tenant(uow, api.tenant.id).settings = {"rate_limit_per_minute": 3}
        uow.commit()
    deps._limits_cache.clear()
    codes = [api.get("/tenant").status_code for _ in range(5)]
    assert codes[:3] == [200, 200, 200]
    assert codes[3] == 429
    r = api.get("/tenant")
    assert int(r.headers["retry-after"]) >= 1


def test_openapi_and_offline_docs(client):
    spec = client.get("/api/v1/openapi.json").json()
    assert spec["info"]["title"] == "Entrepot API"
    page = client.get("/api/v1/docs").text
    assert "/api/v1/docs-assets/swagger-ui-bundle.js" in page
    assert "cdn" not in page.lower()
    assert client.get("/api/v1/docs-assets/swagger-ui-bundle.js").status_code == 200


def test_pagination_walks_every_item_once(api):
    for _ in range(5):
        api.post("/api-keys", json={"role": "viewer"})
    seen, cursor = [], None
    while True:
        page = api.get("/api-keys", params={"limit": 2, **({"cursor": cursor} if cursor else {})}).json()
        seen += [k["id"] for k in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 6  # five new keys and the test's own
    assert api.get("/api-keys", params={"cursor": "garbage!"}).status_code == 422


def test_a_tenant_defined_role_grants_exactly_its_patterns(api):
    # given a role that may manage API keys and nothing else
    r = api.post("/roles", json={"name": "key_keeper", "permissions": ["identity.api_key.*"]})
    assert r.status_code == 201, r.text
    key = key_for(api.tenant, role="key_keeper")
    headers = {"Authorization": f"Bearer {key}"}
    # then it may list keys but not read the tenant or create users
    assert api.client.get("/api/v1/api-keys", headers=headers).status_code == 200
    assert api.client.get("/api/v1/tenant", headers=headers).status_code == 403
    assert api.client.post("/api/v1/users", headers=headers, json={}).status_code in (403, 422)
    assert api.post("/roles", json={"name": "Bad Name", "permissions": ["x"]}).status_code == 422
    assert api.post("/roles", json={"name": "admin", "permissions": ["*"]}).status_code == 422


def test_a_tenant_defined_role_can_be_changed_and_its_keys_follow(api):
    # given a clerk role that reads products, and a key acting with it
    assert api.post("/roles", json={"name": "clerk", "permissions": ["catalog.product.read"]}).status_code == 201
    clerk = {"Authorization": f"Bearer {key_for(api.tenant, role='clerk')}"}
    product = {"sku": "ROLE-1", "name": "Role test", "list_price": "1.00", "currency": "USD"}
    assert api.client.get("/api/v1/products", headers=clerk).status_code == 200
    assert api.client.post("/api/v1/products", headers=clerk, json=product).status_code == 403
    # when the role is given product creation too
    r = api.patch("/roles/clerk", json={"permissions": ["catalog.product.read", "catalog.product.create"],
                                        "description": "order desk clerk"})
    assert r.status_code == 200, r.text
    assert (r.json()["permissions"], r.json()["description"]) == (
        ["catalog.product.create", "catalog.product.read"], "order desk clerk")
    # then its key may create products from the next request, and the change is audited with its before
    assert api.client.post("/api/v1/products", headers=clerk, json=product).status_code == 201
    [entry] = [a for a in api.get("/audit-entries", params={"entity_type": "role"}).json()["items"]
               if a["action"] == "role.update"]
    assert entry["before"]["permissions"] == ["catalog.product.read"], entry
    # and a built-in role, an unknown role and an unknown permission are refused, with nothing changed
    assert api.patch("/roles/sales", json={"permissions": ["*"]}).status_code == 409
    assert api.patch("/roles/nobody", json={"description": "x"}).status_code == 404
    bad = api.patch("/roles/clerk", json={"permissions": ["catalog.prodcut.read"]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "permissions[0]", bad.text
    # and a key that may manage roles but not everything cannot widen a role past what it holds itself
    assert api.post("/roles", json={"name": "role_keeper", "permissions": ["identity.role.*"]}).status_code == 201
    keeper = {"Authorization": f"Bearer {key_for(api.tenant, role='role_keeper')}"}
    r = api.client.patch("/api/v1/roles/clerk", headers=keeper, json={"permissions": ["*"]})
    assert r.status_code == 403, r.text
    [role] = [x for x in api.get("/roles").json()["items"] if x["name"] == "clerk"]
    assert role["permissions"] == ["catalog.product.create", "catalog.product.read"]


def test_a_key_hands_on_only_the_permissions_it_holds(api):
    # given keys whose role may manage API keys, users or roles, and nothing else
    assert api.post("/roles", json={"name": "key_keeper", "permissions": ["identity.api_key.*"]}).status_code == 201
    assert api.post("/roles", json={"name": "people", "permissions": ["identity.user.*"]}).status_code == 201
    assert api.post("/roles", json={"name": "role_keeper", "permissions": ["identity.role.*"]}).status_code == 201

    def as_role(role):
        return {"Authorization": f"Bearer {key_for(api.tenant, role=role)}"}

    # when each tries to give a new key, user or role more than it holds
    key = api.client.post("/api/v1/api-keys", json={"role": "admin"}, headers=as_role("key_keeper"))
    user = api.client.post("/api/v1/users", json={"email": "eve@example.com", "name": "Eve",
                                                  "password": "long enough!", "role": "admin"},
                           headers=as_role("people"))
    role = api.client.post("/api/v1/roles", json={"name": "everything", "permissions": ["*"]},
                           headers=as_role("role_keeper"))
    # then each is a 403 naming a permission it lacks, and nothing is made
    for r in (key, user, role):
        assert r.status_code == 403, r.text
        assert r.json()["code"] == "permission_denied" and r.json()["permission"]
    assert [k["role"] for k in api.get("/api-keys").json()["items"]].count("admin") == 1  # the test's own
    assert api.get("/users").json()["items"] == []
    assert "everything" not in [r["name"] for r in api.get("/roles").json()["items"]]
    # and what it holds it may hand on
    same = api.client.post("/api/v1/api-keys", json={"role": "key_keeper"}, headers=as_role("key_keeper"))
    assert same.status_code == 201, same.text
    # nor may it revoke a key that holds more than it does (the admins' own), while it revokes its peers
    admin_key = next(k for k in api.get("/api-keys").json()["items"] if k["role"] == "admin")
    r = api.client.post(f"/api/v1/api-keys/{admin_key['id']}/revoke", headers=as_role("key_keeper"))
    assert r.status_code == 403, r.text
    assert api.get("/tenant").status_code == 200
    r = api.client.post(f"/api/v1/api-keys/{same.json()['id']}/revoke", headers=as_role("key_keeper"))
    assert r.status_code == 200, r.text


def test_a_role_pattern_that_grants_no_permission_is_refused(api):
    # a typo would make a role that silently grants nothing
    r = api.post("/roles", json={"name": "desk", "permissions": ["sales.order.read", "sales.ordr.*", "sales"]})
    assert r.status_code == 422, r.text
    errors = {e["field"]: e for e in r.json()["errors"]}
    assert set(errors) == {"permissions[1]", "permissions[2]"}
    assert errors["permissions[1]"]["rule"] == "unknown_permission"
    assert "sales.order.create" in errors["permissions[1]"]["message"]  # what the domain has instead
    assert "desk" not in {role["name"] for role in api.get("/roles").json()["items"]}
    # patterns that grant something, including two-part permissions and wildcards, are taken
    r = api.post("/roles", json={"name": "desk", "permissions": ["pricing.override", "*.read", "sales.*.create"]})
    assert r.status_code == 201, r.text


def test_users_are_created_with_hashed_passwords(api):
    r = api.post("/users", json={"email": "Ann@Example.com", "name": "Ann", "password": "correct horse battery",
                                 "role": "sales"})
    assert r.status_code == 201, r.text
    assert r.json()["email"] == "ann@example.com"
    assert "password" not in r.text
    assert api.post("/users", json={"email": "ann@example.com", "name": "Ann", "password": "another long one",
                                    "role": "sales"}).status_code == 409
    bad = api.post("/users", json={"email": "nope", "name": "", "password": "short", "role": "sales"})
    assert bad.status_code == 422


def test_metrics_are_for_the_operator_only(client, api, monkeypatch):
    from entrepot.db.settings import reset_settings

    # a tenant admin key is not enough
    assert client.get("/metrics", headers=api.headers).status_code == 403
    monkeypatch.setenv("ENTREPOT_OPERATOR_TOKEN", "op-secret-token")
    reset_settings()
    try:
        assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 403
        r = client.get("/metrics", headers={"Authorization": "Bearer op-secret-token"})
        assert r.status_code == 200
        assert "entrepot_webhook_messages" in r.text
    finally:
        monkeypatch.delenv("ENTREPOT_OPERATOR_TOKEN")
        reset_settings()


def test_requests_whose_cached_key_expired_together_share_one_lookup(api, monkeypatch):
    """When a key's cached entry expires, every request in flight misses at once; one
    database lookup serves them all, and each keeps its own request id."""
    import asyncio
    import time as _time

    from starlette.requests import Request

    from entrepot.api import deps
    from entrepot.identity.services import api_keys

    key = key_for(api.tenant, role="viewer")
    lookups = []
    real = deps._authenticate_from_database

    def slow_lookup(token, request_id):
        lookups.append(request_id)
        _time.sleep(0.05)  # the other requests arrive while this one is in the database
        return real(token, request_id)

    monkeypatch.setattr(deps, "_authenticate_from_database", slow_lookup)
    api_keys.clear_auth_cache()

    def request(request_id: str) -> Request:
        return Request({"type": "http", "method": "GET", "path": "/", "state": {"request_id": request_id},
                        "headers": [(b"authorization", f"Bearer {key}".encode())]})

    async def burst(prefix: str, n: int):
        return await asyncio.gather(*(deps.authenticate(request(f"{prefix}{i}")) for i in range(n)),
                                    return_exceptions=True)

    actors = asyncio.run(burst("r", 8))
    assert len(lookups) == 1
    assert {a.tenant_id for a in actors} == {api.tenant.id}
    assert [a.request_id for a in actors] == [f"r{i}" for i in range(8)]
    # and a bad key fails every request that shares its lookup
    key = "ent_nope_" + "x" * 40
    lookups.clear()
    results = asyncio.run(burst("b", 3))
    assert len(lookups) == 1
    assert [type(r).__name__ for r in results] == ["Unauthenticated"] * 3


def test_a_key_in_use_is_checked_again_before_its_cache_entry_expires(api, monkeypatch):
    """Past the refresh age the request is served from the cache at once and one background
    lookup renews the entry; once the key is revoked, the renewal fails and the entry expires."""
    import asyncio

    from starlette.requests import Request

    from entrepot.api import deps
    from entrepot.identity.services import api_keys

    key = key_for(api.tenant, role="viewer")
    lookups = []
    real = deps._authenticate_from_database

    def counted_lookup(token, request_id):
        lookups.append(request_id)
        return real(token, request_id)

    monkeypatch.setattr(deps, "_authenticate_from_database", counted_lookup)
    api_keys.clear_auth_cache()
    clock = [1000.0]
    monkeypatch.setattr(api_keys.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(deps.time, "monotonic", lambda: clock[0])

    def request(request_id: str) -> Request:
        return Request({"type": "http", "method": "GET", "path": "/", "state": {"request_id": request_id},
                        "headers": [(b"authorization", f"Bearer {key}".encode())]})

    async def scenario():
        first = await deps.authenticate(request("a"))  # a miss: looked up
        clock[0] += api_keys.AUTH_REFRESH_AFTER_S + 0.5  # still fresh, but due for renewal
        served = await asyncio.gather(*(deps.authenticate(request(f"b{i}")) for i in range(4)))
        after_serving = len(lookups)
        await asyncio.gather(*deps._background)  # the renewal runs in the background
        return first, served, after_serving

    first, served, after_serving = asyncio.run(scenario())
    assert first.tenant_id == api.tenant.id
    assert [a.request_id for a in served] == ["b0", "b1", "b2", "b3"]
    assert after_serving == 1  # nobody waited on a lookup
    assert len(lookups) == 2  # one renewal for the four requests
    assert api_keys.cached_actor_and_age(key)[1] == 0.0  # renewed at the current time

    # revoked by another process (this one's cache is not cleared): the renewal fails ...
    from sqlalchemy import update

    from entrepot.identity.models import ApiKey
    from entrepot.kernel import clock as entrepot_clock

    with api.tenant.uow() as uow:
        uow.session.execute(update(ApiKey).where(ApiKey.key_hash == api_keys.hash_key(key))
                            .values(revoked_at=entrepot_clock.now()))
        uow.commit()

    async def after_revocation():
        clock[0] += api_keys.AUTH_REFRESH_AFTER_S + 0.5
        still_cached = await deps.authenticate(request("c"))
        await asyncio.gather(*deps._background)
        clock[0] += api_keys.AUTH_CACHE_TTL_S - api_keys.AUTH_REFRESH_AFTER_S  # ... and the entry expires
        try:
            await deps.authenticate(request("d"))
        except Exception as exc:
            return still_cached, exc
        return still_cached, None

    still_cached, refused = asyncio.run(after_revocation())
    assert still_cached.request_id == "c"
    assert type(refused).__name__ == "Unauthenticated"


def test_routers_turning_away_other_paths_route_every_request_as_before(app):
    """Domain routers turn away paths outside their first segments (api.app): for every
    route's path and every method, the router picked (full or partial match) is the one
    FastAPI's own matching, unguarded, picks."""
    import re

    from starlette.routing import Match

    from entrepot.api.deps import route_table

    def picked(scope, guarded):  # type: ignore[no-untyped-def]
        partial = None
        for r in app.router.routes:
            match = r.matches(scope)[0] if guarded else type(r).matches(r, scope)[0]
            if match == Match.FULL:
                return r, match
            if match == Match.PARTIAL and partial is None:
                partial = (r, match)
        return partial

    guarded_routers = [r for r in app.router.routes if "matches" in vars(r)]
    assert len(guarded_routers) >= 5  # the domains' routers are guarded
    paths = {re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000001", p) for p, _, _ in route_table(app)}
    paths |= {"/api/v1/no-such-collection", "/api/v1/sales-orders/x/y/z", "/api/v1", "/api/v1/"}
    for path in paths:
        for method in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            scope = {"type": "http", "method": method, "path": path, "root_path": "",
                     "headers": [], "query_string": b""}
            assert picked(scope, True) == picked(scope, False), f"{method} {path}"


def test_unknown_paths_and_methods_under_the_api_are_404_and_405(api):
    assert api.get("/no-such-collection").status_code == 404
    assert api.get("/sales-orders/not-a-route/nor-this").status_code == 404
    assert api.client.delete("/api/v1/payments", headers=api.headers).status_code == 405


def test_a_routes_unit_of_work_is_closed_after_it_and_rolled_back_when_it_fails(api):
    """`Requires` hands the route an open unit of work and closes it after the route: a route
    that raised after writing leaves nothing behind and answers its problem; one that committed
    keeps its write. Either way the session is closed afterwards."""
    from typing import Annotated

    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from sqlalchemy import select

    from entrepot.api import problems
    from entrepot.api.deps import Requires
    from entrepot.db.uow import UnitOfWork
    from entrepot.kernel.errors import Conflict
    from entrepot.parties import permissions as perms
    from entrepot.parties.models import Customer
    from entrepot.parties.service import create_customer

    seen: list[UnitOfWork] = []
    app = FastAPI()
    problems.install(app)

    @app.post("/customers/{code}")
    def write(code: str, fail: bool, uow: Annotated[UnitOfWork, Requires(perms.CUSTOMER_CREATE)]) -> dict:
        seen.append(uow)
        create_customer(uow, {"code": code, "name": code, "currency": "USD"})
        uow.session.flush()
        if fail:
            raise Conflict("refused after writing")
        uow.commit()
        return {"ok": True}

    with TestClient(app, raise_server_exceptions=False) as client:
        failed = client.post("/customers/GONE", params={"fail": True}, headers=api.headers)
        kept = client.post("/customers/KEPT", params={"fail": False}, headers=api.headers)
    assert failed.status_code == 409 and failed.json()["detail"] == "refused after writing"
    assert kept.status_code == 200
    assert [uow.session.in_transaction() for uow in seen] == [False, False]
    with api.tenant.uow() as uow:
        codes = set(uow.session.scalars(select(Customer.code).where(Customer.code.in_(["GONE", "KEPT"]))))
    assert codes == {"KEPT"}


def test_an_api_key_with_the_defaults_needs_no_body(api):
    r = api.post("/api-keys")
    assert r.status_code == 201, r.text
    assert (r.json()["role"], r.json()["key"].startswith("ent_")) == ("admin", True)
    assert api.client.get("/api/v1/tenant", headers={"Authorization": f"Bearer {r.json()['key']}"}).status_code == 200


def test_a_transaction_the_database_will_not_begin_is_503_not_500(api, monkeypatch):
    # given a database that refuses to begin a transaction: SQLite's BEGIN IMMEDIATE past its
    # busy_timeout ("database is locked", seen under four concurrent writers), or PostgreSQL's
    # per-transaction tenant settings; both are sent on the driver's cursor, beside SQLAlchemy
    from entrepot.db import engine as engine_module
    from tests.factories.inventory import make_transfer

    transfer = make_transfer(api)
    before = api.get(f"/transfers/{transfer}").json()
    product = api.post("/products", json={"sku": "LOCK-1", "name": "Locked", "list_price": "1.00",
                                          "currency": "USD"})
    assert product.status_code == 201, product.text
    real = engine_module.announce

    def refuse(conn, cursor, sql, args, *, executemany):  # type: ignore[no-untyped-def]
        if sql == "BEGIN IMMEDIATE":
            raise conn.dialect.loaded_dbapi.OperationalError("database is locked")
        if sql == engine_module._SET_TENANT:
            raise conn.dialect.loaded_dbapi.OperationalError("server closed the connection unexpectedly")
        real(conn, cursor, sql, args, executemany=executemany)

    monkeypatch.setattr(engine_module, "announce", refuse)
    # then a write, one in a retried inventory savepoint among them, is 503 with Retry-After
    for r in (api.post(f"/transfers/{transfer}/ship"),
              api.patch(f"/products/{product.json()['id']}", json={"name": "Renamed"})):
        assert r.status_code == 503, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "database_unavailable" and r.headers["retry-after"] == "1"
    # and once the database begins transactions again, nothing was half-written
    monkeypatch.setattr(engine_module, "announce", real)
    assert api.get(f"/transfers/{transfer}").json() == before
    assert api.get(f"/products/{product.json()['id']}").json()["name"] == "Locked"


def test_a_route_that_raised_releases_its_transaction_even_with_every_pool_thread_taken(db_url):
    import threading

    import anyio
    import anyio.to_thread
    from sqlalchemy import text

    from entrepot.api.deps import end_unit_of_work
    from tests.conftest import make_tenant

    # given a unit of work that began a write transaction and was not committed (its route raised)
    tenant = make_tenant(db_url)
    uow = tenant.uow().__enter__()
    uow.session.execute(text("SELECT 1"))
    assert uow.session.in_transaction()
    released: list[bool] = []

    async def main() -> None:
        # and a shared thread pool whose every thread is taken (requests waiting for that transaction)
        anyio.to_thread.current_default_thread_limiter().total_tokens = 1
        busy = threading.Event()
        freed = threading.Timer(5, busy.set)  # the pool's thread comes free only after 5 s
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(anyio.to_thread.run_sync, busy.wait)
            await anyio.sleep(0.05)
            freed.start()
            # when the unit of work ends, then its transaction is released before the pool has a thread
            await end_unit_of_work(uow)
            released.append(not uow.session.in_transaction() and not busy.is_set())
            busy.set()
            freed.cancel()

    anyio.run(main)
    assert released == [True]


def test_a_rate_limited_post_is_not_replayed_to_its_retry(api):
    from entrepot.api import deps, ratelimit

    # given a tenant at its rate limit
    with api.tenant.uow() as uow:
        from entrepot.identity.services.tenants import get_tenant

        get_tenant(uow, api.tenant.id).settings = {"rate_limit_per_minute": 1}
        uow.commit()
    deps._limits_cache.clear()
    api.get("/tenant")
    headers = {"Idempotency-Key": "limited"}
    refused = api.post("/warehouses", json={"code": "LIMITED", "name": "Limited"}, headers=headers)
    assert refused.status_code == 429
    # when the window frees and the client retries with the same key, as Retry-After tells it
    ratelimit.reset()
    retried = api.post("/warehouses", json={"code": "LIMITED", "name": "Limited"}, headers=headers)
    # then the request runs, rather than the 429 being replayed
    assert retried.status_code == 201, retried.text
    assert retried.headers.get("idempotent-replayed") is None


def test_a_portal_customer_key_reads_no_customer_documents_before_the_portal_scopes_it(api):
    # given a customer's invoiced order and a key with the customer-portal role, which nothing ties
    # to one customer (the portal's login will)
    from tests.factories.sales import invoiced_order

    desk, order, invoice = invoiced_order(api)
    portal = Api(api.client, api.tenant, key_for(api.tenant, role="portal_customer"))
    # when it reads or enters documents, then it is refused every one (403 naming the permission)
    for r in (portal.get("/sales-orders"), portal.get(f"/sales-orders/{order['id']}"),
              portal.get(f"/invoices/{invoice['id']}"), portal.get(f"/products/{desk.product_id}"),
              portal.post("/sales-orders", json={"customer_id": desk.customer_id,
                                                 "lines": [{"product_id": desk.product_id, "quantity": "1"}]})):
        assert r.status_code == 403, r.text
        assert r.json()["permission"]
    # and the role says it grants nothing
    role = next(r for r in api.get("/roles").json()["items"] if r["name"] == "portal_customer")
    assert role["permissions"] == []
