"""`entrepot demo`: a demo tenant family with data, and a login printed."""

from __future__ import annotations

import importlib

import typer
from rich.console import Console

from entrepot.db.bootstrap import init_database
from entrepot.db.uow import platform_uow, tenant_uow
from entrepot.identity.models import Tenant
from entrepot.identity.services.api_keys import create_api_key
from entrepot.identity.services.tenant_settings import update_tenant_settings
from entrepot.identity.services.tenants import TenantCreate, create_tenant, get_tenant_by_slug

PARENT = "northwind"
DEALERS = (("northwind-eu", "Northwind Dealer Europe", "EUR"),
           ("northwind-ca", "Northwind Dealer Canada", "CAD"))
# Each tenant runs by its own rules (docs/operating.md#tenant-settings): the distributor gives freed
# stock to backorders at once; the European dealer ships from the warehouse in the customer's country
# and rounds tax per invoice; the Canadian dealer splits lines across its warehouses and values its
# stock first in, first out.
RULES = {PARENT: {"reallocate_on_release": True},
         "northwind-eu": {"allocation_policy": "nearest", "tax_rounding": "document"},
         "northwind-ca": {"allocation_policy": "split", "valuation_method": "fifo"}}
err = Console(stderr=True)


def _exists(slug: str) -> bool:
    from sqlalchemy import select

    with platform_uow(readonly=True) as platform:
        return platform.session.scalar(select(Tenant.id).where(Tenant.slug == slug)) is not None


def _complete() -> bool:
    """Whether an earlier run loaded the demo data to the end: its last step (the last dealer's
    reorder rules) is there. A run stopped part way leaves the tenants without it."""
    from sqlalchemy import select

    from entrepot.inventory.models import ReorderRule

    last = DEALERS[-1][0]
    if not _exists(last):
        return False
    with platform_uow(readonly=True) as platform:
        tenant_id = get_tenant_by_slug(platform, last).id
    with tenant_uow(tenant_id, readonly=True) as uow:
        return uow.session.scalar(select(ReorderRule.id).limit(1)) is not None


def provision_demo() -> None:
    with platform_uow() as platform:
        create_tenant(platform, TenantCreate(PARENT, "Northwind Industrial Supply", None, "distributor", "USD"))
        platform.commit()
    for slug, name, currency in DEALERS:
        with platform_uow() as platform:
            create_tenant(platform, TenantCreate(slug, name, PARENT, "dealer", currency))
            platform.commit()
    for slug, rules in RULES.items():
        with platform_uow(readonly=True) as platform:
            tenant_id = get_tenant_by_slug(platform, slug).id
        with tenant_uow(tenant_id) as uow:
            update_tenant_settings(uow, rules)
            uow.commit()
    # Realistic data (products, stock, orders…) comes from the domains' demo module when present.
    try:
        data = importlib.import_module("entrepot.platform.demo")
    except ModuleNotFoundError as exc:
        if not "entrepot.platform.demo".startswith(exc.name or "?"):
            raise
        return
    data.load_demo_data(PARENT, [d[0] for d in DEALERS])


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        if_missing: bool = typer.Option(False, "--if-missing", help="Skip provisioning when it exists"),
        host: str = typer.Option("127.0.0.1", "--host", help="Host for the printed URL"),
        port: int = typer.Option(8000, "--port", help="Port for the printed URL"),
    ) -> None:
        """Provision the demo tenant family (a distributor and two dealers) and print a login.
        Creates or migrates the database first, as `entrepot init` does."""
        from sqlalchemy import select

        init_database()
        if _exists(PARENT):
            if not if_missing:
                err.print(f"[red]error:[/red] demo tenant {PARENT} already exists")
                raise typer.Exit(1)
            if not _complete():
                err.print("[red]error:[/red] an earlier `entrepot demo` stopped before its data was all loaded; "
                          "start from an empty database (for the embedded one, delete the entrepot.db file) "
                          "and run it again")
                raise typer.Exit(1)
        else:
            err.print("provisioning demo data…")
            provision_demo()
        with platform_uow(readonly=True) as platform:
            tenant_id = platform.session.scalar(select(Tenant.id).where(Tenant.slug == PARENT))
        with tenant_uow(tenant_id) as uow:
            issued = create_api_key(uow, role="admin", name="demo login")
            uow.commit()
        err.print(f"Entrepot: http://{host}:{port}/api/v1/docs  (the API reference; try GET /api/v1/tenant)")
        err.print(f"tenant {PARENT}; admin API key (shown once):")
        print(issued.secret, flush=True)
