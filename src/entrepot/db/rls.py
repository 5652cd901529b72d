"""PostgreSQL row-level security: the second tenancy wall.

Applied by `entrepot init` after migrations to every tenant-owned table, so a
new model is covered by declaring itself `TenantOwned`. The policies compare
`tenant_id` with the per-transaction setting `entrepot.tenant_id`; with no
setting they match nothing.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from entrepot.db.base import tenant_owned_tables

POLICY = "tenant_isolation"
# Tables the app role may only append to: the audit trail and the outbox.
APPEND_ONLY = ("audit_entries", "outbox_events")
# The platform's own tables (no tenant_id): the worker's leases and job states, consumer
# positions, the schema version. Only the login role uses them; of them the app role reads
# the consumer positions (a tenant's integration health counts the events not yet taken).
APP_READS = ("integration_consumer_cursors",)


def ensure_app_role(conn: Connection, role: str) -> None:
    conn.execute(
        text(
            "DO $$ BEGIN "
            f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN "
            f'CREATE ROLE "{role}" NOLOGIN NOSUPERUSER NOBYPASSRLS; '
            "END IF; END $$"
        )
    )
    # The login role switches to the app role per transaction (SET LOCAL ROLE).
    conn.execute(text(f'GRANT "{role}" TO CURRENT_USER'))


def apply_row_level_security(conn: Connection, role: str) -> list[str]:
    ensure_app_role(conn, role)
    conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
    conn.execute(
        text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO "{role}"')
    )
    conn.execute(text(f'GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO "{role}"'))
    existing = {
        r[0] for r in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname='public'"))
    }
    for table in APPEND_ONLY:
        if table in existing:
            conn.execute(text(f'REVOKE UPDATE, DELETE ON "{table}" FROM "{role}"'))
    # A tenant transaction must not read another tenant's failures (a job's last_error names
    # them) nor move the platform's leases, consumer positions or schema version.
    owned = set(tenant_owned_tables())
    for table in sorted(existing - owned - {"tenants"}):
        conn.execute(text(f'REVOKE ALL ON "{table}" FROM "{role}"'))
        if table in APP_READS:
            conn.execute(text(f'GRANT SELECT ON "{table}" TO "{role}"'))
    covered = []
    for table in tenant_owned_tables():
        if table not in existing:
            continue
        conn.execute(text(f'ALTER TABLE "{table}" ENABLE ROW LEVEL SECURITY'))
        conn.execute(text(f'ALTER TABLE "{table}" FORCE ROW LEVEL SECURITY'))
        conn.execute(text(f'DROP POLICY IF EXISTS {POLICY} ON "{table}"'))
        conn.execute(
            text(
                f'CREATE POLICY {POLICY} ON "{table}" '
                "USING (tenant_id = NULLIF(current_setting('entrepot.tenant_id', true), '')::uuid) "
                "WITH CHECK (tenant_id = NULLIF(current_setting('entrepot.tenant_id', true), '')::uuid)"
            )
        )
        covered.append(table)
    # Tenants: the app role reads only its own tenant row, and of it may change only its settings
    # (tenants are made, renamed, suspended or re-parented by the platform, as the login role).
    if "tenants" in existing:
        conn.execute(text(f'REVOKE INSERT, UPDATE, DELETE ON "tenants" FROM "{role}"'))
        conn.execute(text(f'GRANT UPDATE (settings, updated_at) ON "tenants" TO "{role}"'))
        conn.execute(text('ALTER TABLE "tenants" ENABLE ROW LEVEL SECURITY'))
        conn.execute(text(f'DROP POLICY IF EXISTS {POLICY} ON "tenants"'))
        conn.execute(
            text(
                f'CREATE POLICY {POLICY} ON "tenants" '
                "USING (id = NULLIF(current_setting('entrepot.tenant_id', true), '')::uuid)"
            )
        )
    return covered
