"""The tenancy wall: the session filters by tenant; on PostgreSQL, RLS is a second wall."""

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from entrepot.db.base import tenant_owned_tables
from entrepot.db.engine import TenancyViolation, get_engine, platform_session
from entrepot.identity.models import ApiKey, AuditEntry
from entrepot.identity.services.api_keys import create_api_key
from tests.conftest import make_tenant


def _issue_key(tenant):
    with tenant.uow() as uow:
        issued = create_api_key(uow, role="viewer", name=f"key of {tenant.slug}")
        uow.commit()
        return issued.api_key.id


def test_orm_queries_see_only_the_current_tenant(tenant, other_tenant):
    # given a key in each tenant
    mine = _issue_key(tenant)
    theirs = _issue_key(other_tenant)
    # when tenant A lists and fetches keys
    with tenant.uow(readonly=True) as uow:
        ids = set(uow.session.scalars(select(ApiKey.id)))
        fetched = uow.session.scalar(select(ApiKey).where(ApiKey.id == theirs))
    # then only its own are visible, even when asked by id
    assert mine in ids
    assert theirs not in ids
    assert fetched is None


def test_insert_is_stamped_with_the_tenant_and_cannot_target_another(tenant, other_tenant):
    with tenant.uow() as uow:
        key = create_api_key(uow).api_key
        assert key.tenant_id == tenant.id
        key2 = ApiKey(tenant_id=other_tenant.id, prefix="x", key_hash="y" * 64, role="admin")
        uow.session.add(key2)
        with pytest.raises(TenancyViolation):
            uow.session.flush()


def test_a_session_without_tenant_or_platform_scope_fails_closed(db_url):
    from sqlalchemy.orm import Session

    with Session(get_engine(db_url)) as session, pytest.raises(TenancyViolation):
        session.scalars(select(ApiKey)).all()


def test_every_tenant_owned_table_has_forced_rls(pg_url):
    with get_engine(pg_url).connect() as conn:
        rows = conn.execute(text(
            "SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class "
            "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")).all()
    flags = {r.relname: (r.relrowsecurity, r.relforcerowsecurity) for r in rows}
    missing = [t for t in tenant_owned_tables() if flags.get(t) != (True, True)]
    assert missing == []


def test_raw_sql_as_the_app_role_sees_no_row_of_another_tenant(pg_url):
    # given two tenants with audit entries and keys
    a = make_tenant(pg_url)
    b = make_tenant(pg_url)
    _issue_key(a)
    _issue_key(b)
    # when tenant A's transaction runs raw SQL, bypassing the ORM filter
    with a.uow(readonly=True) as uow:
        role = uow.session.execute(text("SELECT current_user")).scalar()
        tenants_seen = set(uow.session.execute(text("SELECT DISTINCT tenant_id FROM api_keys")).scalars())
        audit_seen = set(uow.session.execute(text("SELECT DISTINCT tenant_id FROM audit_entries")).scalars())
        b_rows = uow.session.execute(
            text("SELECT count(*) FROM api_keys WHERE tenant_id = :b"), {"b": b.id}).scalar()
    # then it runs as the app role and row-level security hides tenant B
    assert role == "entrepot_app"
    assert tenants_seen == {a.id}
    assert audit_seen == {a.id}
    assert b_rows == 0


def test_the_app_role_cannot_write_into_another_tenant(pg_url):
    a = make_tenant(pg_url)
    b = make_tenant(pg_url)
    with a.uow() as uow, pytest.raises(Exception, match="row-level security"):
        uow.session.execute(text(
            "INSERT INTO roles (id, tenant_id, name, description, permissions, created_at, updated_at) "
            "VALUES (gen_random_uuid(), :b, 'evil', '', '[]', now(), now())"), {"b": b.id})


def test_the_audit_trail_is_append_only_for_the_app_role(pg_url):
    a = make_tenant(pg_url)
    with a.uow() as uow, pytest.raises(Exception, match="permission denied"):
        uow.session.execute(text("UPDATE audit_entries SET actor = 'someone else'"))


@pytest.mark.parametrize("sql", [
    "SELECT name, last_error FROM integration_scheduled_jobs",
    "UPDATE leases SET expires_at = now()",
    "UPDATE integration_consumer_cursors SET emitted = emitted",
    "DELETE FROM alembic_version",
])
def test_the_app_role_keeps_off_the_platforms_own_tables(pg_url, sql):
    # given a tenant transaction (the worker has made its platform rows)
    from entrepot.worker import leases

    leases.acquire("test:platform-table", "me", timedelta(seconds=1), url=pg_url)
    a = make_tenant(pg_url)
    # when raw SQL in it reaches for a platform table, then it is refused
    with a.uow() as uow, pytest.raises(Exception, match="permission denied"):
        uow.session.execute(text(sql))


def test_the_app_role_reads_the_consumer_positions_for_integration_health(pg_url):
    a = make_tenant(pg_url)
    with a.uow(readonly=True) as uow:
        assert uow.session.execute(text("SELECT count(*) FROM integration_consumer_cursors")).scalar() >= 0


