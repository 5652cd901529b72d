"""No input, however malformed, gives a 500 or a partial write (DESIGN.md, "Bad input").

Nets over every route of the real app, in process:

* schemathesis generates requests from our own OpenAPI document — valid and
  invalid — and checks that none is answered with a server error (SQLite);
* malformed bodies (wrong JSON types, unknown fields, deep nesting, invalid JSON,
  invalid UTF-8) sent to every POST/PUT/PATCH route of the route table must be a 4xx
  problem+json that writes nothing (no audit record, no outbox event);
* each field of a valid body, set in turn to a hostile value (huge, non-finite or
  over-precise numbers, values just past SQLite's or PostgreSQL's storage, 10 kB
  strings, NUL characters, non-UUID ids), must be refused by the input rules — a
  4xx naming the field that writes nothing — or accepted; never a 5xx, never
  left for the database to refuse. Both backends.

Path parameters that name a record are filled with real records of the fuzzing
tenant (made by tests/factories), so bodies reach the services, not just a 404.
The default run is bounded and seeded, so CI sees the same cases every time; for a
deeper hunt: ENTREPOT_FUZZ_EXAMPLES=100 ENTREPOT_FUZZ_COVERAGE=1
ENTREPOT_FUZZ_BACKEND=postgresql.
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
from sqlalchemy import func, select

from entrepot.api.app import create_app
from entrepot.api.deps import route_table
from entrepot.db.settings import reset_settings
from entrepot.identity.models import AuditEntry
from entrepot.integration.models import OutboxEvent
from tests.api.conftest import Api, key_for
from tests.conftest import make_tenant
from tests.factories import EXAMPLE_BODIES, FACTORIES, NOT_TENANT_RECORDS, load_all

load_all()
APP = create_app()
PARAM = re.compile(r"{([a-z_]+)(?::[a-z]+)?}")
# Bounded and deterministic: a fixed seed, a few examples per operation. Raise
# ENTREPOT_FUZZ_EXAMPLES locally for a deeper hunt.
EXAMPLES = int(os.environ.get("ENTREPOT_FUZZ_EXAMPLES", "10"))
CONFIG = SchemathesisConfig.from_str(f"""
seed = 20261127
[generation]
mode = "all"
max-examples = {EXAMPLES}
[phases.coverage]
enabled = {"true" if os.environ.get("ENTREPOT_FUZZ_COVERAGE") else "false"}
""")
schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", APP, config=CONFIG)


class FuzzTenant:
    """One tenant per backend for the whole module, with one real record per path parameter."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.ids: dict[str, str] = {}

    def writes(self) -> tuple[int, int]:
        """How many audit records and outbox events the tenant has: a refused request adds neither."""
        with self.api.tenant.uow(readonly=True) as uow:
            return (uow.session.scalar(select(func.count()).select_from(AuditEntry)) or 0,
                    uow.session.scalar(select(func.count()).select_from(OutboxEvent)) or 0)

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
def fuzz_one(request: pytest.FixtureRequest, client: TestClient, tenants: dict[str, FuzzTenant],
             monkeypatch: pytest.MonkeyPatch) -> Iterator[FuzzTenant]:
    """SQLite by default (fast); ENTREPOT_FUZZ_BACKEND=postgresql for a hunt on PostgreSQL."""
    backend = os.environ.get("ENTREPOT_FUZZ_BACKEND", "sqlite")
    url = request.getfixturevalue("postgres_url" if backend == "postgresql" else "sqlite_url")
    yield _on(url, client, tenants, monkeypatch)
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
def test_no_generated_request_is_a_server_error(case: Any, fuzz_one: FuzzTenant) -> None:
    # given a request generated from the OpenAPI document, sent with an admin key
    _use_real_records(case, fuzz_one)
    # when it is sent / then the answer is never a 5xx
    case.call_and_validate(headers=fuzz_one.api.headers, checks=[not_a_server_error])


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
    "negative huge": "-1e20",
    "huge decimal string": "1e400",
    "NaN": "NaN",
    "past SQLite's scaled storage": "999999999999999",
    "past PostgreSQL's NUMERIC(20,4)": "99999999999999999",
    "largest storable": "99999999999999.9999",
    "tiny": "1e-10",
    "too many places": "1.123456789",
    "10 kB string": "x" * 10_240,
    "non-UUID id": "not-a-uuid",
    "deep nesting": _nested(50),
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
    before = fuzz.writes()
    # given bodies of the wrong shape / when sent / then each is a 4xx problem, never a 5xx
    for name, body in MALFORMED.items():
        response = api.client.request(method, url, headers=api.headers, json=body)
        if not takes_body or (name == "null" and not route.body_field.field_info.is_required()):
            assert response.status_code < 500, f"{method} {url} {name}: {response.status_code} {response.text[:300]}"
            before = fuzz.writes()
            continue
        _assert_client_error(response, f"{method} {url} {name}")
        # and nothing was written
        assert fuzz.writes() == before, f"{method} {url} {name}: refused, yet audit/outbox grew"
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


