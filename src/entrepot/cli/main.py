"""`entrepot` command line. Each command parses, opens a unit of work, calls a
service, prints. Domain errors become a red message and exit code 1."""

from __future__ import annotations

import getpass
import json
import os
import socket
import sys
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from entrepot.cli.friendly import friendly
from entrepot.db.bootstrap import init_database
from entrepot.db.uow import platform_uow, tenant_uow
from entrepot.identity.services import api_keys, audit, tenant_settings, tenants, users
from entrepot.kernel.context import set_process_origin
from entrepot.kernel.errors import invalid
from entrepot.kernel.process import settle_after_startup

app = typer.Typer(help="Entrepot: ERP for distribution businesses.", no_args_is_help=True)
tenant_app = typer.Typer(help="Tenants (distributors, dealers, resellers).", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys.", no_args_is_help=True)
user_app = typer.Typer(help="Users.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(apikey_app, name="apikey")
app.add_typer(user_app, name="user")
app.add_typer(audit_app, name="audit")

err = Console(stderr=True)
out = Console()


@app.callback()
def _settle(ctx: typer.Context) -> None:
    """Entrepot: ERP for distribution businesses."""
    settle_after_startup()
    # the command's first words only ("tenant create"): arguments may be anything, options secrets
    words = [w for w in sys.argv[1:3] if not w.startswith("-")] or [ctx.invoked_subcommand or ""]
    set_process_origin(f"cli {' '.join(words)} by {_who()}"[:64])  # as long as a request id is kept


def _who() -> str:
    """The operator's login and host, for the audit of what a command changes."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        user = f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()}"


def _tenant_id(slug: str) -> Any:
    with platform_uow(readonly=True) as platform:
        return tenants.get_tenant_by_slug(platform, slug).id


@app.command()
@friendly
def init() -> None:
    """Create or migrate the database (idempotent)."""
    init_database()
    out.print("database is up to date")


@tenant_app.command("create")
@friendly
def tenant_create(
    slug: str,
    name: str = typer.Option(..., "--name", help="Display name"),
    parent: str | None = typer.Option(None, "--parent", help="Parent tenant slug (dealer/reseller)"),
    template: str | None = typer.Option(None, "--template", help="Tenant template name"),
    currency: str = typer.Option("USD", "--currency", help="Functional currency (ISO 4217)"),
) -> None:
    """Create a tenant; prints its id."""
    with platform_uow() as platform:
        tenant = tenants.create_tenant(
            platform, tenants.TenantCreate(slug, name, parent, template, currency)
        )
        platform.commit()
        print(tenant.id)


@tenant_app.command("list")
@friendly
def tenant_list() -> None:
    """List tenants."""
    with platform_uow(readonly=True) as platform:
        rows = tenants.list_tenants(platform)
        by_id = {t.id: t.slug for t in rows}
        table = Table()
        table.add_column("slug", no_wrap=True)
        for heading in ("name", "parent", "currency", "status"):
            table.add_column(heading)
        table.add_column("id", no_wrap=True, min_width=36)  # whole, to be copied, however narrow the output
        for t in rows:
            table.add_row(t.slug, t.name, by_id.get(t.parent_id, "") if t.parent_id else "",
                          t.currency, t.status, str(t.id))
    out.print(table)


@tenant_app.command("settings")
@friendly
def tenant_settings_command(
    slug: str,
    assignments: list[str] = typer.Argument(None, help="NAME=VALUE to set (VALUE as JSON where it parses: "
                                            "true, 600; else text); NAME= resets to the default"),
) -> None:
    """Show a tenant's business settings, or change some of them (prints them all as JSON)."""
    changes: dict[str, Any] = {}
    for assignment in assignments or []:
        name, sep, raw = assignment.partition("=")
        if not sep:
            err.print(f"[red]error:[/red] {assignment!r}: write NAME=VALUE")
            raise typer.Exit(2)
        try:
            changes[name.strip()] = json.loads(raw) if raw else None
        except json.JSONDecodeError:
            changes[name.strip()] = raw
    with tenant_uow(_tenant_id(slug)) as uow:
        if changes:
            current = tenant_settings.update_tenant_settings(uow, changes, by_operator=True)
            uow.commit()
        else:
            current = tenant_settings.get_tenant_settings(uow)
    print(json.dumps(current, indent=2))


@apikey_app.command("create")
@friendly
def apikey_create(
    tenant: str = typer.Option(..., "--tenant", help="Tenant slug"),
    role: str = typer.Option("admin", "--role", help="Role the key acts with"),
    name: str = typer.Option("", "--name", help="A label for the key"),
    expires_at: str | None = typer.Option(None, "--expires-at", help="Refused from then on: an ISO 8601 time "
                                                                     "with its zone, e.g. 2027-01-31T00:00:00Z"),
) -> None:
    """Issue an API key; the key is the last line of output (shown once)."""
    try:
        expires = datetime.fromisoformat(expires_at) if expires_at else None
    except ValueError as exc:
        raise invalid("expires_at", "an ISO 8601 time with its zone, e.g. 2027-01-31T00:00:00Z", "datetime") from exc
    with tenant_uow(_tenant_id(tenant)) as uow:
        issued = api_keys.create_api_key(uow, role=role, name=name, expires_at=expires)
        uow.commit()
    err.print(f"API key {issued.api_key.prefix} for {tenant} (role {role}); store it now:")
    print(issued.secret)
    sys.stdout.flush()


@apikey_app.command("revoke")
@friendly
def apikey_revoke(
    key: str = typer.Argument(..., help="Key id or prefix"),
    tenant: str = typer.Option(..., "--tenant", help="Tenant slug"),
) -> None:
    """Revoke an API key."""
    with tenant_uow(_tenant_id(tenant)) as uow:
        revoked = api_keys.revoke_api_key(uow, key)
        uow.commit()
    out.print(f"revoked {revoked.prefix}")


@user_app.command("create")
@friendly
def user_create(
    email: str,
    tenant: str = typer.Option(..., "--tenant"),
    name: str = typer.Option(..., "--name"),
    role: str = typer.Option("viewer", "--role"),
    password: str | None = typer.Option(None, "--password", help="Asked for when not given"),
) -> None:
    """Create a user; prints its id."""
    if password is None:  # asked on stderr: stdout is the id alone, for a script
        password = typer.prompt("Password", hide_input=True, err=True)
    with tenant_uow(_tenant_id(tenant)) as uow:
        user = users.create_user(uow, email=email, name=name, password=password, role=role)
        uow.commit()
    print(user.id)


@audit_app.command("verify")
@friendly
def audit_verify(tenant: str = typer.Option(..., "--tenant")) -> None:
    """Check the tenant's audit hash chain; exit 1 at the first broken link."""
    with tenant_uow(_tenant_id(tenant), readonly=True) as uow:
        report = audit.verify_chain(uow)
    if report.ok:
        out.print(f"audit chain intact: {report.entries} entries")
        return
    err.print(f"[red]audit chain broken at entry {report.broken_at}:[/red] {report.reason}")
    raise typer.Exit(1)


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8000, "--port", min=0, max=65535),
    workers: int = typer.Option(1, "--workers", min=1, help="API processes"),
    no_worker: bool = typer.Option(False, "--no-worker",
                                   help="Do not run the embedded worker (also ENTREPOT_EMBEDDED_WORKER=0)"),
) -> None:
    """Serve the API (and, unless --no-worker or ENTREPOT_EMBEDDED_WORKER=0, the embedded worker)."""
    from entrepot.cli.serving import embedded_worker, run_api
    from entrepot.db.settings import get_settings

    init_database()
    with embedded_worker(enabled=not no_worker and get_settings().embedded_worker):
        run_api(host, port, workers)


def _register_extensions() -> None:
    """Domain command groups (import, demo, inventory check, worker…) live in cli/ modules."""
    import importlib

    for name in ("worker", "demo", "inventory", "imports", "ledger"):
        try:
            module = importlib.import_module(f"entrepot.cli.{name}_commands")
        except ModuleNotFoundError as exc:
            if not f"entrepot.cli.{name}_commands".startswith(exc.name or "?"):
                raise
            continue
        module.register(app)


_register_extensions()

if __name__ == "__main__":
    app()
