"""The fast read path (entrepot.api.reads) keeps the kernel's behaviour: same body as the
ORM rendering, ETag, tenant wall, permission 403, problem+json, request id; and the
in-process rate limiter keeps its moving-window semantics."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from entrepot.api import ratelimit
from entrepot.api.reads import load_row
from entrepot.catalog.models import Product
from entrepot.catalog.schemas import ProductRead
from entrepot.kernel.errors import NotFound, RateLimited
from tests.api.conftest import key_for
from tests.factories.catalog import product_body


def _full_product(api) -> dict:  # type: ignore[no-untyped-def]
    r = api.post("/products", json=product_body(
        sku="FAST-1", name="Fast widget", description="every column set", list_price="12.5",
        standard_cost="7.125", gtin="4006381333931", weight_kg="1.25", length_cm="10",
        width_cm="5.5", height_cm="2", track_lots=True))
    assert r.status_code == 201, r.text
    return r.json()


def test_get_product_renders_exactly_what_the_orm_rendering_gives(api):
    # given a product with every optional column set
    created = _full_product(api)
    # when it is read through the API
    r = api.get(f"/products/{created['id']}")
    # then the body is the schema's JSON of the ORM object, byte for byte
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    with api.tenant.uow() as uow:
        product = uow.session.get(Product, uuid.UUID(created["id"]))
        expected = ProductRead.model_validate(product).model_dump_json(by_alias=True)
    assert r.text == expected
    assert r.json() == created
    # and the ETag is the record's, as PATCH expects it in If-Match
    assert r.headers["etag"] == f'W/"{created["id"]}-{created["version"]}"'
    assert r.headers["x-request-id"]


def test_etag_follows_the_version_after_a_change(api):
    created = _full_product(api)
    etag = api.get(f"/products/{created['id']}").headers["etag"]
    r = api.patch(f"/products/{created['id']}", json={"name": "Renamed"}, headers={"If-Match": etag})
    assert r.status_code == 200, r.text
    again = api.get(f"/products/{created['id']}")
    assert again.json()["name"] == "Renamed"
    assert again.headers["etag"] == r.headers["etag"] != etag


def test_another_tenants_product_is_404_problem_json(api, other_api):
    created = _full_product(api)
    r = other_api.get(f"/products/{created['id']}")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "not_found"
    assert r.headers["x-request-id"]


def test_unknown_id_is_404_and_malformed_id_is_422(api):
    assert api.get(f"/products/{uuid.uuid4()}").status_code == 404
    r = api.get("/products/not-a-uuid")
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"


def test_missing_permission_is_403_naming_it(api):
    created = _full_product(api)
    assert api.post("/roles", json={"name": "key_keeper", "permissions": ["identity.api_key.*"]}).status_code == 201
    keeper = key_for(api.tenant, role="key_keeper")
    r = api.client.get(f"/api/v1/products/{created['id']}", headers={"Authorization": f"Bearer {keeper}"})
    assert r.status_code == 403
    assert r.json()["permission"] == "catalog.product.read"


def test_no_key_is_401(api):
    created = _full_product(api)
    r = api.client.get(f"/api/v1/products/{created['id']}")
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"


def test_load_row_filters_by_the_units_tenant(api, other_api):
    created = _full_product(api)
    with other_api.tenant.uow() as uow, pytest.raises(NotFound):
        load_row(uow, Product, uuid.UUID(created["id"]), "product")
    with api.tenant.uow() as uow:
        assert load_row(uow, Product, uuid.UUID(created["id"]), "product").sku == "FAST-1"


# --- rate limiter (moving window of one minute) ----------------------------


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [1000.0]
    monkeypatch.setattr(ratelimit.time, "monotonic", lambda: now[0])
    ratelimit.reset()
    yield now
    ratelimit.reset()


def test_limit_refuses_past_the_budget_with_retry_after_until_the_oldest_leaves(clock):
    tenant = uuid.uuid4()
    for _ in range(3):
        ratelimit.check(tenant, 3)
        clock[0] += 10
    # 3 requests at t=1000, 1010, 1020; now t=1030
    with pytest.raises(RateLimited) as refused:
        ratelimit.check(tenant, 3)
    assert refused.value.retry_after == 30  # the request of t=1000 leaves the window at 1060
    clock[0] = 1060.5
    ratelimit.check(tenant, 3)  # one slot free again
    with pytest.raises(RateLimited):
        ratelimit.check(tenant, 3)


def test_refused_requests_do_not_count_and_tenants_are_separate(clock):
    a, b = uuid.uuid4(), uuid.uuid4()
    ratelimit.check(a, 1)
    for _ in range(5):
        with pytest.raises(RateLimited):
            ratelimit.check(a, 1)
    ratelimit.check(b, 1)  # another tenant has its own budget
    clock[0] += 60.1
    ratelimit.check(a, 1)  # the refused ones did not extend the window


def test_a_limit_of_zero_refuses_everything(clock):
    with pytest.raises(RateLimited) as refused:
        ratelimit.check(uuid.uuid4(), 0)
    assert refused.value.retry_after >= 1


# --- authentication's last-used stamp ----------------------------------------


def test_authentication_survives_another_process_writing_since_its_read_began(api):
    """The last-used stamp is written in its own transaction: on SQLite a read-only
    transaction that then writes fails once another connection has written meanwhile."""
    from sqlalchemy import select, update

    from entrepot.db.uow import platform_uow
    from entrepot.identity.models import ApiKey
    from entrepot.identity.services import api_keys
    from entrepot.kernel import clock

    key = key_for(api.tenant, role="viewer")
    with platform_uow(readonly=True) as reader:
        reader.session.execute(select(ApiKey.id)).all()  # the read transaction has begun
        with platform_uow() as other:  # another API process stamps a key meanwhile
            other.session.execute(update(ApiKey).values(last_used_at=clock.now()))
            other.commit()
        api_keys._last_used_written.clear()  # this process's stamp is due
        actor = api_keys.authenticate_api_key(reader, key)
    assert actor.tenant_id == api.tenant.id
    with platform_uow(readonly=True) as check:
        stamped = check.session.scalar(select(ApiKey.last_used_at).where(ApiKey.id == actor.id))
    assert stamped is not None


@pytest.mark.parametrize(("path", "make", "model", "schema"), [
    ("/customers", "tests.factories.parties:make_customer", "entrepot.parties.models:Customer",
     "entrepot.parties.schemas:CustomerRead"),
    ("/suppliers", "tests.factories.parties:make_supplier", "entrepot.parties.models:Supplier",
     "entrepot.parties.schemas:SupplierRead"),
    ("/supplier-items", "tests.factories.parties:make_supplier_item", "entrepot.parties.models:SupplierItem",
     "entrepot.parties.schemas:SupplierItemRead"),
    ("/warehouses", "tests.factories.inventory:make_warehouse", "entrepot.inventory.models:Warehouse",
     "entrepot.inventory.schemas:WarehouseRead"),
    ("/categories", "tests.factories.catalog:make_category", "entrepot.catalog.models:Category",
     "entrepot.catalog.schemas:CategoryRead"),
])
def test_other_master_records_read_through_the_fast_path_render_as_the_orm_does(api, other_api, path, make, model,
                                                                                 schema):
    import importlib

    def named(ref: str):  # type: ignore[no-untyped-def]
        module, name = ref.split(":")
        return getattr(importlib.import_module(module), name)

    # given a record made through the API
    record_id = named(make)(api)
    # when it is read
    r = api.get(f"{path}/{record_id}")
    # then the body is the schema's JSON of the ORM object, with its ETag; another tenant gets 404
    assert r.status_code == 200, r.text
    with api.tenant.uow() as uow:
        record = uow.session.get(named(model), uuid.UUID(record_id))
        assert r.text == named(schema).model_validate(record).model_dump_json(by_alias=True)
        assert r.headers["etag"] == f'W/"{record.id}-{record.version}"'
    assert other_api.get(f"{path}/{record_id}").status_code == 404


@pytest.mark.parametrize("path", ["/products", "/categories", "/customers", "/suppliers", "/supplier-items",
                                  "/price-lists"])
def test_master_records_answer_create_and_archive_with_their_etag(api, path):
    # given the body of a new record (docs/master-data.md: POST creates, with an ETag header)
    supplier = api.post("/suppliers", json={"code": "SUP-ETAG", "name": "Etag Supplies", "currency": "USD"}).json()
    product = api.post("/products", json=product_body(sku="ETAG-1")).json()
    body = {
        "/products": product_body(sku="ETAG-2"),
        "/categories": {"code": "CAT-ETAG", "name": "Fasteners"},
        "/customers": {"code": "CUS-ETAG", "name": "Etag Buyer", "currency": "USD"},
        "/suppliers": {"code": "SUP-ETAG-2", "name": "Etag Two", "currency": "USD"},
        "/supplier-items": {"supplier_id": supplier["id"], "product_id": product["id"], "cost": "4.10",
                            "currency": "USD"},
        "/price-lists": {"code": "PL-ETAG", "name": "Etag list", "currency": "USD"},
    }[path]
    # when it is created, then archived
    created = api.post(path, json=body)
    assert created.status_code == 201, created.text
    archived = api.post(f"{path}/{created.json()['id']}/archive")
    assert archived.status_code == 200, archived.text
    # then each answer carries the ETag a later PATCH sends back in If-Match
    record = created.json()
    assert created.headers.get("etag") == f'W/"{record["id"]}-{record["version"]}"'
    assert archived.headers.get("etag") == f'W/"{record["id"]}-{archived.json()["version"]}"'
    assert archived.headers["etag"] == api.get(f"{path}/{record['id']}").headers["etag"]


# --- PostgreSQL: the read in one round trip -----------------------------------


def _product_of(tenant) -> uuid.UUID:  # type: ignore[no-untyped-def]
    from entrepot.catalog import service

    with tenant.uow() as uow:
        product = service.create_product(uow, {"sku": f"RT-{uuid.uuid4().hex[:8]}", "name": "Round trip",
                                               "list_price": "3.50", "currency": "USD"})
        uow.commit()
        return product.id


@pytest.fixture
def one_connection(pg_url):  # type: ignore[no-untyped-def]
    """A read pool of a single connection, so the next read gets the same one."""
    from entrepot.db.async_pool import AsyncReadPool, connect_args
    from entrepot.db.engine import get_engine

    return AsyncReadPool(connect_args(get_engine(pg_url)), 1)


def _read(pool, product_id, tenant_id):  # type: ignore[no-untyped-def]
    from entrepot.api.reads import fetch_row_on_postgres
    from entrepot.db.engine import get_engine

    return fetch_row_on_postgres(pool, get_engine().dialect, Product, product_id, tenant_id)


def _run(*steps):  # type: ignore[no-untyped-def]
    """Run coroutine factories in order on one event loop (a pool's connections belong to
    it); their results, in order."""
    import asyncio

    async def main():  # type: ignore[no-untyped-def]
        return [await step() for step in steps]

    return asyncio.run(main())


async def _left_on(pool) -> tuple:  # type: ignore[no-untyped-def]
    """What the pool's next connection carries: (same connection object, transaction status,
    tenant setting, role)."""
    async with pool.connection() as conn:
        cursor = await conn.execute("SELECT current_setting('entrepot.tenant_id', true), current_user")
        setting, user = await cursor.fetchone()
        return conn, conn.info.transaction_status.name, setting or None, user


def test_one_round_trip_read_leaves_no_tenant_on_the_pooled_connection(pg_url, one_connection, monkeypatch):
    from psycopg import AsyncClientCursor

    from tests.conftest import make_tenant

    a, b = make_tenant(pg_url), make_tenant(pg_url)
    product_id = _product_of(a)
    statements: list[str] = []
    execute = AsyncClientCursor.execute

    async def counted(self, query, params=None, **kw):  # type: ignore[no-untyped-def]
        statements.append(query)
        return await execute(self, query, params, **kw)

    monkeypatch.setattr(AsyncClientCursor, "execute", counted)
    # when the product is read in its tenant, then from another
    row, other, left, _ = _run(lambda: _read(one_connection, product_id, a.id),
                                   lambda: _read(one_connection, product_id, b.id),
                                   lambda: _left_on(one_connection), one_connection.close)
    # then the row is the tenant's, each read was one message
    assert (row.id, row.sku, row.list_price, row.version) == (product_id, row.sku, Decimal("3.50"), 1)
    assert other is None
    assert len(statements) == 2 and all("set_config" in s and "SELECT" in s for s in statements)
    # and the connection went back to the pool as it came: idle, no tenant, login role
    _conn, status, setting, user = left
    assert (status, setting) == ("IDLE", None)
    assert user != "entrepot_app"


def test_one_round_trip_read_runs_under_row_level_security(pg_url, one_connection, monkeypatch):
    """Without its own tenant filter, the SELECT still sees only the tenant's rows: it runs
    as the app role with the tenant set, as a unit of work's statements do."""
    from sqlalchemy import bindparam, select

    from entrepot.api import reads
    from tests.conftest import make_tenant

    a, b = make_tenant(pg_url), make_tenant(pg_url)
    product_id = _product_of(a)
    monkeypatch.setattr(reads, "_row_by_id", lambda t: select(t).where(t.c.id == bindparam("id")))
    reads._row_by_id_on_postgres.cache_clear()
    try:
        other, own, _ = _run(lambda: _read(one_connection, product_id, b.id),
                             lambda: _read(one_connection, product_id, a.id), one_connection.close)
        assert other is None
        assert own.id == product_id
    finally:
        reads._row_by_id_on_postgres.cache_clear()