def _takes_no_fields(route: Any) -> bool:
    """A body model that declares no field at all (a call that takes none and refuses any, such as a
    transfer's receipt): there is no field to fill with hostile values (`test_malformed_bodies_are_4xx_problems`
    still sends it bad bodies)."""
    annotation = route.body_field.field_info.annotation
    models = [m for m in (annotation, *typing.get_args(annotation)) if hasattr(m, "model_fields")]
    return bool(models) and not any(m.model_fields for m in models)


BODY_ROUTES = [(m, p, r) for m, p, r in WRITE_ROUTES
               if r.body_field is not None and "/imports/" not in p and not _takes_no_fields(r)]


@pytest.mark.parametrize("method,path,route", BODY_ROUTES, ids=[f"{m} {p}" for m, p, _ in BODY_ROUTES])
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
    before = fuzz.writes()
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
            now = fuzz.writes()
            if 400 <= response.status_code < 500 and now != before:
                crashes.append(f"{where}={name}: refused with {response.status_code}, yet audit/outbox grew")
            before = now
    assert not crashes, f"{method} {url}: " + "; ".join(crashes)


@pytest.mark.parametrize("url,field", [
    ("/api/v1/products?q=bolt%00", "q"),
    ("/api/v1/customers/abc%00def", "path"),
])
def test_a_nul_character_outside_the_body_is_a_422_naming_where(url: str, field: str, fuzz: FuzzTenant) -> None:
    # given a NUL character in the query or the path (PostgreSQL text cannot hold one)
    # when sent
    response = fuzz.api.client.get(url, headers=fuzz.api.headers)
    # then it is refused before any route, naming where it was
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [{"field": field, "message": "must not contain a NUL character",
                                          "rule": "no_nul"}]


def test_a_nul_character_in_a_body_names_the_field(fuzz: FuzzTenant) -> None:
    # given a product whose name holds a NUL character
    before = fuzz.writes()
    body = BASE_BODIES[("POST", "/api/v1/products")](fuzz) | {"name": "Hex\x00bolt"}
    # when created
    response = fuzz.api.post("/products", json=body)
    # then the field is named and nothing is written, on both backends alike
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "name"
    assert fuzz.writes() == before


@pytest.mark.parametrize("path,body,field", [
    ("/products", lambda fuzz: BASE_BODIES[("POST", "/api/v1/products")](fuzz) | {"description": "a\ud800b"},
     "description"),
    ("/webhook-endpoints", lambda fuzz: {"url": "https://example.com/hook", "event_types": ["a\udc00"]},
     "event_types[0]"),
    ("/warehouses", lambda fuzz: {"code": "W-SURROGATE", "name": "x", "a\ud800": 1}, "a?"),
])
def test_a_lone_surrogate_in_a_body_names_the_field(path: str, body: Any, field: str, fuzz: FuzzTenant) -> None:
    # given a JSON string holding half of a UTF-16 surrogate pair (escaped, as json.dumps writes it),
    # in fields no schema constraint looks at: it cannot be encoded for the database, the log or
    # a problem that echoes it, and was a 500 (a plain-text one for an unknown event type)
    before = fuzz.writes()
    content = json.dumps(body(fuzz)).encode()
    assert b"\\ud" in content
    # when sent
    response = fuzz.api.post(path, content=content, headers={"Content-Type": "application/json"})
    # then it is refused naming the field, as problem+json, and nothing is written, on both backends
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["field"] == field
    assert response.json()["errors"][0]["rule"] == "unicode"
    assert fuzz.writes() == before


