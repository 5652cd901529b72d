"""`entrepot inventory …`: stock ledger checks and housekeeping."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

from entrepot.catalog.service import get_products
from entrepot.cli.friendly import friendly
from entrepot.db.uow import platform_uow, tenant_uow
from entrepot.identity.services import tenants
from entrepot.inventory import service as inventory
from entrepot.kernel.money import format_quantity

err = Console(stderr=True)
out = Console()
inventory_app = typer.Typer(help="Inventory: warehouses, stock ledger, valuation.", no_args_is_help=True)


@inventory_app.command("check")
@friendly
def check(tenant: str | None = typer.Option(None, "--tenant", help="Tenant slug (default: every tenant)")) -> None:
    """Recompute every stock balance from the ledger of moves; exit 1 when any differs."""
    with platform_uow(readonly=True) as platform:
        if tenant:
            targets = [(tenant, tenants.get_tenant_by_slug(platform, tenant).id)]
        else:
            targets = [(t.slug, t.id) for t in tenants.list_tenants(platform)]
    problems = 0
    for slug, tenant_id in targets:
        with tenant_uow(tenant_id, readonly=True) as uow:
            found = inventory.check_balances(uow)
        if not found:
            continue
        problems += len(found)
        # a line each, not a table: the ids stay whole (to be looked up) in a pipe's 80 columns
        out.print(f"tenant {slug}:", markup=False)
        for d in found:
            out.print(f"  {d.describe()}", markup=False, soft_wrap=True)
    if problems:
        err.print(f"[red]{problems} balance(s) differ from the stock ledger[/red]")
        raise typer.Exit(1)
    out.print(f"stock balances match the ledger ({len(targets)} tenant(s) checked)")


@inventory_app.command("expiring-lots")
@friendly
def expiring_lots(tenant: str = typer.Option(..., "--tenant"),
                  days: int | None = typer.Option(
                      None, "--days", min=0, help="Look this many days ahead (default: the tenant's "
                      "lot_expiry_warning_days setting); only lists, never announces"),
                  announce: bool = typer.Option(
                      False, "--announce", help="Also emit lot.expiring.v1 now, as the worker's hourly job does: "
                      "within the tenant's own window only, so it cannot be combined with --days")) -> None:
    """List lots with stock that expire within the window or have expired, and whether each was announced.
    Lists only, unless --announce."""
    if announce and days is not None:
        # Announcing further ahead would use up each lot's one lot.expiring.v1 long before its warning.
        err.print("[red]error:[/red] --announce uses the tenant's lot_expiry_warning_days; leave out --days "
                  "(or change the setting)")
        raise typer.Exit(2)
    with platform_uow(readonly=True) as platform:
        tenant_id = tenants.get_tenant_by_slug(platform, tenant).id
    with tenant_uow(tenant_id, readonly=not announce) as uow:
        if announce:
            lots = inventory.announce_expiring_lots(uow)
            uow.commit()
        else:
            lots = inventory.expiring_lots(uow, days)
        # lot codes are the suppliers': two products can have a lot of the same code
        skus = {pid: p.sku for pid, p in get_products(uow, {x.lot.product_id for x in lots}).items()}
    for x in lots:
        when = f"expired {x.lot.expiry_date}" if x.expired else f"expires {x.lot.expiry_date}"
        note = "announced now" if x.announced_now else "announced" if x.announced else "not announced yet"
        out.print(f"{escape(skus[x.lot.product_id])} lot {escape(x.lot.code)} {when}, "
                  f"{format_quantity(x.on_hand)} on hand ({note})")
    if not lots:
        out.print("no lot with stock expires within the window")


def register(app: typer.Typer) -> None:
    app.add_typer(inventory_app, name="inventory")
