"""Shared test set-up: real SQLite and real PostgreSQL, a fresh tenant per test.

Each test gets its own tenant, so tests share a database without seeing each
other's rows (the tenancy wall is itself under test). PostgreSQL tests skip
with a reason when no server answers, and fail instead under CI.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

os.environ.setdefault("ENTREPOT_ENV", "test")
os.environ.setdefault("ENTREPOT_WEBHOOK_ALLOW_PRIVATE", "1")
os.environ.setdefault("ENTREPOT_RATE_LIMIT_PER_MINUTE", "1000000")

from entrepot.db.bootstrap import init_database
from entrepot.db.settings import reset_settings
from entrepot.db.uow import UnitOfWork, platform_uow, tenant_uow
from entrepot.identity.services.tenants import TenantCreate, create_tenant

PG_ADMIN_URL = os.environ.get("ENTREPOT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
IN_CI = bool(os.environ.get("CI"))


def _worker() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def _pg_available() -> str | None:
    import psycopg

    try:
        with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", ""), connect_timeout=3):
            return None
    except Exception as exc:
        return str(exc)


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("db") / f"entrepot-{_worker()}.db"
    url = f"sqlite:///{path}"
    init_database(url)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    problem = _pg_available()
    if problem:
        if IN_CI:
            pytest.fail(f"PostgreSQL is required under CI but unavailable: {problem}")
        pytest.skip(f"PostgreSQL unavailable at {PG_ADMIN_URL}: {problem}")
    import psycopg

    # One database per test process, so parallel runs never share or drop each other's.
    name = f"entrepot_test_{_worker()}_{os.getpid()}"
    admin = PG_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    init_database(url)
    yield url
    from entrepot.db.engine import dispose_engines

    dispose_engines()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Runs the test once on SQLite and once on PostgreSQL; services default to it."""
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")
    monkeypatch.setenv("ENTREPOT_DATABASE_URL", url)
    reset_settings()
    yield url
    reset_settings()


@pytest.fixture
def sqlite_only(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("ENTREPOT_DATABASE_URL", sqlite_url)
    reset_settings()
    yield sqlite_url
    reset_settings()


@pytest.fixture
def pg_url(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("ENTREPOT_DATABASE_URL", postgres_url)
    reset_settings()
    yield postgres_url
    reset_settings()


@dataclass
class TenantHandle:
    id: uuid.UUID
    slug: str
    url: str

    def uow(self, *, readonly: bool = False) -> UnitOfWork:
        return tenant_uow(self.id, readonly=readonly, url=self.url)


def make_tenant(url: str, *, currency: str = "USD", parent: str | None = None, **settings: Any) -> TenantHandle:
    slug = f"t-{uuid.uuid4().hex[:12]}"
    with platform_uow(url=url) as platform:
        tenant = create_tenant(platform, TenantCreate(slug, f"Tenant {slug}", parent, None, currency))
        if settings:
            tenant.settings = {**tenant.settings, **settings}
        platform.commit()
        return TenantHandle(tenant.id, slug, url)


@pytest.fixture
def tenant(db_url: str) -> TenantHandle:
    return make_tenant(db_url)


@pytest.fixture
def other_tenant(db_url: str) -> TenantHandle:
    return make_tenant(db_url)