def test_a_failing_one_round_trip_read_leaves_a_clean_connection(pg_url, one_connection, monkeypatch):
    from sqlalchemy import bindparam, literal_column, select
    from sqlalchemy.exc import DataError

    from entrepot.api import reads
    from tests.conftest import make_tenant

    a = make_tenant(pg_url)
    product_id = _product_of(a)
    monkeypatch.setattr(reads, "_row_by_id", lambda t: select(t).where(
        t.c.id == bindparam("id"), literal_column("1/0") == literal_column("1")))
    reads._row_by_id_on_postgres.cache_clear()
    used: list = []

    async def failing_read():  # type: ignore[no-untyped-def]
        async with one_connection.connection() as conn:
            used.append(conn)
        # a database error is SQLAlchemy's, as for any statement (OperationalError answers 503)
        with pytest.raises(DataError):
            await _read(one_connection, product_id, a.id)

    try:
        _, left, _ = _run(failing_read, lambda: _left_on(one_connection), one_connection.close)
    finally:
        reads._row_by_id_on_postgres.cache_clear()
    conn, status, setting, user = left
    assert conn is used[0]  # reused, and clean
    assert (status, setting) == ("IDLE", None)
    assert user != "entrepot_app"


def test_the_read_pool_closes_a_connection_left_in_a_transaction_instead_of_reusing_it(pg_url, one_connection):
    used: list = []

    async def left_in_a_transaction():  # type: ignore[no-untyped-def]
        async with one_connection.connection() as conn:
            used.append(conn)
            await conn.execute("BEGIN")
            await conn.execute("SELECT set_config('entrepot.tenant_id', %s, true)", (str(uuid.uuid4()),))

    _, left, _ = _run(left_in_a_transaction, lambda: _left_on(one_connection), one_connection.close)
    conn, status, setting, _user = left
    assert used[0].closed and conn is not used[0]
    assert (status, setting) == ("IDLE", None)


