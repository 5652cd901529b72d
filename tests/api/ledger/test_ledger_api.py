"""The ledger over HTTP: manual entries and their refusals, reversals, periods, rates, reports."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date
from decimal import Decimal

from sqlalchemy import select

from entrepot.integration.models import OutboxEvent
from entrepot.ledger import posting
from tests.api.conftest import Api, key_for
from tests.factories.ledger import opening_entry_body

D = Decimal


def _count_entries(api: Api) -> int:
    return len(api.get("/ledger/journal-entries?limit=200").json()["items"])


def test_trial_balance_follows_the_contract(api):
    # given an invoice posted by billing and owner's capital entered by hand
    with api.tenant.uow() as uow:
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-000001", on=date(2026, 1, 10),
                             currency="USD", customer_id=uuid.uuid4(), net=D("100.00"), tax=D("8.25"))
        uow.commit()
    assert api.post("/ledger/journal-entries", json=opening_entry_body("500")).status_code == 201
    # when the trial balance is read
    r = api.get("/ledger/trial-balance?as_of=2026-01-31")
    # then lines carry account_code/debit/credit as decimal strings and the totals are equal
    assert r.status_code == 200, r.text
    body = r.json()
    lines = {ln["account_code"]: (ln["debit"], ln["credit"]) for ln in body["lines"]}
    assert lines == {"1000": ("500.00", "0.00"), "1100": ("108.25", "0.00"), "2200": ("0.00", "8.25"),
                     "3000": ("0.00", "500.00"), "4000": ("0.00", "100.00")}
    assert body["total_debit"] == body["total_credit"] == "608.25"
    assert all("account_name" in ln for ln in body["lines"])


def test_trial_balance_as_of_an_earlier_date_and_as_csv(api):
    api.post("/ledger/journal-entries", json=opening_entry_body("100", "2026-01-05"))
    api.post("/ledger/journal-entries", json=opening_entry_body("50", "2026-02-05"))
    january = api.get("/ledger/trial-balance?period=2026-01").json()
    assert january["total_debit"] == "100.00"
    r = api.get("/ledger/trial-balance?as_of=2026-02-28&format=csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = r.text.strip().splitlines()
    assert rows[0] == "account_code,account_name,account_type,debit,credit"
    assert rows[-1] == ",Total,,150.00,150.00"


def test_trial_balance_takes_from_and_to_as_the_other_reports_do(api):
    api.post("/ledger/journal-entries", json=opening_entry_body("100", "2026-01-05"))
    api.post("/ledger/journal-entries", json=opening_entry_body("50", "2026-02-05"))
    # `to` is the last day, as in the other reports (it was ignored: balances through today)
    january = api.get("/ledger/trial-balance?from=2026-01-01&to=2026-01-31").json()
    assert (january["as_of"], january["total_debit"]) == ("2026-01-31", "100.00")
    assert api.get("/ledger/trial-balance?to=2026-01-31").json()["total_debit"] == "100.00"
    # a range that ends before it begins is refused on `from`, not answered with empty books
    for query in ("from=2026-02-01&to=2026-01-31", "from=2026-02-01&as_of=2026-01-31"):
        r = api.get(f"/ledger/trial-balance?{query}")
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "from", (query, r.text)
    # and two different last days are refused
    r = api.get("/ledger/trial-balance?as_of=2026-01-31&to=2026-02-28")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "to", r.text


def test_manual_entry_posts_and_reads_back(api):
    r = api.post("/ledger/journal-entries", json={
        "date": "2026-01-31", "description": "January rent",
        "lines": [{"account_code": "6100", "debit": "1200"}, {"account_code": "1000", "credit": 1200}]})
    assert r.status_code == 201, r.text
    entry = r.json()
    assert entry["number"] == "GEN-000001" and entry["journal"] == "general" and entry["period"] == "2026-01"
    assert [(ln["account_code"], ln["debit"], ln["credit"]) for ln in entry["lines"]] == [
        ("6100", "1200.00", "0.00"), ("1000", "0.00", "1200.00")]
    assert api.get(f"/ledger/journal-entries/{entry['id']}").json()["total"] == "1200.00"


def test_bad_manual_entries_are_refused_and_write_nothing(api):
    # given an archived account and a closed period
    account = api.post("/ledger/accounts", json={"code": "6800", "name": "Old", "type": "expense"}).json()
    assert api.patch(f"/ledger/accounts/{account['id']}", json={"archived": True}).status_code == 200
    period = api.post("/ledger/periods", json={"year": 2025, "month": 12}).json()
    assert api.post(f"/ledger/periods/{period['id']}/close").status_code == 200

    def entry(lines, day="2026-01-31", **extra):  # type: ignore[no-untyped-def]
        return api.post("/ledger/journal-entries", json={"date": day, "lines": lines, **extra})

    cash_out = {"account_code": "1000", "credit": "10"}
    cases = {
        "unbalanced": (entry([{"account_code": "6100", "debit": "10"}, {"account_code": "1000", "credit": "9"}]),
                       422, "unbalanced_entry"),
        "control": (entry([{"account_code": "1100", "debit": "10"}, cash_out]), 422, "control_account"),
        "inventory": (entry([{"account_code": "1200", "debit": "10"}, cash_out]), 422, "control_account"),
        "archived": (entry([{"account_code": "6800", "debit": "10"}, cash_out]), 422, "archived_account"),
        "closed": (entry([{"account_code": "6100", "debit": "10"}, cash_out], "2025-12-15"), 409, "period_closed"),
        "no rate": (entry([{"account_code": "6100", "debit": "10"}, cash_out], currency="CHF"), 422,
                    "no_exchange_rate"),
        "both sides": (entry([{"account_code": "6100", "debit": "10", "credit": "10"}, cash_out]), 422,
                       "validation_failed"),
        "unknown account": (entry([{"account_code": "9999", "debit": "10"}, cash_out]), 422, "validation_failed"),
        "negative": (entry([{"account_code": "6100", "debit": "-10"}, cash_out]), 422, "validation_failed"),
        "sub-cent": (entry([{"account_code": "6100", "debit": "10.001"}, {"account_code": "1000",
                                                                          "credit": "10.001"}]),
                     422, "validation_failed"),
        "not a number": (entry([{"account_code": "6100", "debit": "ten"}, cash_out]), 422, "validation_failed"),
    }
    for name, (response, status, code) in cases.items():
        assert response.status_code == status, f"{name}: {response.status_code} {response.text}"
        assert response.json()["code"] == code, f"{name}: {response.text}"
        assert response.headers["content-type"] == "application/problem+json"
    # then nothing was posted
    assert _count_entries(api) == 0
    assert api.get("/ledger/trial-balance").json()["lines"] == []
    assert "closed" in cases["closed"][0].json()["detail"]


def test_reversal_mirrors_the_entry_once(api):
    original = api.post("/ledger/journal-entries", json=opening_entry_body("300")).json()
    # when it is reversed
    r = api.post(f"/ledger/journal-entries/{original['id']}/reverse", json={"date": "2026-01-20"})
    assert r.status_code == 201, r.text
    reversal = r.json()
    # then the reversal links to the original, balances cancel, and a second reversal is refused
    assert reversal["reversal_of"] == original["id"]
    assert api.get(f"/ledger/journal-entries/{original['id']}").json()["reversed_by"] == reversal["id"]
    assert api.get("/ledger/trial-balance").json()["lines"] == []
    again = api.post(f"/ledger/journal-entries/{original['id']}/reverse")
    assert again.status_code == 409 and again.json()["code"] == "entry_already_reversed"


def test_subledger_entries_cannot_be_reversed_by_hand(api):
    with api.tenant.uow() as uow:
        entry = posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-9", on=date(2026, 1, 10),
                                     currency="USD", customer_id=uuid.uuid4(), net=D(10), tax=D(0))
        uow.commit()
        entry_id = entry.id
    r = api.post(f"/ledger/journal-entries/{entry_id}/reverse")
    assert r.status_code == 422 and r.json()["code"] == "control_account"


def test_closing_and_reopening_a_period_needs_the_right_permission(api):
    period = api.post("/ledger/periods", json={"year": 2026, "month": 3}).json()
    assert period["state"] == "open" and period["allowed_actions"] == ["close"]
    finance = Api(api.client, api.tenant, key_for(api.tenant, "finance"))
    viewer = Api(api.client, api.tenant, key_for(api.tenant, "viewer"))
    # a viewer may read but not close
    assert viewer.get("/ledger/periods").status_code == 200
    assert viewer.post(f"/ledger/periods/{period['id']}/close").status_code == 403
    closed = finance.post(f"/ledger/periods/{period['id']}/close").json()
    assert closed["state"] == "closed" and closed["closed_by"]
    assert finance.post(f"/ledger/periods/{period['id']}/close").status_code == 409
    denied = viewer.post(f"/ledger/periods/{period['id']}/reopen")
    assert denied.status_code == 403 and "finance.period.reopen" in denied.json()["detail"]
    assert finance.post(f"/ledger/periods/{period['id']}/reopen").json()["state"] == "open"
    audit = api.get(f"/audit-entries?entity_type=ledger_period&entity_id={period['id']}").json()["items"]
    assert [a["action"] for a in audit][-2:] == ["ledger.period.close", "ledger.period.reopen"]
    with api.tenant.uow(readonly=True) as uow:
        subject = f"period/{period['id']}"
        events = set(uow.session.scalars(select(OutboxEvent.type).where(OutboxEvent.subject == subject)))
    assert events == {"period.closed.v1", "period.reopened.v1"}


def test_exchange_rates_by_api_and_csv(api):
    assert api.post("/ledger/exchange-rates", json={"currency": "EUR", "date": "2026-01-01",
                                                     "rate": "1.0850"}).status_code == 201
    csv_body = "currency,date,rate\nGBP,2026-01-01,1.27\nJPY,2026-01-01,0.006712\n"
    r = api.post("/ledger/exchange-rates/import", content=csv_body, headers={"Content-Type": "text/csv"})
    assert r.status_code == 201, r.text
    assert r.json()["imported"] == 2
    as_json = api.post("/ledger/exchange-rates/import", json={"csv": "CHF,2026-01-01,1.12"})
    assert as_json.status_code == 201, as_json.text
    rates = {x["currency"]: x["rate"] for x in api.get("/ledger/exchange-rates").json()["items"]}
    assert rates == {"EUR": "1.0850", "GBP": "1.27", "JPY": "0.006712", "CHF": "1.12"}
    # a bad row anywhere writes nothing
    bad = api.post("/ledger/exchange-rates/import", content="SEK,2026-01-01,0.09\nABC,2026-01-01,1\nNOK,2026-13-01,1",
                   headers={"Content-Type": "text/csv"})
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"line 2.currency", "line 3.date"}
    # so does one currency's day given twice (it had kept the last and counted both)
    twice = api.post("/ledger/exchange-rates/import", content="SEK,2026-01-01,0.09\nSEK,2026-01-01,0.10",
                     headers={"Content-Type": "text/csv"})
    assert twice.status_code == 422 and [e["field"] for e in twice.json()["errors"]] == ["line 2"], twice.text
    assert len(api.get("/ledger/exchange-rates").json()["items"]) == 4
    # and a JPY entry converts with all the rate's places
    r = api.post("/ledger/journal-entries", json={
        "date": "2026-01-15", "currency": "JPY",
        "lines": [{"account_code": "6300", "debit": "15000"}, {"account_code": "1000", "credit": "15000"}]})
    assert r.status_code == 201, r.text
    assert r.json()["total"] == "100.68"


def test_reports_profit_and_loss_balance_sheet_aging_statement(api):
    from tests.factories.parties import create_customer

    made = create_customer(api, name="Acme Tools")
    customer = uuid.UUID(made["id"])
    with api.tenant.uow() as uow:
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-1", on=date(2026, 1, 5), currency="USD",
                             customer_id=customer, net=D(1000), tax=D(100), due_on=date(2026, 1, 20))
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-2", on=date(2026, 2, 20), currency="USD",
                             customer_id=customer, net=D(200), tax=D(20), due_on=date(2026, 3, 20))
        posting.post_customer_payment(uow, source_id=uuid.uuid4(), on=date(2026, 2, 25), currency="USD",
                                      customer_id=customer, amount=D(500))
        posting.post_shipment_cost(uow, source_id=uuid.uuid4(), on=date(2026, 1, 5), amount=D(600))
        uow.commit()
    api.post("/ledger/journal-entries", json=opening_entry_body("5000", "2026-01-01"))
    pnl = api.get("/ledger/profit-and-loss?from=2026-01-01&to=2026-02-28").json()
    assert (pnl["total_income"], pnl["cost_of_sales"], pnl["gross_profit"], pnl["net_income"]) == (
        "1200.00", "600.00", "600.00", "600.00")
    assert api.get("/ledger/profit-and-loss?period=2026-02").json()["net_income"] == "200.00"
    sheet = api.get("/ledger/balance-sheet?as_of=2026-02-28").json()
    assert sheet["total_assets"] == sheet["total_liabilities_and_equity"]
    assert sheet["total_assets"] == "5720.00"  # cash 5500 + receivable 820 - inventory 600
    aging = api.get("/ledger/receivables-aging?as_of=2026-02-28").json()
    # 1100 due Jan 20 (39 days overdue) less 500 paid → 600 in 31-60; 220 not yet due
    assert aging["rows"][0]["party_id"] == str(customer)
    # (each row names its customer, as a collector reads the list)
    assert (aging["rows"][0]["party_code"], aging["rows"][0]["party_name"]) == (made["code"], "Acme Tools")
    csv_rows = api.get("/ledger/receivables-aging?as_of=2026-02-28&format=csv").text.splitlines()
    assert csv_rows[0].startswith("party_id,party_code,party_name,current")
    assert csv_rows[1].split(",")[1:4] == [made["code"], "Acme Tools", "220.00"], csv_rows
    assert (aging["totals"]["current"], aging["totals"]["days_31_60"], aging["totals"]["total"]) == (
        "220.00", "600.00", "820.00")
    assert aging["control_balance"] == "820.00"
    statement = api.get(f"/ledger/customer-statement?customer_id={customer}&from=2026-02-01&to=2026-02-28").json()
    assert statement["opening_balance"] == "1100.00"
    assert [(ln["debit"], ln["credit"], ln["balance"]) for ln in statement["lines"]] == [
        ("220.00", "0.00", "1320.00"), ("0.00", "500.00", "820.00")]
    assert statement["closing_balance"] == "820.00"
    ledger = api.get("/ledger/general-ledger?account_code=1100&period=2026-02").json()
    assert (ledger["opening_balance"], ledger["closing_balance"]) == ("1100.00", "820.00")
    for path in ("profit-and-loss?period=2026-02", "balance-sheet?as_of=2026-02-28",
                 "receivables-aging?as_of=2026-02-28", "payables-aging", "general-ledger?account_code=1100",
                 f"customer-statement?customer_id={customer}"):
        r = api.get(f"/ledger/{path}&format=csv" if "?" in path else f"/ledger/{path}?format=csv")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv"), path
    # the statement of a customer the tenant does not have is a 404 naming it, not an empty statement
    r = api.get(f"/ledger/customer-statement?customer_id={uuid.uuid4()}")
    assert (r.status_code, [e["field"] for e in r.json()["errors"]]) == (404, ["customer_id"]), r.text


def test_accounts_chart_roles_and_etag(api):
    accounts = api.get("/ledger/accounts").json()["items"]
    roles = {a["role"] for a in accounts if a["role"]}
    assert {"receivable", "payable", "inventory", "cogs", "revenue", "deferred_revenue", "tax_payable",
            "tax_receivable", "cash", "goods_received_not_invoiced", "fx_gain_loss", "rounding"} <= roles
    receivable = next(a for a in accounts if a["role"] == "receivable")
    assert receivable["control"] is True
    # a second account with a taken role is refused
    dup = api.post("/ledger/accounts", json={"code": "1001", "name": "Bank 2", "type": "asset", "role": "cash"})
    assert dup.status_code == 409
    r = api.get(f"/ledger/accounts/{receivable['id']}")
    stale = r.headers["etag"]
    assert api.patch(f"/ledger/accounts/{receivable['id']}", json={"name": "Trade debtors"},
                     headers={"If-Match": stale}).status_code == 200
    assert api.patch(f"/ledger/accounts/{receivable['id']}", json={"name": "Debtors"},
                     headers={"If-Match": stale}).status_code == 412
    assert api.post("/ledger/accounts", json={"code": "1000", "name": "x", "type": "asset"}).status_code == 409
    assert api.post("/ledger/accounts", json={"code": "8000", "name": "x", "type": "cash"}).status_code == 422
    journals = [j["code"] for j in api.get("/ledger/journals").json()["items"]]
    assert journals == ["cash", "general", "inventory", "purchases", "sales"]


def test_revaluation_endpoint_posts_one_entry_per_currency(api):
    customer = uuid.uuid4()
    api.post("/ledger/exchange-rates/import", content="EUR,2026-01-01,1.10\nEUR,2026-01-31,1.20\n",
             headers={"Content-Type": "text/csv"})
    with api.tenant.uow() as uow:
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-1", on=date(2026, 1, 10), currency="EUR",
                             customer_id=customer, net=D(50), tax=D(0))
        uow.commit()
    r = api.post("/ledger/revaluations", json={"date": "2026-01-31"})
    assert r.status_code == 201, r.text
    [entry] = r.json()["entries"]
    assert entry["source_type"] == "revaluation" and entry["currency"] == "EUR" and entry["total"] == "5.00"
    assert {(ln["account_code"], ln["debit"], ln["credit"]) for ln in entry["lines"]} == {
        ("1100", "5.00", "0.00"), ("7000", "0.00", "5.00")}
    assert api.post("/ledger/revaluations", json={"date": "2026-01-31"}).json()["entries"] == []


def test_general_ledger_pages_keep_the_running_balance(api):
    for day in ("2026-01-05", "2026-01-06", "2026-01-07"):
        api.post("/ledger/journal-entries", json=opening_entry_body("10", day))
    first = api.get("/ledger/general-ledger?account_code=1000&limit=2").json()
    assert [ln["balance"] for ln in first["lines"]] == ["10.00", "20.00"] and first["next_offset"] == 2
    second = api.get(f"/ledger/general-ledger?account_code=1000&limit=2&offset={first['next_offset']}").json()
    assert [ln["balance"] for ln in second["lines"]] == ["30.00"] and second["next_offset"] is None
    assert second["closing_balance"] == "30.00"
    unknown = api.get("/ledger/general-ledger?account_code=0000")
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "account_code"


def test_a_repeated_post_with_the_same_idempotency_key_posts_once(api):
    headers = {"Idempotency-Key": f"je-{uuid.uuid4()}"}
    first = api.post("/ledger/journal-entries", json=opening_entry_body("70"), headers=headers)
    again = api.post("/ledger/journal-entries", json=opening_entry_body("70"), headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert _count_entries(api) == 1


def test_openapi_describes_the_ledger(api):
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/api/v1/ledger/trial-balance", "/api/v1/ledger/journal-entries",
            "/api/v1/ledger/exchange-rates/import"} <= set(paths)


def test_absurd_amounts_are_a_422_not_a_500(api):
    for amount in ("1e20", "NaN", "Infinity", True, [1]):
        r = api.post("/ledger/journal-entries", json={
            "date": "2026-01-31",
            "lines": [{"account_code": "6100", "debit": amount}, {"account_code": "1000", "credit": amount}]})
        assert r.status_code == 422, f"{amount!r}: {r.status_code} {r.text}"
    assert _count_entries(api) == 0


def test_reports_at_the_edges_of_the_calendar_answer(api):
    for path in ("trial-balance?as_of=0001-01-01", "balance-sheet?as_of=0001-01-01",
                 "receivables-aging?as_of=0001-01-01", "payables-aging?as_of=9999-12-31",
                 "profit-and-loss?period=9999-12", "balance-sheet?period=0001-01",
                 "general-ledger?account_code=1000&from=0001-01-01&to=9999-12-31"):
        r = api.get(f"/ledger/{path}")
        assert r.status_code == 200, f"{path}: {r.status_code} {r.text}"
    assert api.get("/ledger/profit-and-loss?period=2026-13").status_code == 422
    assert api.get("/ledger/profit-and-loss?from=2026-02-01&to=2026-01-01").status_code == 422


def test_monthly_profit_and_loss_has_a_column_per_month(api):
    for day, amount in (("2026-01-10", "100"), ("2026-03-05", "40"), ("2026-03-20", "2")):
        r = api.post("/ledger/journal-entries", json={
            "date": day, "lines": [{"account_code": "6100", "debit": amount},
                                   {"account_code": "1000", "credit": amount}]})
        assert r.status_code == 201
    report = api.get("/ledger/profit-and-loss/monthly?from=2026-01-01&to=2026-03-31").json()
    assert report["months"] == ["2026-01", "2026-02", "2026-03"]
    assert [(ln["account_code"], ln["amounts"], ln["total"]) for ln in report["lines"]] == [
        ("6100", ["100.00", "0.00", "42.00"], "142.00")]
    assert report["net_income"] == ["-100.00", "0.00", "-42.00"]
    default = api.get("/ledger/profit-and-loss/monthly?to=2026-03-31").json()
    assert default["months"][0] == "2025-04" and len(default["months"]) == 12
    csv_text = api.get("/ledger/profit-and-loss/monthly?from=2026-01-01&to=2026-03-31&format=csv").text
    assert csv_text.splitlines()[0] == "account_code,account_name,account_type,2026-01,2026-02,2026-03,total"


def test_a_hand_entry_is_dated_within_ten_years_back_and_a_year_ahead(api):
    from datetime import date, timedelta

    from tests.factories.ledger import opening_entry_body

    today = date.today()
    # a typo such as year 1 or 9999, 11 years back or 2 years ahead is refused naming the date
    for day in ("0001-01-01", "9999-12-31", (today - timedelta(days=11 * 366)).isoformat(),
                (today + timedelta(days=2 * 365)).isoformat()):
        r = api.post("/ledger/journal-entries", json=opening_entry_body("10", day))
        assert r.status_code == 422, (day, r.text)
        assert [(e["field"], e["rule"]) for e in r.json()["errors"]] == [("date", "range")]
    # and opened no period of those years
    assert api.get("/ledger/periods?year=1").json()["items"] == []
    # while opening balances 9 years back and an accrual next month are posted
    for day in ((today - timedelta(days=9 * 365)).isoformat(), (today + timedelta(days=31)).isoformat()):
        assert api.post("/ledger/journal-entries", json=opening_entry_body("10", day)).status_code == 201, day
    # and a reversal takes the same bounds
    entry = api.post("/ledger/journal-entries", json=opening_entry_body("10", today.isoformat())).json()
    r = api.post(f"/ledger/journal-entries/{entry['id']}/reverse", json={"date": "0001-01-01"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "date"


def test_a_hand_typed_line_may_name_its_own_customer_supplier_or_product(api):
    # The line's party and product must be the tenant's own (another's is a 404, see
    # tests/api/test_body_references.py); its own customer, supplier and product are taken.
    from tests.factories.catalog import create_product
    from tests.factories.parties import create_customer, create_supplier

    customer, supplier = create_customer(api)["id"], create_supplier(api)["id"]
    product = create_product(api)["id"]
    r = api.post("/ledger/journal-entries", json={
        "date": date.today().isoformat(), "description": "tagged",
        "lines": [{"account_code": "1000", "debit": "2.00", "party_id": customer, "product_id": product},
                  {"account_code": "3000", "credit": "1.00", "party_id": supplier},
                  {"account_code": "3000", "credit": "1.00"}]})
    assert r.status_code == 201, r.text
    assert [ln["party_id"] for ln in r.json()["lines"]] == [customer, supplier, None]


def test_csv_reports_quote_text_a_spreadsheet_would_run_but_not_negative_amounts(api):
    # given an account name and an entry description that a spreadsheet would run as formulas
    r = api.post("/ledger/accounts", json={"code": "6999", "name": '=HYPERLINK("http://evil","x")',
                                           "type": "expense"})
    assert r.status_code == 201, r.text
    r = api.post("/ledger/journal-entries", json={
        "date": "2026-01-05", "description": "-2+3",
        "lines": [{"account_code": "6999", "debit": "100"}, {"account_code": "1000", "credit": "100"}]})
    assert r.status_code == 201, r.text
    # when the reports are read as CSV
    trial = list(csv.DictReader(io.StringIO(api.get("/ledger/trial-balance?as_of=2026-01-31&format=csv").text)))
    cash = list(csv.DictReader(io.StringIO(
        api.get("/ledger/general-ledger?account_code=1000&from=2026-01-01&to=2026-01-31&format=csv").text)))
    # then the text cells start with ', the amounts are numbers a spreadsheet can add up
    assert [r["account_name"] for r in trial if r["account_code"] == "6999"] == ['\'=HYPERLINK("http://evil","x")']
    line = next(r for r in cash if r["number"])
    assert (line["description"], line["credit"], line["balance"]) == ("'-2+3", "100.00", "-100.00")
    assert line["amount"] == "-100.00"  # to the currency's minor unit, as the JSON gives it


def test_exchange_rate_import_names_file_lines_after_a_cell_with_a_line_break(api):
    # given a quoted cell over lines 2-3, then a bad date on line 4
    body = 'currency,date,rate\n"US\nD",2026-01-01,1\nGBP,2026-13-01,1.27\n'
    # when
    r = api.post("/ledger/exchange-rates/import", content=body, headers={"Content-Type": "text/csv"})
    # then the lines are those of the file, as for the master-data imports (not the record count)
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["line 2.currency", "line 4.date"]


def test_a_journal_lines_unknown_party_is_named_as_either_kind_of_party(api):
    # given an id that is neither a customer's nor a supplier's
    stray = str(uuid.uuid4())
    # when a journal line is tagged with it, then the refusal names both kinds of party
    r = api.post("/ledger/journal-entries", json={"date": "2026-01-05", "description": "tagged", "lines": [
        {"account_code": "1000", "debit": "1.00", "party_id": stray}, {"account_code": "3000", "credit": "1.00"}]})
    assert r.status_code == 404, r.text
    assert r.json()["errors"] == [{"field": "lines[0].party_id", "message": f"no customer or supplier {stray}",
                                   "rule": "exists"}]


def test_journal_entries_listed_by_date_refuse_a_range_that_ends_before_it_begins(api):
    api.post("/ledger/journal-entries", json=opening_entry_body("100", "2026-01-05"))
    api.post("/ledger/journal-entries", json=opening_entry_body("50", "2026-02-05"))
    # a range lists the entries dated in it
    january = api.get("/ledger/journal-entries?from=2026-01-01&to=2026-01-31").json()["items"]
    assert [e["date"] for e in january] == ["2026-01-05"]
    # and one that ends before it begins is a 422 on `from`, as on every other list, not an empty page
    r = api.get("/ledger/journal-entries?from=2026-02-01&to=2026-01-31")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "from", r.text


def test_a_control_role_stays_with_the_account_that_has_its_postings(api):
    # given an invoice on the receivable control account and a hand entry on an expense account
    customer = uuid.uuid4()
    with api.tenant.uow() as uow:
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-000001", on=date(2026, 1, 10),
                             currency="USD", customer_id=customer, net=D("100.00"), tax=D("0.00"))
        uow.commit()
    assert api.post("/ledger/journal-entries", json={"date": "2026-01-12", "lines": [
        {"account_code": "6300", "debit": "5"}, {"account_code": "1000", "credit": "5"}]}).status_code == 201
    accounts = {a["code"]: a for a in api.get("/ledger/accounts").json()["items"]}

    def patch(code, body):  # type: ignore[no-untyped-def]
        etag = api.get(f"/ledger/accounts/{accounts[code]['id']}").headers["etag"]
        return api.patch(f"/ledger/accounts/{accounts[code]['id']}", json=body, headers={"If-Match": etag})

    # when the receivable role is taken off 1100 (it would open it to hand entries without a customer)
    r = patch("1100", {"role": None})
    # then it is refused, saying what to do instead
    assert r.status_code == 409 and "archive" in r.json()["detail"], r.text
    hand = api.post("/ledger/journal-entries", json={"date": "2026-01-15", "lines": [
        {"account_code": "1100", "debit": "10"}, {"account_code": "1000", "credit": "10"}]})
    assert hand.status_code == 422 and hand.json()["code"] == "control_account", hand.text
    # and an account with postings of its own does not become the receivable account either
    assert patch("1100", {"archived": True}).status_code == 200
    r = patch("6300", {"role": "receivable"})
    assert r.status_code == 409, r.text
    # while a new account takes the role, and the old one keeps its history under it
    assert api.post("/ledger/accounts", json={"code": "1150", "name": "Trade debtors", "type": "asset",
                                              "role": "receivable"}).status_code == 201
    aging = api.get("/ledger/receivables-aging?as_of=2026-01-31").json()
    assert aging["control_balance"] == aging["totals"]["total"] == "100.00", aging
    # and an account without postings gives up and takes back a control role freely
    new = next(a for a in api.get("/ledger/accounts").json()["items"] if a["code"] == "1150")
    for role in (None, "receivable"):
        etag = api.get(f"/ledger/accounts/{new['id']}").headers["etag"]
        r = api.patch(f"/ledger/accounts/{new['id']}", json={"role": role}, headers={"If-Match": etag})
        assert r.status_code == 200 and r.json()["role"] == role, r.text


def test_a_reversal_is_never_dated_before_the_entry_it_reverses(api):
    original = api.post("/ledger/journal-entries", json=opening_entry_body("300", "2026-01-15")).json()
    # when it is reversed on a day before its own
    r = api.post(f"/ledger/journal-entries/{original['id']}/reverse", json={"date": "2026-01-10"})
    # then it is refused on `date` (the books of the days between would hold the reversal alone)
    assert r.status_code == 422, r.text
    assert (r.json()["errors"][0]["field"], r.json()["errors"][0]["rule"]) == ("date", "range")
    assert api.get("/ledger/trial-balance?as_of=2026-01-12").json()["lines"] == []
    # and on its own day or later it posts
    same_day = api.post(f"/ledger/journal-entries/{original['id']}/reverse", json={"date": "2026-01-15"})
    assert same_day.status_code == 201 and same_day.json()["date"] == "2026-01-15", same_day.text


def test_a_rates_file_sent_again_audits_only_the_rates_it_changes(api):
    # given a rates file imported once
    body = "currency,date,rate\nEUR,2026-03-01,1.08\nGBP,2026-03-01,1.27\n"
    assert api.post("/ledger/exchange-rates/import", content=body, headers={"Content-Type": "text/csv"}
                    ).status_code == 201

    def audited() -> int:
        return len(api.get("/audit-entries", params={"entity_type": "ledger_exchange_rate", "limit": 100}
                           ).json()["items"])

    before = audited()
    # when the same file comes again (a daily feed resending its window), one rate corrected
    again = api.post("/ledger/exchange-rates/import", content=body.replace("1.27", "1.26"),
                     headers={"Content-Type": "text/csv"})
    # then every row is answered, and only the corrected rate is audited again
    assert again.status_code == 201 and again.json()["imported"] == 2
    assert audited() == before + 1
