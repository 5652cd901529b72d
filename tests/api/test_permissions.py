"""Walks the route table: a key whose role lacks the one permission a write route declares is
refused (403 naming it) and nothing is written, on every write route, routes added later included.

The key's role holds every other permission, so a route that writes on some permission other than
the one it declares, or not at all checked, shows up here.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from entrepot.api.app import create_app
from entrepot.api.deps import permission_of, route_table
from entrepot.db.base import Base
from entrepot.identity.permissions import BUILTIN_ROLES, known_permissions
from tests.api.conftest import key_for
from tests.factories import EXAMPLE_BODIES, FACTORIES, NOT_TENANT_RECORDS, load_all

load_all()
PARAM = re.compile(r"{([a-z_]+)(?::[a-z]+)?}")
WRITES = ("POST", "PUT", "PATCH", "DELETE")
ROUTES = route_table(create_app())
WRITE_ROUTES = sorted(
    (method, path, permission_of(route)) for path, methods, route in ROUTES for method in methods
    if method in WRITES and permission_of(route) and not permission_of(route).endswith(".read")
)
# Values for path parameters that name no tenant record.
NOT_RECORDS = {"connector": "carrier"}


def _counts(tenant) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Rows of every tenant-owned table, the audit trail and the outbox included."""
    with tenant.uow(readonly=True) as uow:
        return {table.name: uow.session.execute(
                    select(func.count()).select_from(table).where(table.c.tenant_id == tenant.id)).scalar_one()
                for table in Base.metadata.sorted_tables if "tenant_id" in table.c}


def _role_without(api, permission: str) -> str:  # type: ignore[no-untyped-def]
    name = "lacks_" + re.sub(r"[^a-z_]", "_", permission)
    others = sorted(p for p in known_permissions() if p != permission)
    r = api.post("/roles", json={"name": name, "permissions": others})
    assert r.status_code == 201, r.text
    return name


@pytest.mark.parametrize("method,path,permission", WRITE_ROUTES, ids=[f"{m} {p}" for m, p, _ in WRITE_ROUTES])
def test_a_key_without_the_routes_permission_is_refused_and_nothing_is_written(api, method, path, permission):
    # given the records the path names, in the key's own tenant, and a key holding every other permission
    values = {param: NOT_RECORDS[param] if param in NOT_TENANT_RECORDS else FACTORIES[param](api)
              for param in PARAM.findall(path)}
    url = PARAM.sub(lambda m: values[m.group(1)], path)
    body_of = EXAMPLE_BODIES.get((method, path))
    body = body_of(api) if body_of else {}
    headers = {"Authorization": f"Bearer {key_for(api.tenant, role=_role_without(api, permission))}"}
    before = _counts(api.tenant)
    # when it calls the route
    r = api.client.request(method, url, headers=headers, json=body if method != "DELETE" else None)
    # then it is refused, naming the permission, and nothing is written
    assert r.status_code == 403, f"{method} {path}: {r.status_code} {r.text[:300]}"
    assert permission in r.json()["detail"], r.text
    assert _counts(api.tenant) == before


def test_the_sweep_walks_every_write_route():
    # the routes it skips are the public ones and POST /prices/quote (a read: pricing.quote.read)
    writes = [(m, p) for p, methods, route in ROUTES for m in methods if m in WRITES]
    assert sorted(writes) == sorted([(m, p) for m, p, _ in WRITE_ROUTES] + [("POST", "/api/v1/prices/quote")])


def test_the_viewer_role_grants_reads_only():
    # A read-only role: every write route declares a permission it does not hold.
    from fnmatch import fnmatchcase

    viewer = BUILTIN_ROLES["viewer"]
    writable = sorted({p for _, _, p in WRITE_ROUTES if any(fnmatchcase(p, g) for g in viewer)})
    assert writable == []
