"""Invoices, credit notes, payments and tax through the API."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from decimal import Decimal as D

import pytest

from entrepot.kernel import clock
from tests.factories.parties import create_customer
from tests.factories.sales import act, create_order, invoiced_order, order_desk, shipped_order


def pay(api, customer, amount, allocations, status=201, **extra):
    r = api.post("/payments", json={"customer_id": customer, "amount": amount, "currency": "USD",
                                    "allocations": allocations, **extra})
    assert r.status_code == status, r.text
    return r.json()


def test_partial_payments_then_paid(api):
    desk, _, invoice = invoiced_order(api, 4)  # 50.00
    # when 20.00 is paid
    pay(api, desk.customer_id, "20.00", [{"invoice_id": invoice["id"], "amount": "20.00"}])
    # then the invoice is partially paid
    inv = api.get(f"/invoices/{invoice['id']}").json()
    assert (inv["status"], inv["amount_paid"], inv["amount_due"]) == ("partially_paid", "20.00", "30.00")
    # and the rest settles it
    pay(api, desk.customer_id, "30.00", [{"invoice_id": invoice["id"], "amount": "30.00"}])
    assert api.get(f"/invoices/{invoice['id']}").json()["status"] == "paid"
    # a paid invoice takes no more: 409 naming the allowed actions (none)
    r = api.post("/payments", json={"customer_id": desk.customer_id, "amount": "1.00", "currency": "USD",
                                    "allocations": [{"invoice_id": invoice["id"], "amount": "1.00"}]})
    assert r.status_code == 409 and r.json()["allowed_actions"] == []


def test_unapplied_credit_is_kept_applied_later_and_refunded(api):
    desk, _, invoice = invoiced_order(api, 4)  # 50.00
    # when the customer pays 80.00 with nothing allocated
    payment = pay(api, desk.customer_id, "80.00", [])
    assert payment["unapplied"] == "80.00"
    aging = api.get("/receivables/aging").json()
    assert D(aging["total"]) == D("-30.00")
    # then the credit can be applied to the invoice
    applied = act(api, f"/payments/{payment['id']}/apply", json={"allocations": [
        {"invoice_id": invoice["id"], "amount": "50.00"}]})
    assert (applied["applied"], applied["unapplied"]) == ("50.00", "30.00")
    assert api.get(f"/invoices/{invoice['id']}").json()["status"] == "paid"
    # and the rest refunded, never more than is left
    too_much = api.post(f"/payments/{payment['id']}/refund", json={"amount": "31.00"})
    # (the message gives money as the API does, to the currency's cents)
    assert too_much.status_code == 422 and "only 30.00 of this payment" in too_much.json()["detail"], too_much.text
    refunded = act(api, f"/payments/{payment['id']}/refund", json={"amount": "30.00"})
    assert (refunded["refunded"], refunded["unapplied"]) == ("30.00", "0.00")
    assert D(api.get("/receivables/aging").json()["total"]) == 0


def test_an_invoice_to_a_customer_on_net_0_terms_is_due_the_day_it_is_issued(api):
    # given a customer whose invoices are due on receipt (net 0)
    desk = order_desk(api, stock=10, payment_terms_days=0)
    _, order = shipped_order(api, 4, desk)
    # when it is invoiced
    invoice = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    # then it is due that day, not in the default 30 days, and overdue the next
    assert invoice["due_on"] == invoice["issued_on"] == clock.today().isoformat()
    with clock.frozen_at(clock.now() + timedelta(days=1)):
        assert [i["id"] for i in api.get("/invoices", params={"overdue": "true"}).json()["items"]] == [invoice["id"]]


def test_early_payment_discount_only_within_terms(api):
    desk = order_desk(api, stock=10, payment_terms_days=30, early_discount_percent="2", early_discount_days=10)
    _, order = shipped_order(api, 4, desk)
    invoice = act(api, f"/sales-orders/{order['id']}/invoice", 201)  # 50.00, 2 % = 1.00
    # paying 49.00 received after the discount date (day 11 of 10) takes no discount
    with clock.frozen_at(clock.now() + timedelta(days=11)):
        late = pay(api, desk.customer_id, "49.00", [{"invoice_id": invoice["id"], "amount": "49.00"}])
    assert late["discount"] == "0.00"  # after the discount date: 49.00 is a partial payment
    assert api.get(f"/invoices/{invoice['id']}").json()["amount_due"] == "1.00"


def test_early_payment_discount_taken_in_terms(api):
    desk = order_desk(api, stock=10, payment_terms_days=30, early_discount_percent="2", early_discount_days=10)
    _, order = shipped_order(api, 4, desk)
    invoice = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    paid = pay(api, desk.customer_id, "49.00", [{"invoice_id": invoice["id"], "amount": "49.00"}])
    assert (paid["discount"], paid["applied"]) == ("1.00", "49.00")
    inv = api.get(f"/invoices/{invoice['id']}").json()
    assert (inv["status"], inv["amount_due"], inv["amount_discounted"]) == ("paid", "0.00", "1.00")
    tb = api.get("/ledger/trial-balance").json()
    assert D(tb["total_debit"]) == D(tb["total_credit"])


def test_early_payment_discount_is_on_what_the_invoice_still_bills_after_a_credit_note(api):
    # given an invoice of 50.00 on 2 % terms, half of it credited back (two of four units)
    desk = order_desk(api, stock=10, payment_terms_days=30, early_discount_percent="2", early_discount_days=10)
    _, order = shipped_order(api, 4, desk)
    invoice = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    act(api, f"/invoices/{invoice['id']}/credit-notes", 201, {"lines": [
        {"invoice_line_id": invoice["lines"][0]["id"], "quantity": "2"}]})
    # when the customer pays in terms what is left less 2 % of it: 25.00 − 0.50
    paid = pay(api, desk.customer_id, "24.50", [{"invoice_id": invoice["id"], "amount": "24.50"}])
    # then 0.50 is discounted, not 2 % of the goods sent back too
    assert (paid["discount"], paid["applied"]) == ("0.50", "24.50")
    assert api.get(f"/invoices/{invoice['id']}").json()["status"] == "paid"
    # and 24.00 (2 % of the whole 50.00 off the 25.00 left) is a part payment, not a settlement
    _, order = shipped_order(api, 4, desk)
    other = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    act(api, f"/invoices/{other['id']}/credit-notes", 201, {"lines": [
        {"invoice_line_id": other["lines"][0]["id"], "quantity": "2"}]})
    part = pay(api, desk.customer_id, "24.00", [{"invoice_id": other["id"], "amount": "24.00"}])
    assert part["discount"] == "0.00"
    assert api.get(f"/invoices/{other['id']}").json()["amount_due"] == "1.00"


def test_goods_credited_after_an_early_payment_discount_take_their_discount_back(api):
    # given an invoice of 4 x 12.50 on 2 % terms, settled in terms with 49.00 (1.00 discount)
    desk = order_desk(api, stock=10, payment_terms_days=30, early_discount_percent="2", early_discount_days=10)
    _, order = shipped_order(api, 4, desk)
    invoice = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    pay(api, desk.customer_id, "49.00", [{"invoice_id": invoice["id"], "amount": "49.00"}])
    # when one unit is credited back, then the other three
    line = invoice["lines"][0]["id"]
    one = act(api, f"/invoices/{invoice['id']}/credit-notes", 201, {"lines": [
        {"invoice_line_id": line, "quantity": "1"}]})
    rest = act(api, f"/invoices/{invoice['id']}/credit-notes", 201)
    # then each note credits the goods (revenue and tax as billed) less the discount they earned:
    # 12.50 less 0.25, then 37.50 less what is left of the 1.00 (0.75); the customer gets back the 49.00 paid
    assert [(n["total"], n["discount_reversed"], n["unapplied"]) for n in (one, rest)] == [
        ("12.50", "0.25", "12.25"), ("37.50", "0.75", "36.75")]
    entries = api.get("/ledger/journal-entries", params={"source_id": one["id"]}).json()["items"]
    lines = api.get(f"/ledger/journal-entries/{entries[0]['id']}").json()["lines"]
    assert {(ln["account_code"], ln["debit"], ln["credit"]) for ln in lines} == {
        ("4000", "12.50", "0.00"), ("1100", "0.00", "12.25"), ("4500", "0.00", "0.25")}
    statement = api.get("/ledger/customer-statement", params={"customer_id": desk.customer_id}).json()
    assert statement["closing_balance"] == "-49.00"
    assert api.get("/receivables/aging").json()["customers"][desk.customer_id]["unapplied"] == "-49.00"
    # and no more than was paid can be refunded
    assert api.post(f"/credit-notes/{rest['id']}/refund", json={"amount": "37.50"}).status_code == 422
    act(api, f"/credit-notes/{rest['id']}/refund", json={"amount": "36.75"})
    # and credit_note.issued.v1 says the customer's credit as the notes do
    told = [e["data"] for e in api.get("/events", params={"subject": f"invoice/{invoice['id']}"}).json()["items"]
            if e["type"] == "credit_note.issued.v1"]
    assert [(t["total"], t["discount_reversed"], t["applied_to_invoice"], t["unapplied"]) for t in told] == [
        ("12.50", "0.25", "0.00", "12.25"), ("37.50", "0.75", "0.00", "36.75")]
    # and the audit trail records what was taken back
    audited = [e["after"] for e in api.get("/audit-entries?entity_type=credit_note").json()["items"]
               if e["action"] == "credit_note.issue"]
    assert sorted((a["number"], D(a["discount_reversed"]), D(a["unapplied"])) for a in audited) == [
        (one["number"], D("0.25"), D("12.25")), (rest["number"], D("0.75"), D("36.75"))]


def test_credit_note_by_line_then_in_full(api):
    _, _, invoice = invoiced_order(api, 4)  # 4 x 12.50
    line = invoice["lines"][0]["id"]
    # credit one unit
    note = act(api, f"/invoices/{invoice['id']}/credit-notes", 201, {"lines": [
        {"invoice_line_id": line, "quantity": "1"}], "reason": "short shipped"})
    assert (note["number"], note["total"]) == ("CN-000001", "12.50")
    assert api.get(f"/invoices/{invoice['id']}").json()["amount_due"] == "37.50"
    # more than is left to credit is refused
    r = api.post(f"/invoices/{invoice['id']}/credit-notes", json={"lines": [
        {"invoice_line_id": line, "quantity": "4"}]})
    assert r.status_code == 422
    # the rest in full (no body at all): the invoice is credited
    rest = act(api, f"/invoices/{invoice['id']}/credit-notes", 201)
    assert rest["total"] == "37.50"
    inv = api.get(f"/invoices/{invoice['id']}").json()
    assert (inv["status"], inv["amount_due"]) == ("credited", "0.00")
    assert api.post(f"/invoices/{invoice['id']}/credit-notes", json={}).status_code == 409


def test_tax_by_ship_to_region_and_exemption(api):
    # given Texas tax and two Texas customers, one exempt
    act(api, "/tax-rates", 201, {"name": "Texas", "country": "US", "region": "TX", "rate_percent": "6.25"})
    desk = order_desk(api, stock=20)
    exempt = create_customer(api, currency="USD", tax_exempt=True, exemption_certificate="TX-1")["id"]
    for customer in (desk.customer_id, exempt):
        act(api, f"/customers/{customer}/addresses", 201, {"kind": "ship_to", "is_default": True, "line1": "1 A St",
                                                           "city": "Austin", "region": "TX", "country": "US"})

    def order_for(customer, **extra):
        r = api.post("/sales-orders", json={"customer_id": customer, "lines": [
            {"product_id": desk.product_id, "quantity": "4"}], **extra})
        assert r.status_code == 201, r.text
        return r.json()

    assert order_for(desk.customer_id)["tax_total"] == "3.13"
    assert order_for(exempt)["tax_total"] == "0.00"
    # an explicit ship-to elsewhere is taxed there (no rate: none)
    assert order_for(desk.customer_id, ship_to={"line1": "1 B St", "city": "Reno", "region": "NV",
                                                "country": "US"})["tax_total"] == "0.00"
    rates = api.get("/tax-rates?country=US").json()["items"]
    assert [r["rate_percent"] for r in rates] == ["6.25"]


def test_bad_tax_rates_are_refused(api):
    for body in ({"name": "x", "country": "us", "rate_percent": "5"},
                 {"name": "x", "country": "ZZ", "rate_percent": "5"},  # no such country
                 {"name": "x", "country": "US", "rate_percent": "5", "tax_class": "  "},  # meant a class?
                 {"name": "x", "country": "US", "rate_percent": "150"},
                 {"name": "x", "country": "US", "rate_percent": "5", "valid_from": "2026-02-01",
                  "valid_to": "2026-01-01"}):
        assert api.post("/tax-rates", json=body).status_code == 422, body


def test_invoicing_run_groups_per_customer_when_the_tenant_says_so(api):
    from entrepot.db.uow import platform_uow
    from entrepot.identity.models import Tenant

    # given a tenant that groups invoices per customer, and two shipped orders of one customer
    with platform_uow(url=api.tenant.url) as platform:
        tenant = platform.session.get(Tenant, api.tenant.id)
        tenant.settings = {**tenant.settings, "invoice_grouping": "customer"}
        platform.commit()
    desk, first = shipped_order(api, 2)
    _, second = shipped_order(api, 3, desk)
    # when the invoicing run goes
    invoices = act(api, "/invoicing-runs", 201, {"customer_id": desk.customer_id})
    # then one invoice covers both orders
    assert [(i["total"], len(i["lines"])) for i in invoices] == [("62.50", 2)]
    for order in (first, second):
        read = api.get(f"/sales-orders/{order['id']}").json()
        assert (read["status"], read["invoice_status"]) == ("closed", "invoiced")
        timeline = api.get(f"/sales-orders/{order['id']}/timeline").json()["items"]
        assert "invoice.posted.v1" in [e["type"] for e in timeline]
        # and the order's invoices are found by it, though the invoice bills two orders
        found = api.get("/invoices", params={"sales_order_id": order["id"]}).json()["items"]
        assert [i["id"] for i in found] == [invoices[0]["id"]]
    # and a second run finds nothing
    assert act(api, "/invoicing-runs", 201, {}) == []
    # (and an order not invoiced has no invoice to find)
    _, other = shipped_order(api, 1)
    assert api.get("/invoices", params={"sales_order_id": other["id"]}).json()["items"] == []


def test_invoicing_run_per_order_by_default(api):
    desk, _ = shipped_order(api, 2)
    shipped_order(api, 1, desk)
    invoices = act(api, "/invoicing-runs", 201, {})
    assert sorted(i["total"] for i in invoices) == ["12.50", "25.00"]


def test_credit_left_on_a_note_is_applied_to_another_invoice_then_refunded(api):
    # given a paid invoice credited in full: the note's credit stays with the customer
    desk, _, paid = invoiced_order(api, 4)  # 50.00
    pay(api, desk.customer_id, "50.00", [{"invoice_id": paid["id"], "amount": "50.00"}])
    note = act(api, f"/invoices/{paid['id']}/credit-notes", 201, {})
    assert (note["applied_to_invoice"], note["unapplied"]) == ("0.00", "50.00")
    # and a new invoice of 25.00
    _, order = shipped_order(api, 2, desk)
    other = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    # when 25.00 of the credit is applied to it
    applied = act(api, f"/credit-notes/{note['id']}/apply", json={"allocations": [
        {"invoice_id": other["id"], "amount": "25.00"}]})
    # then the invoice is settled and 25.00 credit remains
    assert applied["unapplied"] == "25.00"
    assert api.get(f"/invoices/{other['id']}").json()["amount_due"] == "0.00"
    # applying more than is left is refused; the rest is refunded
    assert api.post(f"/credit-notes/{note['id']}/apply", json={"allocations": [
        {"invoice_id": other["id"], "amount": "1.00"}]}).status_code in (409, 422)
    refunded = act(api, f"/credit-notes/{note['id']}/refund", json={"amount": "25.00"})
    assert (refunded["applied_to_invoice"], refunded["refunded"], refunded["unapplied"]) == ("25.00", "25.00", "0.00")
    # an integrator hears of both, on the credited invoice's subject, as of the note's issue
    told = api.get("/events", params={"subject": f"invoice/{paid['id']}"}).json()["items"]
    assert [e["type"] for e in told if e["type"].startswith("credit_note.")] == [
        "credit_note.issued.v1", "credit_note.applied.v1", "credit_note.refunded.v1"]
    applied_event, refund_event = (e["data"] for e in told if e["type"] in (
        "credit_note.applied.v1", "credit_note.refunded.v1"))
    assert applied_event["allocations"] == [{"invoice_id": other["id"], "amount": "25.00"}]
    assert (refund_event["amount"], refund_event["unapplied"], refund_event["number"]) == (
        "25.00", "0.00", note["number"])
    tb = api.get("/ledger/trial-balance").json()
    receivable = sum(D(ln["debit"]) - D(ln["credit"]) for ln in tb["lines"] if ln["account_code"] == "1100")
    assert receivable == D(api.get("/receivables/aging").json()["total"]) == 0


def test_invoice_paid_is_told_when_a_credit_note_leaves_a_paid_invoice_nothing_due_and_only_then(api):
    def told_paid(invoice):
        return [e for e in api.get("/events", params={"subject": f"invoice/{invoice['id']}"}).json()["items"]
                if e["type"] == "invoice.paid.v1"]

    # given an invoice of 50.00 paid 20.00
    desk, _, part_paid = invoiced_order(api, 4)
    pay(api, desk.customer_id, "20.00", [{"invoice_id": part_paid["id"], "amount": "20.00"}])
    # when three units (37.50) are credited: 30.00 is absorbed, the invoice has nothing due
    act(api, f"/invoices/{part_paid['id']}/credit-notes", 201, {"lines": [
        {"invoice_line_id": part_paid["lines"][0]["id"], "quantity": "3"}]})
    # then it is paid, and told so once, as a payment settling it would be
    assert api.get(f"/invoices/{part_paid['id']}").json()["status"] == "paid"
    assert [e["data"]["number"] for e in told_paid(part_paid)] == [part_paid["number"]]
    # and an unpaid invoice settled by a note's credit alone is credited, not told paid
    _, order = shipped_order(api, 2, desk)
    unpaid = act(api, f"/sales-orders/{order['id']}/invoice", 201)  # 25.00
    act(api, f"/invoices/{unpaid['id']}/credit-notes", 201, {"lines": [
        {"invoice_line_id": unpaid["lines"][0]["id"], "quantity": "1"}]})
    note = act(api, f"/invoices/{part_paid['id']}/credit-notes", 201)  # the last unit: 12.50 of credit
    assert note["unapplied"] == "12.50"
    act(api, f"/credit-notes/{note['id']}/apply", json={"allocations": [
        {"invoice_id": unpaid["id"], "amount": "12.50"}]})
    assert api.get(f"/invoices/{unpaid['id']}").json()["status"] == "credited"
    assert told_paid(unpaid) == []


def test_a_nightly_run_invoices_what_it_can_and_names_what_the_books_refused(api):
    from datetime import UTC, datetime

    from entrepot.db.uow import platform_uow
    from entrepot.identity.models import Tenant
    from entrepot.sales.service import run_period_invoicing_everywhere

    # given a tenant that invoices per order each month, Texas tax, and two Texas customers, one exempt
    with platform_uow(url=api.tenant.url) as platform:
        tenant = platform.session.get(Tenant, api.tenant.id)
        tenant.settings = {**tenant.settings, "invoice_period": "month"}
        platform.commit()
    act(api, "/tax-rates", 201, {"name": "Texas", "country": "US", "region": "TX", "rate_percent": "6.25"})
    taxed = order_desk(api, stock=20)
    exempt = dataclasses.replace(taxed, customer_id=create_customer(api, currency="USD", tax_exempt=True,
                                                                    exemption_certificate="TX-1")["id"])
    for customer in (taxed.customer_id, exempt.customer_id):
        act(api, f"/customers/{customer}/addresses", 201, {"kind": "ship_to", "is_default": True, "line1": "1 A St",
                                                           "city": "Austin", "region": "TX", "country": "US"})
    # and in October an order shipped to each
    with clock.frozen_at(datetime(2026, 10, 20, 12, tzinfo=UTC)):
        _, taxed_order = shipped_order(api, 2, desk=taxed)
        _, exempt_order = shipped_order(api, 2, desk=exempt)
    # and then the tax payable account archived, with no other account taking its role
    tax_account = next(a for a in api.get("/ledger/accounts").json()["items"] if a["role"] == "tax_payable")
    assert api.patch(f"/ledger/accounts/{tax_account['id']}", json={"archived": True}).status_code == 200
    # when the worker's job runs after October ends
    with clock.frozen_at(datetime(2026, 11, 1, 0, 30, tzinfo=UTC)):
        # (a run by hand is refused whole, naming the order and why)
        r = api.post("/invoicing-runs", json={"through": "2026-10-31"})
        assert r.status_code == 409 and r.json()["detail"].startswith(f"{taxed_order['number']}: "), r.text
        with pytest.raises(RuntimeError) as failed:
            run_period_invoicing_everywhere()
        # then the exempt order, which posts no tax, is invoiced all the same, and the job's error names
        # the taxed order and why
        assert api.get(f"/sales-orders/{exempt_order['id']}").json()["invoice_status"] == "invoiced"
        assert api.get(f"/sales-orders/{taxed_order['id']}").json()["invoice_status"] == "not_invoiced"
        assert "invoiced 1" in str(failed.value) and taxed_order["number"] in str(failed.value)
        assert "tax_payable" in str(failed.value)
        [first] = api.get("/invoices").json()["items"]
        # and once the account is back, the next run invoices it, numbered right after (no gap)
        assert api.patch(f"/ledger/accounts/{tax_account['id']}", json={"archived": False}).status_code == 200
        assert run_period_invoicing_everywhere() == 1
    invoices = api.get("/invoices", params={"sales_order_id": taxed_order["id"]}).json()["items"]
    assert [(i["issued_on"], i["tax_total"]) for i in invoices] == [("2026-10-31", "1.56")]
    assert int(invoices[0]["number"].split("-")[-1]) == int(first["number"].split("-")[-1]) + 1


def test_a_nightly_run_grouping_per_customer_leaves_no_trace_of_the_customer_whose_invoice_was_refused(api):
    from datetime import UTC, datetime

    from entrepot.db.uow import platform_uow
    from entrepot.identity.models import Tenant
    from entrepot.sales.service import run_period_invoicing_everywhere

    # given a tenant invoicing each month one invoice per customer, Texas tax, a taxed and an exempt customer
    with platform_uow(url=api.tenant.url) as platform:
        tenant = platform.session.get(Tenant, api.tenant.id)
        tenant.settings = {**tenant.settings, "invoice_period": "month", "invoice_grouping": "customer"}
        platform.commit()
    act(api, "/tax-rates", 201, {"name": "Texas", "country": "US", "region": "TX", "rate_percent": "6.25"})
    taxed = order_desk(api, stock=20)
    exempt = dataclasses.replace(taxed, customer_id=create_customer(api, currency="USD", tax_exempt=True,
                                                                    exemption_certificate="TX-1")["id"])
    for customer in (taxed.customer_id, exempt.customer_id):
        act(api, f"/customers/{customer}/addresses", 201, {"kind": "ship_to", "is_default": True, "line1": "1 A St",
                                                           "city": "Austin", "region": "TX", "country": "US"})
    # and two orders of each shipped in October, the taxed customer's first
    with clock.frozen_at(datetime(2026, 10, 20, 12, tzinfo=UTC)):
        refused = [shipped_order(api, n, desk=taxed)[1] for n in (2, 3)]
        invoiced = [shipped_order(api, n, desk=exempt)[1] for n in (1, 2)]
    tax_account = next(a for a in api.get("/ledger/accounts").json()["items"] if a["role"] == "tax_payable")
    assert api.patch(f"/ledger/accounts/{tax_account['id']}", json={"archived": True}).status_code == 200
    with clock.frozen_at(datetime(2026, 11, 1, 0, 30, tzinfo=UTC)):
        events = len(api.get("/events", params={"limit": 200}).json()["items"])
        audit = len(api.get("/audit-entries", params={"limit": 200}).json()["items"])
        books = {a["account_code"]: a for a in api.get("/ledger/trial-balance").json()["lines"]}
        # when the worker's job runs after October ends, and the taxed customer's invoice is refused
        with pytest.raises(RuntimeError, match=f"{refused[0]['number']}, {refused[1]['number']}: "):
            run_period_invoicing_everywhere()
        # then the exempt customer has one invoice for both orders, numbered first (the refused one's number
        # went back), and only its posting, events and audit entries were added
        [invoice] = api.get("/invoices").json()["items"]
        assert (invoice["customer_id"], invoice["total"]) == (exempt.customer_id, "37.50")
        assert [api.get(f"/sales-orders/{o['id']}").json()["invoice_status"] for o in refused + invoiced] == [
            "not_invoiced", "not_invoiced", "invoiced", "invoiced"]
        added = api.get("/events", params={"limit": 200}).json()["items"][events:]
        assert sorted(e["type"] for e in added) == ["invoice.posted.v1", "journal_entry.posted.v1",
                                                    "sales_order.closed.v1", "sales_order.closed.v1"]
        assert not any(o["id"] in str(e) or taxed.customer_id in str(e) for o in refused for e in added)
        entries = api.get("/audit-entries", params={"limit": 200}).json()["items"]
        assert len(entries) == audit + 2  # the invoice's and its journal entry's
        after = {a["account_code"]: a for a in api.get("/ledger/trial-balance").json()["lines"]}
        assert {code for code in after if after[code] != books.get(code)} == {"1100", "4000"}
        assert (after["1100"]["debit"], after["4000"]["credit"]) == ("37.50", "37.50")
        # and once the account is back, the next run invoices the taxed customer's two orders, numbered next
        assert api.patch(f"/ledger/accounts/{tax_account['id']}", json={"archived": False}).status_code == 200
        assert run_period_invoicing_everywhere() == 1
    numbers = sorted(int(i["number"].split("-")[-1]) for i in api.get("/invoices").json()["items"])
    assert numbers == [numbers[0], numbers[0] + 1]


def _ship(api, desk, order, quantity):
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"],
                                            "lines": [{"sales_order_line_id": order["lines"][0]["id"],
                                                       "quantity": str(quantity)}]})
    act(api, f"/shipments/{shipment['id']}/ship", json={"carrier": "UPS", "tracking_number": "1Z999"})


def test_a_period_run_invoices_only_what_shipped_by_the_periods_end_and_the_worker_runs_the_next(api):
    from datetime import UTC, datetime

    from entrepot.db.uow import platform_uow
    from entrepot.identity.models import Tenant
    from entrepot.kernel import clock
    from entrepot.sales.service import run_period_invoicing_everywhere

    # given a tenant that invoices per customer per month
    with platform_uow(url=api.tenant.url) as platform:
        tenant = platform.session.get(Tenant, api.tenant.id)
        tenant.settings = {**tenant.settings, "invoice_grouping": "customer", "invoice_period": "month"}
        platform.commit()
    # and in October: one order shipped whole, another shipped 1 of 3
    with clock.frozen_at(datetime(2026, 10, 20, 12, tzinfo=UTC)):
        desk, whole = shipped_order(api, 2)
        split = create_order(api, desk, 3)
        act(api, f"/sales-orders/{split['id']}/confirm")
        _ship(api, desk, split, 1)
    # and in November: a third order shipped, and the rest of the second
    with clock.frozen_at(datetime(2026, 11, 2, 9, tzinfo=UTC)):
        _, november = shipped_order(api, 4, desk)
        _ship(api, desk, split, 2)
    with clock.frozen_at(datetime(2026, 11, 5, 9, tzinfo=UTC)):
        # a run for a day not begun yet is refused
        r = api.post("/invoicing-runs", json={"through": "2026-11-06"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "through"
        # so is an invoice date in the future, or before the day it bills up to
        for on in ("2026-11-06", "2026-10-30"):
            r = api.post("/invoicing-runs", json={"through": "2026-10-31", "on": on})
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "on", on
        # when October's run is made in November
        [october] = act(api, "/invoicing-runs", 201, {"through": "2026-10-31", "on": "2026-10-31"})
        # then it holds October's shipments only: 2 + 1 units at 12.50
        assert (october["issued_on"], october["total"]) == ("2026-10-31", "37.50")
        assert sorted(D(ln["quantity"]) for ln in october["lines"]) == [1, 2]
        assert api.get(f"/sales-orders/{whole['id']}").json()["invoice_status"] == "invoiced"
        assert api.get(f"/sales-orders/{split['id']}").json()["invoice_status"] == "partially_invoiced"
        assert api.get(f"/sales-orders/{november['id']}").json()["invoice_status"] == "not_invoiced"
        # and the worker's daily job, still in November, finds October done
        assert run_period_invoicing_everywhere() == 0
    # when the worker's job runs after November ends
    with clock.frozen_at(datetime(2026, 12, 1, 0, 30, tzinfo=UTC)):
        assert run_period_invoicing_everywhere() == 1
        assert run_period_invoicing_everywhere() == 0  # and again: nothing more
    # then November's shipments are on one invoice dated the month's last day
    invoices = api.get("/invoices", params={"customer_id": desk.customer_id}).json()["items"]
    latest = max(invoices, key=lambda i: i["number"])
    assert (latest["issued_on"], latest["total"]) == ("2026-11-30", "75.00")
    for order in (whole, split, november):
        assert api.get(f"/sales-orders/{order['id']}").json()["invoice_status"] == "invoiced"


def test_receivables_aging_keeps_each_currency_apart(api):
    # given a USD customer owing 50.00 and a EUR customer owing 25.00 with 5.00 of unapplied credit
    usd, _, _ = invoiced_order(api, 4)  # 4 x 12.50
    act(api, "/ledger/exchange-rates", 201, {"currency": "EUR", "date": "2026-01-01", "rate": "1.10"})
    eur = order_desk(api, currency="EUR", list_price="6.25")
    _, eur_order = shipped_order(api, 4, desk=eur)
    eur_invoice = act(api, f"/sales-orders/{eur_order['id']}/invoice", 201)
    pay(api, eur.customer_id, "5.00", [], currency="EUR")
    # when the aging is read
    aging = api.get("/receivables/aging").json()
    # then each customer is in its own currency, amounts to the cent, and there is a total per currency
    assert aging["customers"][usd.customer_id]["currency"] == "USD"
    assert aging["customers"][usd.customer_id]["current"] == "50.00"
    assert aging["customers"][eur.customer_id] == {
        "currency": "EUR", "current": eur_invoice["amount_due"], "1_30": "0.00", "31_60": "0.00", "61_90": "0.00",
        "over_90": "0.00", "unapplied": "-5.00"}
    assert aging["totals"] == {"USD": "50.00", "EUR": str(D(eur_invoice["amount_due"]) - 5)}
    # and no single total adds dollars to euros
    assert aging["total"] is None


def test_a_payment_is_dated_today_or_in_the_past_year(api):
    from datetime import date, timedelta

    desk, _, invoice = invoiced_order(api, 4)  # 50.00
    today = date.today()
    # a payment dated in the future, or before the last year and a day, is refused naming the date
    for received_on, rule in ((today + timedelta(days=1), "not_future"), (today - timedelta(days=367), "range"),
                              (date(1, 1, 1), "range"), (date(9999, 12, 31), "not_future")):
        r = api.post("/payments", json={"customer_id": desk.customer_id, "amount": "50.00", "currency": "USD",
                                        "received_on": received_on.isoformat(),
                                        "allocations": [{"invoice_id": invoice["id"], "amount": "50.00"}]})
        assert r.status_code == 422, (received_on, r.text)
        assert [(e["field"], e["rule"]) for e in r.json()["errors"]] == [("received_on", rule)]
    # and nothing was written
    assert api.get("/payments").json()["items"] == []
    assert api.get(f"/invoices/{invoice['id']}").json()["amount_due"] == "50.00"
    # while one received a year ago is recorded
    pay(api, desk.customer_id, "50.00", [{"invoice_id": invoice["id"], "amount": "50.00"}],
        received_on=(today - timedelta(days=366)).isoformat())


def test_an_invoicing_run_is_never_dated_before_what_it_bills_shipped(api):
    from datetime import UTC, datetime

    from entrepot.kernel import clock

    # given an order shipped on 2026-11-20
    with clock.frozen_at(datetime(2026, 11, 20, 12, tzinfo=UTC)):
        desk, order = shipped_order(api, 2)
    with clock.frozen_at(datetime(2026, 11, 25, 9, tzinfo=UTC)):
        # when a run without `through` is dated before that day (or decades back)
        for on in ("2026-11-19", "1990-01-01"):
            r = api.post("/invoicing-runs", json={"on": on})
            # then it is refused on `on`, and nothing is invoiced
            assert r.status_code == 422 and r.json()["errors"][0]["field"] == "on", (on, r.text)
        assert api.get(f"/sales-orders/{order['id']}").json()["invoice_status"] == "not_invoiced"
        assert api.get("/invoices", params={"customer_id": desk.customer_id}).json()["items"] == []
        # while a run dated the day it shipped, or later, bills it
        [invoice] = act(api, "/invoicing-runs", 201, {"on": "2026-11-20"})
        assert (invoice["issued_on"], invoice["total"]) == ("2026-11-20", "25.00")


def test_invoicing_run_per_customer_taxes_each_order_where_it_shipped(api):
    # given a tenant that groups invoices per customer, Texas tax and none in Nevada,
    # and one customer's two orders, shipped to Texas and to Nevada
    api.patch("/tenant/settings", json={"invoice_grouping": "customer"})
    act(api, "/tax-rates", 201, {"name": "Texas", "country": "US", "region": "TX", "rate_percent": "6.25"})
    desk = order_desk(api, stock=10)
    orders = []
    for region, city in (("TX", "Austin"), ("NV", "Reno")):
        order = create_order(api, desk, 4, ship_to={"line1": "1 A St", "city": city, "region": region,
                                                    "country": "US"})
        act(api, f"/sales-orders/{order['id']}/confirm")
        shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
        act(api, f"/shipments/{shipment['id']}/ship", json={"carrier": "UPS"})
        orders.append(order)
    # when the invoicing run goes
    invoices = act(api, "/invoicing-runs", 201, {"customer_id": desk.customer_id})
    # then each order is taxed at its own ship-to: one invoice per jurisdiction
    taxed = sorted((i["total"], i["tax_total"], [ln["tax_rate_percent"] for ln in i["lines"]]) for i in invoices)
    assert taxed == [("50.00", "0.00", ["0"]), ("53.13", "3.13", ["6.25"])]


def test_crediting_the_rest_of_a_line_does_not_hand_back_an_earlier_restocking_fee(api):
    # given 4 units invoiced at 12.50 and 1 of them returned and credited less a 10 % restocking fee
    _, order, invoice = invoiced_order(api, 4)
    rma = act(api, "/returns", 201, {"sales_order_id": order["id"], "restocking_fee_percent": "10", "lines": [
        {"sales_order_line_id": order["lines"][0]["id"], "quantity": "1"}]})
    act(api, f"/returns/{rma['id']}/receive")
    [fee_kept] = act(api, f"/returns/{rma['id']}/credit", 201)
    assert fee_kept["total"] == "11.25"
    # when the other 3 are credited by line
    line = api.get(f"/invoices/{invoice['id']}").json()["lines"][0]["id"]
    rest = act(api, f"/invoices/{invoice['id']}/credit-notes", 201, {"lines": [{"invoice_line_id": line,
                                                                                "quantity": "3"}]})
    # then they are credited at their value, 3 x 12.50: the fee kept on the first stays kept
    assert rest["total"] == "37.50"
    assert api.get(f"/invoices/{invoice['id']}").json()["amount_due"] == "1.25"


def test_a_refund_is_in_whole_cents_of_the_currency(api):
    # given customer credit on a payment and on a credit note of a paid invoice
    desk, _, invoice = invoiced_order(api, 4)  # 50.00
    payment = pay(api, desk.customer_id, "80.00", [{"invoice_id": invoice["id"], "amount": "50.00"}])
    note = act(api, f"/invoices/{invoice['id']}/credit-notes", 201, {})
    # when a fraction of a cent is refunded from either
    for path in (f"/payments/{payment['id']}/refund", f"/credit-notes/{note['id']}/refund"):
        r = api.post(path, json={"amount": "0.001"})
        # then it is refused, naming the amount, and nothing is paid out
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == "amount" and r.json()["errors"][0]["rule"] == "precision"
    assert api.get(f"/payments/{payment['id']}").json()["refunded"] == "0.00"
    tb = api.get("/ledger/trial-balance").json()
    assert all(D(ln["debit"]) == round(D(ln["debit"]), 2) and D(ln["credit"]) == round(D(ln["credit"]), 2)
               for ln in tb["lines"]), tb
    # and whole cents are refunded to the last one
    assert act(api, f"/payments/{payment['id']}/refund", json={"amount": "30.00"})["unapplied"] == "0.00"
    assert act(api, f"/credit-notes/{note['id']}/refund", json={"amount": "50.00"})["unapplied"] == "0.00"


def test_the_order_desk_takes_payments_and_finance_pays_credit_back(api):
    from tests.api.conftest import Api, key_for

    # given an invoice paid with 10.00 over, recorded by the order desk
    desk, _, invoice = invoiced_order(api, 4)  # 50.00
    clerk = Api(api.client, api.tenant, key_for(api.tenant, "sales"))
    payment = pay(clerk, desk.customer_id, "60.00", [{"invoice_id": invoice["id"], "amount": "50.00"}])
    # when the desk tries to pay the credit back, it is not its to do, and nothing is paid out
    r = clerk.post(f"/payments/{payment['id']}/refund", json={"amount": "10.00"})
    assert r.status_code == 403, r.text
    assert api.get(f"/payments/{payment['id']}").json()["unapplied"] == "10.00"
    # while finance may
    controller = Api(api.client, api.tenant, key_for(api.tenant, "finance"))
    assert act(controller, f"/payments/{payment['id']}/refund", json={"amount": "10.00"})["refunded"] == "10.00"


# PostgreSQL only (not skipped on SQLite): there the 0006 downgrade cannot rebuild credit_notes while
# credit_note_lines refer to it (a known limit of downgrades on SQLite; upgrades are what run).
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_credit_note_refunded_before_migration_0006_shows_its_refund_after_it(api, db_url):
    from alembic import command
    from sqlalchemy import inspect

    from entrepot.db.bootstrap import alembic_config
    from entrepot.db.engine import get_engine

    # given a paid invoice credited in full and 20.00 of the note's credit refunded, then a second
    # note on another paid invoice that nothing was refunded from
    desk, _, invoice = invoiced_order(api, 4)  # 50.00
    pay(api, desk.customer_id, "50.00", [{"invoice_id": invoice["id"], "amount": "50.00"}])
    note = act(api, f"/invoices/{invoice['id']}/credit-notes", 201, {})
    act(api, f"/credit-notes/{note['id']}/refund", json={"amount": "20.00"})
    other_desk, _, other = invoiced_order(api, 2)
    pay(api, other_desk.customer_id, "25.00", [{"invoice_id": other["id"], "amount": "25.00"}])
    untouched = act(api, f"/invoices/{other['id']}/credit-notes", 201, {})
    # when the database is taken back to before notes kept their refunds and upgraded again
    engine = get_engine(db_url)
    for target in ("0005", "heads"):
        cfg = alembic_config(db_url)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            (command.downgrade if target == "0005" else command.upgrade)(cfg, target)
            columns = [c["name"] for c in inspect(conn).get_columns("credit_notes")]
            assert ("refunded" in columns) == (target == "heads")
    # then the note shows what was paid back before the column existed, and the other nothing
    back = api.get(f"/credit-notes/{note['id']}").json()
    assert (back["refunded"], back["unapplied"]) == ("20.00", "30.00"), back
    assert api.get(f"/credit-notes/{untouched['id']}").json()["refunded"] == "0.00"
