"""`entrepot import products FILE.csv` / `entrepot export products FILE.csv` end to end."""

from __future__ import annotations

from typer.testing import CliRunner

from entrepot.catalog.service import find_product_by_sku
from entrepot.cli.main import app


def test_cli_import_dry_run_import_and_export(tenant, tmp_path):
    runner = CliRunner()
    src = tmp_path / "products.csv"
    src.write_text("sku,name,list_price,currency\nCLI-1,Cli one,2.50,USD\nCLI-2,Cli two,3,USD\n")
    # dry run writes nothing
    r = runner.invoke(app, ["import", "products", str(src), "--tenant", tenant.slug, "--dry-run"])
    assert r.exit_code == 0, r.output
    assert "2 would be created" in r.output
    with tenant.uow(readonly=True) as uow:
        assert find_product_by_sku(uow, "CLI-1") is None
    # the real import
    r = runner.invoke(app, ["import", "products", str(src), "--tenant", tenant.slug])
    assert r.exit_code == 0, r.output
    with tenant.uow(readonly=True) as uow:
        assert find_product_by_sku(uow, "CLI-2").name == "Cli two"
    # export, then a bad file is refused with its row and column, exit 1
    dst = tmp_path / "out.csv"
    r = runner.invoke(app, ["export", "products", str(dst), "--tenant", tenant.slug])
    assert r.exit_code == 0, r.output
    assert dst.read_text().splitlines()[0].startswith("sku,name,")
    bad = tmp_path / "bad.csv"
    bad.write_text("sku,name,list_price,currency\nCLI-3,x,-2,USD\n")
    r = runner.invoke(app, ["import", "products", str(bad), "--tenant", tenant.slug])
    assert r.exit_code == 1
    assert "list_price" in r.output and "min" in r.output


def test_cli_export_quotes_formulas_and_import_of_that_file_changes_nothing(tenant, tmp_path):
    runner = CliRunner()
    src = tmp_path / "products.csv"
    src.write_text("sku,name,description,list_price,currency\nCLI-F,'=1+1,'@cmd,2.50,USD\n")
    r = runner.invoke(app, ["import", "products", str(src), "--tenant", tenant.slug])
    assert r.exit_code == 0, r.output
    with tenant.uow(readonly=True) as uow:
        product = find_product_by_sku(uow, "CLI-F")
        assert (product.name, product.description) == ("=1+1", "@cmd")
    dst = tmp_path / "out.csv"
    r = runner.invoke(app, ["export", "products", str(dst), "--tenant", tenant.slug])
    assert r.exit_code == 0, r.output
    assert dst.read_text().splitlines()[1].startswith("CLI-F,'=1+1,'@cmd,")
    r = runner.invoke(app, ["import", "products", str(dst), "--tenant", tenant.slug])
    assert r.exit_code == 0 and "1 unchanged" in r.output, r.output


def test_cli_import_of_a_file_not_utf8_or_holding_a_nul_is_refused_with_a_message(tenant, tmp_path):
    runner = CliRunner()
    for data, message in [("sku,name,list_price,currency\nL-1,Caf\xe9,1,USD\n".encode("latin-1"), "not UTF-8"),
                          (b"sku,name,list_price,currency\nL-2,a\x00b,1,USD\n", "line 2 contains a NUL")]:
        # given a file the API's upload would refuse
        src = tmp_path / "products.csv"
        src.write_bytes(data)
        # when
        r = runner.invoke(app, ["import", "products", str(src), "--tenant", tenant.slug])
        # then a message and exit 1, not a traceback (nor, on PostgreSQL, the database's DataError)
        assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (r.exception, r.output)
        assert message in r.output
    with tenant.uow(readonly=True) as uow:
        assert find_product_by_sku(uow, "L-1") is None and find_product_by_sku(uow, "L-2") is None