def test_the_app_role_changes_only_the_settings_of_its_own_tenant(pg_url):
    a = make_tenant(pg_url)
    with a.uow() as uow:
        changed = uow.session.execute(text("UPDATE tenants SET settings = '{}', updated_at = now()")).rowcount
        uow.rollback()
    assert changed == 1  # its own row only: RLS hides the others
    for statement in ("UPDATE tenants SET status = 'active'", "DELETE FROM tenants",
                      "INSERT INTO tenants (id, slug, name, status, currency, settings, created_at, updated_at) "
                      "VALUES (gen_random_uuid(), 'x', 'x', 'active', 'USD', '{}', now(), now())"):
        with a.uow() as uow, pytest.raises(Exception, match="permission denied"):
            uow.session.execute(text(statement))


def test_a_pooled_connection_carries_no_tenant_into_the_next_transaction(pg_url):
    # given a pool of one connection, used first by a tenant transaction
    a = make_tenant(pg_url)
    engine = get_engine(pg_url)
    with a.uow(readonly=True) as uow:
        assert uow.session.execute(text("SELECT current_setting('entrepot.tenant_id', true)")).scalar() == str(a.id)
    # when the next transactions run on pooled connections without a tenant
    seen = []

    def probe():
        with engine.connect() as conn:
            seen.append((
                conn.execute(text("SELECT current_setting('entrepot.tenant_id', true)")).scalar(),
                conn.execute(text("SELECT current_user")).scalar(),
            ))

    threads = [threading.Thread(target=probe) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then neither the tenant setting nor the app role survived
    assert all(setting in (None, "") for setting, _ in seen)
    assert all(user != "entrepot_app" for _, user in seen)
    # and a platform session (login role) can still see every tenant's rows
    with platform_session(url=pg_url) as s:
        assert s.scalar(select(AuditEntry).where(AuditEntry.tenant_id == a.id).limit(1)) is not None


def test_savepoints_keep_the_tenant_wall_without_setting_it_again(pg_url):
    # given a tenant transaction whose first statement runs inside a savepoint
    a = make_tenant(pg_url)
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    engine = get_engine(pg_url)
    from sqlalchemy import event

    event.listen(engine, "before_cursor_execute", record)
    try:
        with a.uow() as uow:
            # when statements run in a savepoint, after it, and after a rolled-back one
            seen = []
            probe = text("SELECT current_setting('entrepot.tenant_id', true), current_user")
            with uow.session.begin_nested():
                seen.append(tuple(uow.session.execute(probe).one()))
            seen.append(tuple(uow.session.execute(probe).one()))
            uow.session.begin_nested().rollback()
            seen.append(tuple(uow.session.execute(probe).one()))
    finally:
        event.remove(engine, "before_cursor_execute", record)

    # then every one ran as the app role inside the tenant, set once for the transaction
    assert seen == [(str(a.id), "entrepot_app")] * 3
    assert sum("set_config" in s for s in statements) == 1


def _create_tenant(url, slug, name="Acme", template=None):
    from entrepot.db.uow import platform_uow
    from entrepot.identity.services.tenants import TenantCreate, create_tenant

    with platform_uow(url=url) as platform:
        tenant = create_tenant(platform, TenantCreate(slug, name, None, template, "USD"))
        platform.commit()
        return tenant.id


def _tenant_slugs(url):
    from entrepot.identity.models import Tenant

    session = platform_session(url=url)
    try:
        return set(session.scalars(select(Tenant.slug)))
    finally:
        session.close()


def test_a_slug_with_a_trailing_newline_is_refused(db_url):
    from entrepot.kernel.errors import DomainError

    # given a tenant, and its slug with a newline after it
    slug = f"nl-{uuid.uuid4().hex[:12]}"
    _create_tenant(db_url, slug)
    # when the operator creates the second one
    with pytest.raises(DomainError) as refused:
        _create_tenant(db_url, slug + "\n")
    # then it is refused as not a slug, and no tenant was made
    assert [e["field"] for e in refused.value.problem_extra()["errors"]] == ["slug"]
    assert slug + "\n" not in _tenant_slugs(db_url)


@pytest.mark.parametrize(("name", "template", "field"), [("x" * 201, None, "name"), ("Acme", "t" * 64, "template")])
def test_a_tenant_name_or_template_longer_than_its_column_is_a_validation_error(db_url, name, template, field):
    from entrepot.kernel.errors import DomainError

    # when the operator creates a tenant with a name or template longer than it may be
    slug = f"long-{uuid.uuid4().hex[:12]}"
    with pytest.raises(DomainError) as refused:
        _create_tenant(db_url, slug, name, template)
    # then the field is named (not a database error on PostgreSQL, not a stored row on SQLite)
    assert [e["field"] for e in refused.value.problem_extra()["errors"]] == [field]
    assert slug not in _tenant_slugs(db_url)
    # and the longest allowed still goes in
    _create_tenant(db_url, slug, "x" * 200, "t" * 63)
    assert slug in _tenant_slugs(db_url)
