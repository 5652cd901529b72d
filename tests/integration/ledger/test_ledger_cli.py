"""`entrepot ledger …` from the command line."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

from typer.testing import CliRunner

from entrepot.cli.main import app
from entrepot.ledger import posting
from entrepot.ledger.errors import PeriodClosed


def test_trial_balance_close_reopen_and_rates(tenant, tmp_path):
    # given an invoice in January
    with tenant.uow() as uow:
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-1", on=date(2026, 1, 9), currency="USD",
                             customer_id=uuid.uuid4(), net=Decimal("40.00"), tax=Decimal("4.00"))
        uow.commit()
    runner = CliRunner()
    env = {"ENTREPOT_DATABASE_URL": tenant.url}
    # when the trial balance is printed
    tb = runner.invoke(app, ["ledger", "trial-balance", "--tenant", tenant.slug, "--as-of", "2026-01-31"], env=env)
    assert tb.exit_code == 0, tb.output
    assert "44.00" in tb.output and "Total" in tb.output
    # and January is closed from the command line
    closed = runner.invoke(app, ["ledger", "close-period", "2026-01", "--tenant", tenant.slug], env=env)
    assert closed.exit_code == 0, closed.output
    with tenant.uow() as uow:
        try:
            posting.post_shipment_cost(uow, source_id=uuid.uuid4(), on=date(2026, 1, 20), amount=Decimal(1))
            raise AssertionError("posted into a closed period")
        except PeriodClosed:
            pass
    reopened = runner.invoke(app, ["ledger", "reopen-period", "2026-01", "--tenant", tenant.slug], env=env)
    assert reopened.exit_code == 0, reopened.output
    # rates from a file; a bad date is a clean error
    rates = tmp_path / "rates.csv"
    rates.write_text("currency,date,rate\nEUR,2026-01-01,1.09\n")
    imported = runner.invoke(app, ["ledger", "import-rates", str(rates), "--tenant", tenant.slug], env=env)
    assert imported.exit_code == 0 and "imported 1" in imported.output
    bad = runner.invoke(app, ["ledger", "revalue", "2026-02-30", "--tenant", tenant.slug], env=env)
    assert bad.exit_code == 1 and "not a YYYY-MM-DD date" in bad.output
    ok = runner.invoke(app, ["ledger", "revalue", "2026-01-31", "--tenant", tenant.slug], env=env)
    assert ok.exit_code == 0 and "posted 0" in ok.output


def test_check_passes_then_names_an_entry_edited_behind_the_ledgers_back(tenant):
    from sqlalchemy import update

    from entrepot.ledger.models import JournalLine

    with tenant.uow() as uow:
        entry = posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-1", on=date(2026, 2, 9),
                                     currency="USD", customer_id=uuid.uuid4(), net=Decimal(40), tax=Decimal(0))
        uow.commit()
    runner = CliRunner()
    env = {"ENTREPOT_DATABASE_URL": tenant.url}
    ok = runner.invoke(app, ["ledger", "check", "--tenant", tenant.slug], env=env)
    assert ok.exit_code == 0, ok.output
    # when a line is changed with raw SQL (the ORM would refuse)
    with tenant.uow() as uow:
        uow.session.execute(update(JournalLine).where(JournalLine.entry_id == entry.id, JournalLine.line_no == 1)
                            .values(debit=Decimal(41)))
        uow.commit()
    bad = runner.invoke(app, ["ledger", "check", "--tenant", tenant.slug], env=env)
    assert bad.exit_code == 1
    assert f"entry {entry.number} does not balance" in bad.output


def test_import_rates_of_a_file_not_utf8_is_refused_with_a_message(tenant, tmp_path):
    # given a rates file saved in Latin-1 (a note after the rate, as a spreadsheet might add)
    rates = tmp_path / "rates.csv"
    rates.write_bytes("currency,date,rate\nEUR,2026-01-01,1.09\n# taux \xe0 jour\n".encode("latin-1"))
    # when
    r = CliRunner().invoke(app, ["ledger", "import-rates", str(rates), "--tenant", tenant.slug],
                           env={"ENTREPOT_DATABASE_URL": tenant.url})
    # then a message and exit 1, not a UnicodeDecodeError traceback
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (r.exception, r.output)
    assert "UTF-8" in r.output
