"""`entrepot inventory check` recomputes balances from the stock ledger and reports differences."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from typer.testing import CliRunner

from entrepot.cli.main import app
from entrepot.inventory.models import StockBalance
from tests.integration.inventory.helpers import product, stock, warehouse


def test_check_passes_then_catches_a_corrupted_balance(tenant):
    # given stock that matches its ledger
    p = product(tenant)
    wh = warehouse(tenant)
    stock(tenant, wh, p, 5)
    runner = CliRunner()
    ok = runner.invoke(app, ["inventory", "check", "--tenant", tenant.slug])
    assert ok.exit_code == 0, ok.output
    # when someone edits a balance behind the ledger's back
    with tenant.uow() as uow:
        balance = uow.session.scalar(select(StockBalance).where(StockBalance.product_id == p))
        balance.on_hand = Decimal("4")
        uow.commit()
    # then the check names it and fails
    bad = runner.invoke(app, ["inventory", "check", "--tenant", tenant.slug])
    assert bad.exit_code == 1
    assert "on_hand" in bad.output and str(p)[:8] in bad.output


def test_a_difference_names_its_product_and_location_whole_in_a_pipe(tenant, monkeypatch):
    # given a balance edited behind the ledger's back, checked with output to an 80-column pipe
    monkeypatch.setenv("COLUMNS", "80")
    p = product(tenant)
    stock(tenant, warehouse(tenant), p, 5)
    with tenant.uow() as uow:
        balance = uow.session.scalar(select(StockBalance).where(StockBalance.product_id == p))
        balance.on_hand, location = Decimal("4"), balance.location_id
        uow.commit()
    # when
    bad = CliRunner().invoke(app, ["inventory", "check", "--tenant", tenant.slug])
    # then the ids are there whole, to be looked up (they were cut to "01a2…" to fit a table)
    assert bad.exit_code == 1
    assert str(p) in bad.output and str(location) in bad.output, bad.output
    # and the quantities read as the API says them
    assert "ledger says 5, balance says 4" in bad.output, bad.output