def test_a_lone_surrogate_sent_as_raw_bytes_is_refused_and_a_real_pair_is_kept(fuzz: FuzzTenant) -> None:
    base = BASE_BODIES[("POST", "/api/v1/products")](fuzz)
    before = fuzz.writes()
    # given the surrogate's own UTF-8-style bytes (ED A0 80), which json.loads lets through
    raw = json.dumps(base | {"description": "PLACEHOLDER"}).encode().replace(b"PLACEHOLDER", b"a\xed\xa0\x80b")
    response = fuzz.api.post("/products", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 422), response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert fuzz.writes() == before
    # while an escaped pair is one character (U+1F642) and is stored as it is
    pair = json.dumps(base | {"description": "smile \U0001f642"}).encode()
    assert b"\\ud83d\\ude42" in pair
    created = fuzz.api.post("/products", content=pair, headers={"Content-Type": "application/json"})
    assert created.status_code == 201, created.text
    assert created.json()["description"] == "smile \U0001f642"


def _imports() -> dict[str, tuple[tuple[str, ...], Any]]:
    from entrepot.catalog.imports import PRODUCT_COLUMNS
    from entrepot.parties.imports import CUSTOMER_COLUMNS, SUPPLIER_COLUMNS, SUPPLIER_ITEM_COLUMNS
    from entrepot.pricing.imports import PRICE_LIST_COLUMNS

    return {
        "/api/v1/imports/products": (PRODUCT_COLUMNS, lambda: {
            "sku": _code("SKU"), "name": "Bolt", "list_price": "1.50", "currency": "USD"}),
        "/api/v1/imports/customers": (CUSTOMER_COLUMNS, lambda: {"code": _code("C"), "name": "Acme",
                                                                 "currency": "USD"}),
        "/api/v1/imports/suppliers": (SUPPLIER_COLUMNS, lambda: {"code": _code("S"), "name": "Bolt Works",
                                                                 "currency": "USD"}),
        "/api/v1/imports/supplier-items": (SUPPLIER_ITEM_COLUMNS, dict),
        "/api/v1/imports/price-lists": (PRICE_LIST_COLUMNS, lambda: {"code": _code("PL"), "name": "Trade",
                                                                     "currency": "USD"}),
    }


HOSTILE_CELLS = ["1e400", "NaN", "-1e20", "999999999999999", "99999999999999999", "1.123456789", "x" * 10_240,
                 "a\x00b"]


def _csv(columns: tuple[str, ...], row: dict[str, str]) -> bytes:
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerow({c: row.get(c, "") for c in columns})
    return out.getvalue().encode()


@pytest.mark.parametrize("path", sorted(_imports()))
def test_hostile_csv_cells_are_never_5xx(path: str, fuzz: FuzzTenant) -> None:
    api = fuzz.api
    columns, valid = _imports()[path]
    crashes = []
    before = fuzz.writes()
    # given a CSV with one valid row, then each cell of it set to each hostile value; and garbage files
    uploads = [(f"{c}={v[:12]!r}", _csv(columns, valid() | {c: v})) for c in columns for v in HOSTILE_CELLS]
    uploads += [("binary", bytes(range(256)) * 4), ("NUL bytes", b"\x00" * 100), ("empty", b"")]
    for name, content in uploads:
        # when uploaded
        response = api.client.post(path, headers=api.headers, files={"file": ("x.csv", content, "text/csv")})
        # then it is refused naming the problem (writing nothing) or accepted; never a crash
        now = fuzz.writes()
        if response.status_code >= 500 or response.json().get("code") == "invalid_value":
            crashes.append(f"{name}: {response.status_code} {response.text[:120]}")
        elif response.status_code >= 400 and now != before:
            crashes.append(f"{name}: refused with {response.status_code}, yet audit/outbox grew")
        before = now
    assert not crashes, f"POST {path}: " + "; ".join(crashes)
