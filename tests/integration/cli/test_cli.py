"""The CLI contract (API-CONTRACT.md): init, tenant create, apikey create, audit verify."""

import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from entrepot.db.engine import get_engine

ENTREPOT = str(Path(sys.executable).with_name("entrepot"))


def run(url, *args, check=True):
    env = {"ENTREPOT_DATABASE_URL": url, "PATH": "/usr/bin:/bin", "ENTREPOT_ENV": "test"}
    result = subprocess.run([ENTREPOT, *args], env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def fresh_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    run(url, "init")
    return url


def test_init_is_idempotent(fresh_sqlite):
    assert run(fresh_sqlite, "init").returncode == 0


def test_tenant_create_prints_its_id_and_apikey_create_prints_the_key_last(fresh_sqlite):
    # when a distributor and a dealer under it are created
    parent_id = run(fresh_sqlite, "tenant", "create", "acme", "--name", "Acme Supply").stdout.strip()
    dealer = run(fresh_sqlite, "tenant", "create", "acme-eu", "--name", "Acme EU", "--parent", "acme",
                 "--currency", "EUR")
    key = run(fresh_sqlite, "apikey", "create", "--tenant", "acme", "--role", "sales").stdout.strip().splitlines()[-1]
    # then ids and the key are printed, and the dealer hangs under its parent
    assert uuid.UUID(parent_id)
    assert uuid.UUID(dealer.stdout.strip())
    assert key.startswith("ent_")
    listing = run(fresh_sqlite, "tenant", "list").stdout
    assert "acme-eu" in listing and "EUR" in listing
    assert parent_id in listing  # whole, to be copied, in a pipe's 80 columns too
    # and `python -m entrepot.cli` is the same command line
    env = {"ENTREPOT_DATABASE_URL": fresh_sqlite, "PATH": "/usr/bin:/bin", "ENTREPOT_ENV": "test"}
    module = subprocess.run([sys.executable, "-m", "entrepot.cli", "tenant", "list"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert module.returncode == 0 and parent_id in module.stdout, module.stderr
    with get_engine(fresh_sqlite).connect() as conn:
        stored = conn.execute(text("SELECT key_hash, role FROM api_keys WHERE role = 'sales'")).one()
        # and what each command wrote is audited as that command, run by whom
        origins = dict(conn.execute(text(
            "SELECT action, request_id FROM audit_entries WHERE action IN ('tenant.create', 'api_key.create')")).all())
    assert key not in stored.key_hash  # stored hashed
    assert origins["tenant.create"].startswith("cli tenant create by "), origins
    assert origins["api_key.create"].startswith("cli apikey create by "), origins


def test_errors_are_clear_and_exit_non_zero(fresh_sqlite):
    run(fresh_sqlite, "tenant", "create", "acme", "--name", "Acme")
    dup = run(fresh_sqlite, "tenant", "create", "acme", "--name", "Again", check=False)
    assert dup.returncode == 1
    assert "already exists" in dup.stderr
    bad = run(fresh_sqlite, "tenant", "create", "Not A Slug", "--name", "x", check=False)
    assert bad.returncode == 1 and "slug" in bad.stderr
    unknown = run(fresh_sqlite, "inventory", "check", "--tenant", "nobody", check=False)
    assert unknown.returncode == 1 and "nobody" in unknown.stderr and "Traceback" not in unknown.stderr
    missing = run(fresh_sqlite, "apikey", "create", "--tenant", "nobody", check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr
    role = run(fresh_sqlite, "apikey", "create", "--tenant", "acme", "--role", "wizard", check=False)
    assert role.returncode == 1 and "role" in role.stderr


def test_audit_verify_catches_tampering(fresh_sqlite):
    run(fresh_sqlite, "tenant", "create", "acme", "--name", "Acme")
    run(fresh_sqlite, "apikey", "create", "--tenant", "acme")
    run(fresh_sqlite, "apikey", "create", "--tenant", "acme")
    intact = run(fresh_sqlite, "audit", "verify", "--tenant", "acme").stdout
    assert "audit chain intact" in intact
    assert int(intact.split(":")[1].split()[0]) >= 3  # tenant set-up and the two keys
    with get_engine(fresh_sqlite).begin() as conn:
        conn.execute(text("UPDATE audit_entries SET action = 'nothing.happened' WHERE seq = 2"))
    broken = run(fresh_sqlite, "audit", "verify", "--tenant", "acme", check=False)
    assert broken.returncode == 1
    assert "entry 2" in broken.stderr


def test_revoked_key_stops_working_over_http(fresh_sqlite, tmp_path):
    from bench._server import server

    run(fresh_sqlite, "tenant", "create", "acme", "--name", "Acme")
    key = run(fresh_sqlite, "apikey", "create", "--tenant", "acme").stdout.strip().splitlines()[-1]
    prefix = key.split("_")[1]
    with server(fresh_sqlite) as base:
        headers = {"Authorization": f"Bearer {key}"}
        assert httpx.get(base + "/api/v1/tenant", headers=headers).json()["slug"] == "acme"
        run(fresh_sqlite, "apikey", "revoke", prefix, "--tenant", "acme")
        import time

        time.sleep(5.5)  # another process's revocation is honoured within the auth cache TTL (5 s)
        assert httpx.get(base + "/api/v1/tenant", headers=headers).status_code == 401


def test_tenant_settings_are_shown_and_changed_from_the_cli(fresh_sqlite):
    import json

    run(fresh_sqlite, "tenant", "create", "acme", "--name", "Acme Supply")
    # when
    changed = run(fresh_sqlite, "tenant", "settings", "acme", "allocation_policy=split", "allow_negative_stock=true",
                  "rate_limit_per_minute=600")
    refused = run(fresh_sqlite, "tenant", "settings", "acme", "tax_rounding=weekly", check=False)
    reset = run(fresh_sqlite, "tenant", "settings", "acme", "rate_limit_per_minute=")
    # then
    assert json.loads(changed.stdout)["allocation_policy"] == "split"
    assert json.loads(changed.stdout)["allow_negative_stock"] is True
    assert refused.returncode == 1 and "tax_rounding" in refused.stderr
    assert refused.stderr.count("one of line, document") == 1, refused.stderr  # each fault said once
    shown = json.loads(run(fresh_sqlite, "tenant", "settings", "acme").stdout)
    assert shown["rate_limit_per_minute"] is None and shown["tax_rounding"] == "line"
    assert json.loads(reset.stdout) == shown


def test_commands_on_a_database_not_yet_initialised_say_to_run_init(tmp_path):
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    for args in (("tenant", "create", "acme", "--name", "Acme"), ("apikey", "create", "--tenant", "acme"),
                 ("inventory", "check"), ("export", "products", "-")):
        result = run(url, *args, check=False)
        assert result.returncode == 1
        assert "entrepot init" in result.stderr and "Traceback" not in result.stderr


def test_demo_provisions_a_tenant_family_each_with_its_own_rules_and_prints_a_key(tmp_path):
    import json

    # given a database nobody has initialised: the demo sets it up itself
    fresh_sqlite = f"sqlite:///{tmp_path / 'demo.db'}"
    # when
    demo = run(fresh_sqlite, "demo", "--port", "8999")
    # then a login is printed, and the dealers run by their own settings
    assert demo.stdout.strip().splitlines()[-1].startswith("ent_")
    listing = run(fresh_sqlite, "tenant", "list").stdout
    assert "northwind-eu" in listing and "northwind-ca" in listing
    europe = json.loads(run(fresh_sqlite, "tenant", "settings", "northwind-eu").stdout)
    canada = json.loads(run(fresh_sqlite, "tenant", "settings", "northwind-ca").stdout)
    assert (europe["allocation_policy"], europe["tax_rounding"]) == ("nearest", "document")
    assert (canada["allocation_policy"], canada["valuation_method"]) == ("split", "fifo")
    # and asking again with --if-missing changes nothing
    assert run(fresh_sqlite, "demo", "--if-missing", "--port", "8999").returncode == 0


def test_a_demo_stopped_part_way_is_not_served_as_if_it_were_whole(tmp_path):
    from entrepot.cli.demo_commands import PARENT

    # given a database where the demo's tenants were created but its data never loaded (a run stopped)
    url = f"sqlite:///{tmp_path / 'half.db'}"
    run(url, "init")
    run(url, "tenant", "create", PARENT, "--name", "Northwind Industrial Supply")
    # when the README's command asks for the demo if missing
    again = run(url, "demo", "--if-missing", "--port", "8999", check=False)
    # then it says what happened and what to do, and prints no login
    assert again.returncode == 1 and "stopped before its data was all loaded" in again.stderr
    assert "ent_" not in again.stdout and "Traceback" not in again.stderr


def test_an_import_cannot_move_a_customer_with_orders_to_another_currency(fresh_sqlite, tmp_path):
    # The check that a customer has documents in its currency is registered by the sales and
    # billing domains; the CLI's own process must know it too, not only the API's.
    from decimal import Decimal

    from entrepot.catalog.service import create_product
    from entrepot.db.uow import tenant_uow
    from entrepot.sales.service import OrderLineInput, create_sales_order

    # given a customer with a draft order, entered by import and the order desk
    tenant_id = uuid.UUID(run(fresh_sqlite, "tenant", "create", "acme", "--name", "Acme").stdout.strip())
    customers = tmp_path / "customers.csv"
    customers.write_text("code,name,currency\nC1,Acme Hardware,USD\n")
    run(fresh_sqlite, "import", "customers", str(customers), "--tenant", "acme")
    with tenant_uow(tenant_id, url=fresh_sqlite) as uow:
        product = create_product(uow, {"sku": "B-1", "name": "Bolt", "list_price": "1.00", "currency": "USD"})
        customer_id = uow.session.execute(text("SELECT id FROM parties_customers WHERE code = 'C1'")).scalar()
        create_sales_order(uow, customer_id=uuid.UUID(str(customer_id)),
                           lines=[OrderLineInput(product.id, Decimal(1))])
        uow.commit()
    # when a second import moves it to EUR
    customers.write_text("code,name,currency\nC1,Acme Hardware,EUR\n")
    moved = run(fresh_sqlite, "import", "customers", str(customers), "--tenant", "acme", check=False)
    # then the row is refused, and the customer keeps USD
    assert moved.returncode == 1 and "currency" in moved.stdout + moved.stderr, moved.stdout + moved.stderr
    with get_engine(fresh_sqlite).connect() as conn:
        assert conn.execute(text("SELECT currency FROM parties_customers WHERE code = 'C1'")).scalar() == "USD"


def test_an_export_to_a_path_it_cannot_write_is_a_message_not_a_traceback(fresh_sqlite, tmp_path):
    run(fresh_sqlite, "tenant", "create", "acme", "--name", "Acme")
    # when the directory does not exist
    result = run(fresh_sqlite, "export", "products", str(tmp_path / "missing" / "p.csv"), "--tenant", "acme",
                 check=False)
    # then
    assert result.returncode == 1
    assert "cannot write" in result.stderr and "Traceback" not in result.stderr, result.stderr


@pytest.mark.parametrize("args", [["serve", "--port", "99999"], ["serve", "--port", "-1"], ["serve", "--workers", "0"],
                                  ["worker", "--batch", "0"], ["worker", "--concurrency", "0"]])
def test_a_port_or_a_count_out_of_range_is_refused_before_anything_runs(args, monkeypatch):
    from typer.testing import CliRunner

    from entrepot.cli import main
    from entrepot.db import bootstrap

    def started() -> None:
        raise AssertionError("the command ran")

    monkeypatch.setattr(main, "init_database", started)  # what serve, then worker, do first
    monkeypatch.setattr(bootstrap, "init_database", started)
    app = main.app
    # when serve is given a port past 65535 (it listened on the port modulo 65536) or no process,
    # or the worker a batch or concurrency of 0 (it ran and never delivered anything)
    result = CliRunner().invoke(app, args)
    # then the option is named, exit 2, and nothing was started
    assert result.exit_code == 2, result.output
    assert args[1] in result.output


def test_an_export_without_a_tenant_among_several_says_to_name_one(fresh_sqlite):
    run(fresh_sqlite, "tenant", "create", "acme", "--name", "Acme")
    run(fresh_sqlite, "tenant", "create", "bolt", "--name", "Bolt")
    # when no tenant is named (and ENTREPOT_TENANT is unset)
    result = run(fresh_sqlite, "export", "products", "-", check=False)
    # then it asks for one, plainly
    assert result.returncode == 1
    assert "give --tenant SLUG or set ENTREPOT_TENANT (there are 2 tenants)" in result.stderr, result.stderr
    assert "not found" not in result.stderr
