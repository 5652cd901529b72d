"""No input, however malformed, gives a 500 (DESIGN.md, "Bad input").

Two nets over every route of the real app, in process, on SQLite:

* schemathesis generates requests from our own OpenAPI document — valid and
  invalid — and checks that none is answered with a server error;
* a hand-written table of classic malformed bodies (wrong JSON types, huge and
  non-finite numbers, deep nesting, 10 kB strings, non-UUID ids) is sent to every
  POST/PUT/PATCH route of the route table, which must answer 4xx problem+json.

Path parameters that name a record are filled with real records of the fuzzing
tenant (made by tests/factories), so bodies reach the services, not just a 404.
The run is bounded and seeded, so CI sees the same cases every time.
"""

from __future__ import annotations

import json
import os
import re
import typing
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig

from entrepot.api.app import create_app
from entrepot.api.deps import route_table
from entrepot.db.settings import reset_settings
from tests.api.conftest import Api, key_for
from tests.conftest import make_tenant
from tests.factories import EXAMPLE_BODIES, FACTORIES, NOT_TENANT_RECORDS, load_all

load_all()
APP = create_app()
PARAM = re.compile(r"{([a-z_]+)(?::[a-z]+)?}")
# Bounded and deterministic: a fixed seed, a few examples per operation. Raise
# ENTREPOT_FUZZ_EXAMPLES locally for a deeper hunt.
EXAMPLES = int(os.environ.get("ENTREPOT_FUZZ_EXAMPLES", "12"))
CONFIG = SchemathesisConfig.from_str(f"""
seed = 20261127
[generation]
mode = "all"
max-examples = {EXAMPLES}
[phases.coverage]
enabled = false
""")
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP, config=CONFIG)


class FuzzTenant:
    """One tenant per backend for the whole module, with one real record per path parameter."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.ids: dict[str, str] = {}

    def id_for(self, param: str) -> str | None:
        if param in NOT_TENANT_RECORDS or param not in FACTORIES:
            return None
        if param not in self.ids:
            self.ids[param] = FACTORIES[param](self.api)
        return self.ids[param]


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(APP, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture(scope="module")
def tenants(client: TestClient) -> dict[str, FuzzTenant]:
    return {}


def _on(url: str, client: TestClient, tenants: dict[str, FuzzTenant], monkeypatch: pytest.MonkeyPatch) -> FuzzTenant:
    monkeypatch.setenv("ENTREPOT_DATABASE_URL", url)
    reset_settings()
    if url not in tenants:
        tenant = make_tenant(url)
        tenants[url] = FuzzTenant(Api(client, tenant, key_for(tenant)))
    return tenants[url]


@pytest.fixture(params=["sqlite", "postgresql"])
def fuzz(request: pytest.FixtureRequest, client: TestClient, tenants: dict[str, FuzzTenant],
         monkeypatch: pytest.MonkeyPatch) -> Iterator[FuzzTenant]:
    """The backend's fuzzing tenant; its records are made once and shared by the module's tests."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    yield _on(url, client, tenants, monkeypatch)
    reset_settings()


@pytest.fixture
def fuzz_sqlite(sqlite_url: str, client: TestClient, tenants: dict[str, FuzzTenant],
                monkeypatch: pytest.MonkeyPatch) -> Iterator[FuzzTenant]:
    yield _on(sqlite_url, client, tenants, monkeypatch)
    reset_settings()


def _use_real_records(case: Any, fuzz: FuzzTenant) -> None:
    """Swap generated UUIDs for real records; keep malformed ids as generated."""
    for name, value in (case.path_parameters or {}).items():
        try:
            uuid.UUID(str(value))
        except ValueError:
            continue
        real = fuzz.id_for(name)
        if real is not None:
            case.path_parameters[name] = real


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_generated_request_is_a_server_error(case: Any, fuzz_sqlite: FuzzTenant) -> None:
    # given a request generated from the OpenAPI document, sent with an admin key
    _use_real_records(case, fuzz_sqlite)
    # when it is sent / then the answer is never a 5xx
    case.call_and_validate(headers=fuzz_sqlite.api.headers, checks=[not_a_server_error])


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


