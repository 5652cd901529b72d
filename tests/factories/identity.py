from tests.factories import factory


@factory("api_key_id")
def make_api_key(api) -> str:  # type: ignore[no-untyped-def]
    r = api.post("/api-keys", json={"role": "viewer"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@factory("role_name")
def make_role(api) -> str:  # type: ignore[no-untyped-def]
    import uuid

    name = f"role_{uuid.uuid4().hex[:8]}"
    r = api.post("/roles", json={"name": name, "permissions": ["catalog.product.read"]})
    assert r.status_code == 201, r.text
    return name
