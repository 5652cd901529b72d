"""HTTP tests through the real ASGI app (FastAPI TestClient), on both backends."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from entrepot.api.app import create_app
from entrepot.identity.services.api_keys import create_api_key
from tests.conftest import TenantHandle, make_tenant


@pytest.fixture(scope="session")
def app():  # type: ignore[no-untyped-def]
    return create_app()


def key_for(tenant: TenantHandle, role: str = "admin") -> str:
    with tenant.uow() as uow:
        issued = create_api_key(uow, role=role)
        uow.commit()
        return issued.secret


class Api:
    """A client bound to one tenant's API key."""

    def __init__(self, client: TestClient, tenant: TenantHandle, key: str) -> None:
        self.client = client
        self.tenant = tenant
        self.key = key
        self.headers = {"Authorization": f"Bearer {key}"}

    def get(self, path: str, **kw):  # type: ignore[no-untyped-def]
        return self.client.get("/api/v1" + path, headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def post(self, path: str, json=None, **kw):  # type: ignore[no-untyped-def]
        return self.client.post("/api/v1" + path, json=json,
                                headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def patch(self, path: str, json=None, **kw):  # type: ignore[no-untyped-def]
        return self.client.patch("/api/v1" + path, json=json,
                                 headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def put(self, path: str, json=None, **kw):  # type: ignore[no-untyped-def]
        return self.client.put("/api/v1" + path, json=json,
                               headers={**self.headers, **kw.pop("headers", {})}, **kw)

    def delete(self, path: str, **kw):  # type: ignore[no-untyped-def]
        return self.client.delete("/api/v1" + path, headers={**self.headers, **kw.pop("headers", {})}, **kw)


@pytest.fixture
def client(app, db_url: str) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def api(client: TestClient, tenant: TenantHandle) -> Api:
    return Api(client, tenant, key_for(tenant))


@pytest.fixture
def other_api(client: TestClient, db_url: str) -> Api:
    other = make_tenant(db_url)
    return Api(client, other, key_for(other))
