"""`entrepot ledger …`: trial balance, period close/reopen, exchange-rate import, revaluation."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer
from rich.table import Table

from entrepot.db.uow import tenant_uow
from entrepot.kernel import clock
from entrepot.kernel.errors import invalid
from entrepot.ledger.services import periods, rates, reports, revaluation
from entrepot.ledger.services.entries import amount_text

ledger_app = typer.Typer(help="The ledger: reports, periods, exchange rates.", no_args_is_help=True)


def _period_start(period: str) -> date:
    try:
        year, month = (int(p) for p in period.split("-"))
        return date(year, month, 1)
    except ValueError as exc:
        raise invalid("period", "a period is YYYY-MM", "period") from exc


def _day(text: str, field: str = "date") -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise invalid(field, f"{text!r} is not a YYYY-MM-DD date", "date") from exc


def register(app: typer.Typer) -> None:
    from entrepot.cli.friendly import friendly
    from entrepot.cli.main import _tenant_id, err, out

    @ledger_app.command("trial-balance")
    @friendly
    def trial_balance(
        tenant: str = typer.Option(..., "--tenant", help="Tenant slug"),
        as_of: str | None = typer.Option(None, "--as-of", help="YYYY-MM-DD (default today)"),
    ) -> None:
        """Print the trial balance as of a date."""
        day = _day(as_of, "as_of") if as_of else clock.today()
        with tenant_uow(_tenant_id(tenant), readonly=True) as uow:
            report = reports.trial_balance(uow, as_of=day)
        table = Table("account", "name", "debit", "credit", title=f"Trial balance as of {day} ({report.currency})")
        for ln in report.lines:
            table.add_row(ln.account_code, ln.account_name, amount_text(ln.debit, report.currency),
                          amount_text(ln.credit, report.currency))
        table.add_row("", "Total", amount_text(report.total_debit, report.currency),
                      amount_text(report.total_credit, report.currency))
        out.print(table)

    @ledger_app.command("close-period")
    @friendly
    def close_period(period: str = typer.Argument(..., help="YYYY-MM"),
                     tenant: str = typer.Option(..., "--tenant")) -> None:
        """Close a period: postings into it are refused from now on."""
        with tenant_uow(_tenant_id(tenant)) as uow:
            closed = periods.close_period(uow, periods.ensure_period(uow, _period_start(period)))
            uow.commit()
        out.print(f"period {closed.year}-{closed.month:02d} closed")

    @ledger_app.command("reopen-period")
    @friendly
    def reopen_period(period: str = typer.Argument(..., help="YYYY-MM"),
                      tenant: str = typer.Option(..., "--tenant")) -> None:
        """Reopen a closed period (audited)."""
        with tenant_uow(_tenant_id(tenant)) as uow:
            opened = periods.reopen_period(uow, periods.ensure_period(uow, _period_start(period)))
            uow.commit()
        out.print(f"period {opened.year}-{opened.month:02d} reopened")

    @ledger_app.command("import-rates")
    @friendly
    def import_rates(path: Path = typer.Argument(..., exists=True, readable=True, help="CSV currency,date,rate"),
                     tenant: str = typer.Option(..., "--tenant")) -> None:
        """Import exchange rates from a CSV file (all or nothing)."""
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as exc:  # as the API answers a body not UTF-8: a message, not a traceback
            raise invalid("file", "the CSV must be UTF-8", "encoding") from exc
        with tenant_uow(_tenant_id(tenant)) as uow:
            rows = rates.import_rates_csv(uow, text)
            uow.commit()
        out.print(f"imported {len(rows)} rates")

    @ledger_app.command("revalue")
    @friendly
    def revalue(on: str = typer.Argument(..., help="YYYY-MM-DD"), tenant: str = typer.Option(..., "--tenant")) -> None:
        """Restate open foreign-currency receivables/payables at the rate of a date."""
        with tenant_uow(_tenant_id(tenant)) as uow:
            posted = revaluation.revalue_open_balances(uow, _day(on))
            uow.commit()
        out.print(f"posted {len(posted)} revaluation entries: {', '.join(e.number for e in posted) or '-'}")

    @ledger_app.command("check")
    @friendly
    def check(tenant: str = typer.Option(..., "--tenant")) -> None:
        """Check every entry balances and journals are numbered without gaps; exit 1 on a problem."""
        with tenant_uow(_tenant_id(tenant), readonly=True) as uow:
            problems = reports.check_books(uow)
            balance = reports.trial_balance(uow)
        if balance.total_debit != balance.total_credit:
            problems.append(f"trial balance off: debits {balance.total_debit}, credits {balance.total_credit}")
        if not problems:
            out.print("books balance; journals numbered without gaps")
            return
        for problem in problems:
            err.print(f"[red]{problem}[/red]")
        raise typer.Exit(1)

    app.add_typer(ledger_app, name="ledger")
