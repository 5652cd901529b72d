"""`entrepot import …` and `entrepot export …`: master data as CSV.

    entrepot import products FILE.csv [--tenant SLUG] [--dry-run]
    entrepot export products FILE.csv [--tenant SLUG]

(also customers, suppliers, supplier-items, price-lists, and stock: opening stock on hand). An import checks
every row and commits only when no row has an error (all or nothing); it
prints each problem with its row number, column and rule and exits 1.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from entrepot.catalog.csvio import ImportReport, count_data_rows, decode_upload
from entrepot.cli.friendly import friendly
from entrepot.db.uow import UnitOfWork, platform_uow, tenant_uow
from entrepot.identity.services import tenants
from entrepot.kernel.errors import invalid

err = Console(stderr=True)
out = Console()

Importer = Callable[..., ImportReport]
Exporter = Callable[[UnitOfWork, IO[str]], int]


def _importers() -> dict[str, Importer]:
    from entrepot.catalog.imports import import_products
    from entrepot.inventory.imports import import_stock
    from entrepot.parties.imports import import_customers, import_supplier_items, import_suppliers
    from entrepot.pricing.imports import import_price_lists

    return {"products": import_products, "customers": import_customers, "suppliers": import_suppliers,
            "supplier-items": import_supplier_items, "price-lists": import_price_lists, "stock": import_stock}


def _exporters() -> dict[str, Exporter]:
    from entrepot.catalog.imports import export_products
    from entrepot.inventory.imports import export_stock
    from entrepot.parties.imports import export_customers, export_supplier_items, export_suppliers
    from entrepot.pricing.imports import export_price_lists

    return {"products": export_products, "customers": export_customers, "suppliers": export_suppliers,
            "supplier-items": export_supplier_items, "price-lists": export_price_lists, "stock": export_stock}


def _tenant_id(slug: str | None) -> uuid.UUID:
    """The tenant named, or ENTREPOT_TENANT, or the only tenant there is."""
    slug = slug or os.environ.get("ENTREPOT_TENANT")
    with platform_uow(readonly=True) as platform:
        if slug:
            return tenants.get_tenant_by_slug(platform, slug).id
        all_tenants = tenants.list_tenants(platform)
    if len(all_tenants) == 1:
        return all_tenants[0].id
    raise invalid("tenant", f"give --tenant SLUG or set ENTREPOT_TENANT (there are {len(all_tenants)} tenants)",
                  "required")


def run_import(kind: str, path: Path, tenant: str | None, dry_run: bool) -> ImportReport:
    importer = _importers()[kind]
    total = count_data_rows(str(path))
    # read as an upload is: a file not UTF-8, or holding a NUL (which PostgreSQL cannot store), is
    # refused with a message naming it, not a traceback
    fh = decode_upload(path.read_bytes())
    with tenant_uow(_tenant_id(tenant)) as uow:
        with Progress(TextColumn(f"importing {kind}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                      console=err, transient=True, disable=not err.is_terminal) as bar:
            task = bar.add_task(kind, total=total)
            report = importer(uow, fh, dry_run=dry_run, progress=lambda n: bar.advance(task, n))
        if report.ok and not dry_run:
            uow.commit()
    return report


def _print_report(report: ImportReport, dry_run: bool) -> None:
    if not report.ok:
        table = Table("row", "column", "rule", "problem", title=f"{report.error_count} problem(s); nothing imported")
        for e in report.errors:
            table.add_row(str(e.row), e.column, e.rule, e.message)
        err.print(table)
        if report.error_count > len(report.errors):
            err.print(f"… and {report.error_count - len(report.errors)} more")
        return
    verb = "would be" if dry_run else "were"
    out.print(f"{report.rows} rows: {report.created} {verb} created, {report.updated} {verb} updated, "
              f"{report.unchanged} unchanged" + (" (dry run: nothing written)" if dry_run else ""))


def _make_import(kind: str) -> Callable[..., None]:
    def command(
        file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="CSV file"),
        tenant: str | None = typer.Option(None, "--tenant", help="Tenant slug (default: ENTREPOT_TENANT or the "
                                                                 "only tenant)"),
        dry_run: bool = typer.Option(False, "--dry-run", help="Check every row, write nothing"),
    ) -> None:
        report = run_import(kind, file, tenant, dry_run)
        _print_report(report, dry_run)
        if not report.ok:
            raise typer.Exit(1)

    command.__doc__ = f"Import {kind} from CSV (upsert by natural key; all or nothing)."
    return command


def _make_export(kind: str) -> Callable[..., None]:
    def command(
        file: str = typer.Argument(..., help="CSV file to write ('-' for stdout)"),
        tenant: str | None = typer.Option(None, "--tenant", help="Tenant slug"),
    ) -> None:
        with tenant_uow(_tenant_id(tenant), readonly=True) as uow:
            if file == "-":
                count = _exporters()[kind](uow, sys.stdout)
            else:
                try:
                    fh = open(file, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed below
                except OSError as exc:
                    err.print(f"[red]error:[/red] cannot write {file}: {exc.strerror or exc}")
                    raise typer.Exit(1) from exc
                with fh:
                    count = _exporters()[kind](uow, fh)
        err.print(f"exported {count} {kind}")

    command.__doc__ = f"Export {kind} to CSV (the columns the import reads)."
    return command


KINDS = ("products", "customers", "suppliers", "supplier-items", "price-lists", "stock")


def register(app: Any) -> None:
    import_app = typer.Typer(help="Import master data from CSV.", no_args_is_help=True)
    export_app = typer.Typer(help="Export master data to CSV.", no_args_is_help=True)
    for kind in KINDS:
        import_app.command(kind)(friendly(_make_import(kind)))
        export_app.command(kind)(friendly(_make_export(kind)))
    app.add_typer(import_app, name="import")
    app.add_typer(export_app, name="export")