def test_a_read_on_a_connection_the_server_dropped_is_503_once_then_the_pool_recovers(pg_url, one_connection):
    from sqlalchemy.exc import OperationalError

    from tests.conftest import make_tenant

    a = make_tenant(pg_url)
    product_id = _product_of(a)

    async def dropped_by_the_server():  # type: ignore[no-untyped-def]
        async with one_connection.connection() as conn:
            pid = conn.info.backend_pid
        from psycopg import AsyncConnection

        from entrepot.db.async_pool import connect_args
        from entrepot.db.engine import get_engine

        async with await AsyncConnection.connect(**connect_args(get_engine(pg_url)), autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(OperationalError):  # the problem handler answers it with 503
            await _read(one_connection, product_id, a.id)
        return await _read(one_connection, product_id, a.id)

    row, _ = _run(dropped_by_the_server, one_connection.close)
    assert row.id == product_id


def test_the_read_pool_opens_no_more_connections_than_its_size(pg_url):
    import asyncio

    from entrepot.db.async_pool import AsyncReadPool, connect_args
    from entrepot.db.engine import get_engine
    from tests.conftest import make_tenant

    a = make_tenant(pg_url)
    product_id = _product_of(a)
    pool = AsyncReadPool(connect_args(get_engine(pg_url)), 3)
    seen: set = set()

    async def read_many():  # type: ignore[no-untyped-def]
        async def one():  # type: ignore[no-untyped-def]
            async with pool.connection() as conn:
                seen.add(conn.info.backend_pid)
            return await _read(pool, product_id, a.id)

        return await asyncio.gather(*(one() for _ in range(20)))

    rows, _ = _run(read_many, pool.close)
    assert all(row.id == product_id for row in rows)
    assert 1 <= len(seen) <= 3


def test_the_app_closes_its_read_connections_when_it_shuts_down(pg_url):
    from fastapi.testclient import TestClient

    from entrepot.api.app import create_app
    from entrepot.db import async_pool
    from tests.api.conftest import key_for
    from tests.conftest import make_tenant

    a = make_tenant(pg_url)
    product_id = _product_of(a)
    key = key_for(a)
    opened: list = []
    connect = async_pool.AsyncConnection.connect

    async def recorded(*args, **kw):  # type: ignore[no-untyped-def]
        opened.append(await connect(*args, **kw))
        return opened[-1]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(async_pool.AsyncConnection, "connect", recorded)
        with TestClient(create_app()) as client:
            r = client.get(f"/api/v1/products/{product_id}", headers={"Authorization": f"Bearer {key}"})
            assert r.status_code == 200, r.text
            assert opened and not any(conn.closed for conn in opened)
    assert all(conn.closed for conn in opened)