MALFORMED: dict[str, Any] = {
    "array": [],
    "string": "x",
    "number": 1,
    "null": None,
    "unknown field": {"a": 1},
    "deeply nested": {"a": _nested(200)},
}
# Field values that every field must refuse (or accept) cleanly, whatever its type.
HOSTILE_VALUES: dict[str, Any] = {
    "huge number": 1e300,
    "huge integer": 10**40,
    "huge decimal string": "1e400",
    "NaN": "NaN",
    "Infinity": "Infinity",
    "negative huge": "-99999999999999999999.99999",
    "past SQLite's scaled storage": "999999999999999",
    "past PostgreSQL's NUMERIC(20,4)": "99999999999999999",
    "largest storable": "99999999999999.9999",
    "tiny": "1e-10",
    "too many places": "1.123456789",
    "10 kB string": "x" * 10_240,
    "non-UUID id": "not-a-uuid",
    "deep nesting": _nested(50),
    "empty object": {},
    "boolean": True,
    "null byte string": "a\x00b",
}
RAW_BODIES = {
    "not JSON": b"{not json",
    "empty": b"",
    "NaN literal": b'{"quantity": NaN}',
    "nested past the parser's recursion limit": b"[" * 100_000 + b"]" * 100_000,
    "invalid UTF-8": b'{"name": "\xff\xfe"}',
}

WRITE_ROUTES = sorted(
    (method, path, route) for path, methods, route in route_table(APP)
    for method in methods if method in ("POST", "PUT", "PATCH") and path.startswith("/api/v1/")
)


def _fields_of(route: Any) -> list[str]:
    """Top-level body field names the route's schema declares."""
    body = route.body_field
    if body is None:
        return []
    annotation = body.field_info.annotation
    for model in (annotation, *typing.get_args(annotation)):  # unwrap `X | None`
        fields = getattr(model, "model_fields", None)
        if fields:
            return list(fields)
    return []


def _url(path: str, fuzz: FuzzTenant) -> str:
    return PARAM.sub(lambda m: fuzz.id_for(m.group(1)) or str(uuid.uuid4()), path)


def _assert_client_error(response: Any, what: str) -> None:
    assert response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    assert response.status_code >= 400, f"{what}: accepted with {response.status_code} {response.text[:200]}"
    assert response.headers["content-type"].startswith("application/problem+json"), (
        f"{what}: {response.headers['content-type']}")


@pytest.mark.parametrize("method,path,route", WRITE_ROUTES, ids=[f"{m} {p}" for m, p, _ in WRITE_ROUTES])
def test_malformed_bodies_are_4xx_problems(method: str, path: str, route: Any, fuzz: FuzzTenant) -> None:
    api = fuzz.api
    takes_body = route.body_field is not None
    # A route without a body ignores one: address unknown records, so garbage never acts on the shared ones.
    url = _url(path, fuzz) if takes_body else PARAM.sub(lambda m: str(uuid.uuid4()), path)
    # given bodies of the wrong shape / when sent / then each is a 4xx problem, never a 5xx
    for name, body in MALFORMED.items():
        response = api.client.request(method, url, headers=api.headers, json=body)
        if not takes_body or (name == "null" and not route.body_field.field_info.is_required()):
            assert response.status_code < 500, f"{method} {url} {name}: {response.status_code} {response.text[:300]}"
            continue
        _assert_client_error(response, f"{method} {url} {name}")
    for name, raw in RAW_BODIES.items():
        response = api.client.request(method, url, content=raw,
                                      headers={**api.headers, "content-type": "application/json"})
        assert response.status_code < 500, f"{method} {url} {name}: {response.status_code} {response.text[:300]}"


