from tests.factories import factory


@factory("api_key_id")
def make_api_key(api) -> str:  # type: ignore[no-untyped-def]
    r = api.post("/api-keys", json={"role": "viewer"})
    assert r.status_code == 201, r.text
    return r.json()["id"]