def _code(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# Valid bodies for create routes that the route-table factories give no example for, so that a
# hostile value in one field reaches the service (and the database) instead of a "missing field".
BASE_BODIES: dict[tuple[str, str], Any] = {
    ("POST", "/api/v1/products"): lambda f: {"sku": _code("SKU"), "name": "Bolt", "list_price": "12.50",
                                             "currency": "USD", "standard_cost": "5", "weight_kg": "1.5"},
    ("POST", "/api/v1/categories"): lambda f: {"code": _code("C"), "name": "Fasteners"},
    ("POST", "/api/v1/units"): lambda f: {"code": _code("U").lower(), "name": "Unit"},
    ("POST", "/api/v1/channel-listings"): lambda f: {"channel": "web", "product_id": f.id_for("product_id")},
    ("POST", "/api/v1/customers"): lambda f: {"code": _code("C"), "name": "Acme", "currency": "USD",
                                              "credit_limit": "1000", "payment_terms_days": 30},
    ("POST", "/api/v1/suppliers"): lambda f: {"code": _code("S"), "name": "Bolt Works", "currency": "USD",
                                              "payment_terms_days": 30},
    ("POST", "/api/v1/supplier-items"): lambda f: {"supplier_id": f.id_for("supplier_id"),
                                                   "product_id": f.id_for("product_id"), "cost": "4.10",
                                                   "currency": "USD", "min_order_qty": "1", "pack_size": "1",
                                                   "lead_time_days": 5},
    ("POST", "/api/v1/price-lists"): lambda f: {"code": _code("PL"), "name": "Trade", "currency": "USD",
                                                "priority": 1,
                                                "entries": [{"product_id": f.id_for("product_id"), "value": "9"}]},
    ("POST", "/api/v1/contract-prices"): lambda f: {"customer_id": f.id_for("customer_id"),
                                                    "product_id": f.id_for("product_id"), "unit_price": "8.00"},
    ("POST", "/api/v1/prices/quote"): lambda f: {"customer_id": f.id_for("customer_id"),
                                                 "lines": [{"product_id": f.id_for("product_id"), "quantity": "2"}]},
    ("POST", "/api/v1/warehouses"): lambda f: {"code": _code("WH"), "name": "Main", "priority": 1},
    ("POST", "/api/v1/stock/adjustments"): lambda f: {"warehouse_id": f.id_for("warehouse_id"),
                                                      "product_id": f.id_for("product_id"), "quantity": "5",
                                                      "reason": "initial", "unit_cost": "2.00"},
    ("POST", "/api/v1/stock/receipts"): lambda f: {"warehouse_id": f.id_for("warehouse_id"),
                                                   "product_id": f.id_for("product_id"), "quantity": "5",
                                                   "unit_cost": "2.00"},
    ("POST", "/api/v1/stock/scrap"): lambda f: {"warehouse_id": f.id_for("warehouse_id"),
                                                "product_id": f.id_for("product_id"), "quantity": "0.0001",
                                                "reason": "damaged"},
    ("POST", "/api/v1/transfers"): lambda f: {"product_id": f.id_for("product_id"),
                                              "from_warehouse_id": f.id_for("warehouse_id"),
                                              "to_warehouse_id": f.id_for("warehouse_id"), "quantity": "0.0001"},
    ("POST", "/api/v1/reorder-rules"): lambda f: {"product_id": f.id_for("product_id"),
                                                  "warehouse_id": f.id_for("warehouse_id"), "reorder_point": "5",
                                                  "order_up_to": "20", "safety_stock": "1"},
    ("POST", "/api/v1/stock-counts"): lambda f: {"warehouse_id": f.id_for("warehouse_id"), "counter": "Ana"},
    ("POST", "/api/v1/invoices/{invoice_id}/credit-notes"): lambda f: {"reason": "damaged"},
    ("POST", "/api/v1/roles"): lambda f: {"name": _code("role"), "permissions": ["catalog.product.read"]},
    ("POST", "/api/v1/api-keys"): lambda f: {"role": "viewer", "name": "fuzz"},
    ("POST", "/api/v1/webhook-endpoints"): lambda f: {"url": "https://example.com/hook", "event_types": ["*"]},
    ("PATCH", "/api/v1/warehouses/{warehouse_id}"): lambda f: {"name": "Renamed"},
}


def _leaves(body: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to every value of a JSON body, containers included."""
    if path:
        yield path
    if isinstance(body, dict):
        for key, value in body.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(body, list):
        for index, value in enumerate(body):
            yield from _leaves(value, (*path, index))


def _replaced(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(body))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy


@pytest.mark.parametrize("method,path,route", WRITE_ROUTES, ids=[f"{m} {p}" for m, p, _ in WRITE_ROUTES])
def test_hostile_field_values_are_never_5xx(method: str, path: str, route: Any, fuzz: FuzzTenant) -> None:
    api = fuzz.api
    example = EXAMPLE_BODIES.get((method, path))
    fresh = BASE_BODIES.get((method, path))
    # given a valid body (or an empty one), then each field of it set to each hostile value
    base = fresh(fuzz) if fresh else example(api) if example else {}
    targets = list(_leaves(base)) + [(f,) for f in _fields_of(route) if f not in base]
    if not targets:
        pytest.skip("no JSON body fields")
    url = _url(path, fuzz)
    crashes = []
    for target in targets:
        for name, value in HOSTILE_VALUES.items():
            # when sent
            body = _replaced(fresh(fuzz) if fresh else base, target, value)
            response = api.client.request(method, url, headers=api.headers, json=body)
            # then the answer is a client error or a success, never a crash
            where = ".".join(map(str, target))
            if response.status_code >= 500:
                crashes.append(f"{where}={name}: {response.status_code}")
            elif response.status_code >= 400:
                assert response.headers["content-type"].startswith("application/problem+json"), f"{where}={name}"
                if response.json().get("code") == "invalid_value":  # the database refused it: no field named
                    crashes.append(f"{where}={name}: unchecked until the database")
    assert not crashes, f"{method} {url}: " + "; ".join(crashes)
