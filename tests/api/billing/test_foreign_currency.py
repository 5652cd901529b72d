"""Order to cash for a customer billed in another currency than the tenant's: the ledger in the
tenant's currency (USD) settles each foreign receivable to exactly zero."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

from entrepot.kernel import clock
from tests.factories.sales import act, order_desk, shipped_order


def _rate(api, rate, day=None):
    act(api, "/ledger/exchange-rates", 201, {"currency": "EUR", "date": str(day or clock.today()), "rate": rate})


def _eur_invoice(api, quantity=3):
    """An invoice of quantity x 10.00 EUR."""
    desk = order_desk(api, currency="EUR", list_price="10.00")
    _, order = shipped_order(api, quantity, desk=desk)
    return desk, act(api, f"/sales-orders/{order['id']}/invoice", 201)


def _lines(api, source_id):
    """{account code: (document amount, functional debit − credit)} of what a document posted."""
    out = {}
    for entry in api.get("/ledger/journal-entries", params={"source_id": source_id}).json()["items"]:
        for line in api.get(f"/ledger/journal-entries/{entry['id']}").json()["lines"]:
            amount, functional = out.get(line["account_code"], (D(0), D(0)))
            out[line["account_code"]] = (amount + D(line["amount"]), functional + D(line["debit"]) - D(line["credit"]))
    return out


def _receivable(api, customer_id):
    aging = api.get("/ledger/receivables-aging").json()
    rows = [r for r in aging["rows"] if r["party_id"] == customer_id]
    return D(rows[0]["total"]) if rows else D(0), D(aging["control_balance"])


def test_a_foreign_invoice_credited_at_another_rate_leaves_nothing_on_the_receivable(api):
    # given an invoice of 30.00 EUR booked at 1.10 (33.00 USD), then the euro at 1.20
    _rate(api, "1.10", clock.today() - timedelta(days=5))
    desk, invoice = _eur_invoice(api)
    assert _lines(api, invoice["id"])["1100"] == (D("30.00"), D("33.00"))
    _rate(api, "1.20")
    # when it is credited in full
    note = act(api, f"/invoices/{invoice['id']}/credit-notes", 201, {})
    assert api.get(f"/invoices/{invoice['id']}").json()["status"] == "credited"
    # then the receivable is cleared at what it was booked at (33.00), the revenue reversed at the
    # day's rate (36.00), and the difference is an FX gain: the customer owes nothing in USD either
    assert _lines(api, note["id"]) == {"1100": (D("-30.00"), D("-33.00")), "4000": (D("30.00"), D("36.00")),
                                       "7000": (D("0.00"), D("-3.00"))}
    assert _receivable(api, desk.customer_id) == (0, 0)


def test_a_foreign_invoice_credited_at_another_rate_takes_its_tax_back_at_the_invoices_rate(api):
    # given German VAT at 19 % and an invoice of 30.00 EUR + 5.70 VAT to a customer in Germany, booked at 1.10
    act(api, "/tax-rates", 201, {"name": "DE VAT", "country": "DE", "rate_percent": "19"})
    _rate(api, "1.10", clock.today() - timedelta(days=5))
    desk = order_desk(api, currency="EUR", list_price="10.00")
    act(api, f"/customers/{desk.customer_id}/addresses", 201, {"kind": "ship_to", "is_default": True,
                                                              "line1": "1 Hauptstr.", "city": "Berlin",
                                                              "country": "DE"})
    _, order = shipped_order(api, 3, desk=desk)
    invoice = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    assert (invoice["tax_total"], _lines(api, invoice["id"])["2200"]) == ("5.70", (D("-5.70"), D("-6.27")))
    _rate(api, "1.20")
    # when it is credited in full at 1.20
    note = act(api, f"/invoices/{invoice['id']}/credit-notes", 201, {})
    # then the VAT is taken back at what the invoice booked (6.27 USD, not 6.84): tax payable holds nothing
    # for an invoice that no longer exists; the revenue is reversed at the day's rate and the rest is FX
    lines = _lines(api, note["id"])
    assert lines["2200"] == (D("5.70"), D("6.27")) and lines["4000"] == (D("30.00"), D("36.00"))
    assert lines["1100"] == (D("-35.70"), D("-39.27")) and lines["7000"] == (D("0.00"), D("-3.00"))
    tax_payable = [ln for ln in api.get("/ledger/trial-balance").json()["lines"] if ln["account_code"] == "2200"]
    assert all(D(ln["debit"]) == D(ln["credit"]) for ln in tax_payable), tax_payable
    assert _receivable(api, desk.customer_id) == (0, 0)


def test_a_paid_foreign_invoice_credited_then_refunded_leaves_nothing_on_the_receivable(api):
    # given an invoice of 30.00 EUR at 1.10 (33.00 USD) paid 30.00 EUR at 1.20 (36.00 USD, 3.00 gain)
    _rate(api, "1.10", clock.today() - timedelta(days=5))
    desk, invoice = _eur_invoice(api)
    _rate(api, "1.20")
    act(api, "/payments", 201, {"customer_id": desk.customer_id, "amount": "30.00", "currency": "EUR",
                                "allocations": [{"invoice_id": invoice["id"], "amount": "30.00"}]})
    assert _receivable(api, desk.customer_id) == (0, 0)
    # and 10.00 EUR credited back at 1.20: customer credit of 12.00 USD
    note = act(api, f"/invoices/{invoice['id']}/credit-notes", 201, {"lines": [
        {"invoice_line_id": invoice["lines"][0]["id"], "quantity": "1"}]})
    assert note["unapplied"] == "10.00"
    assert _receivable(api, desk.customer_id) == (D("-12.00"), D("-12.00"))
    # when the credit is paid back the next day, the euro at 1.30
    with clock.frozen_at(clock.now() + timedelta(days=1)):
        _rate(api, "1.30")
        act(api, f"/credit-notes/{note['id']}/refund", json={"amount": "10.00"})
        # then the refund clears the credit at what it was booked at (12.00), pays 13.00 out, and the
        # 1.00 more is an FX loss: nothing is left on the receivable in USD
        assert _lines(api, note["id"])["1000"] == (D("-10.00"), D("-13.00"))
        assert _lines(api, note["id"])["7000"] == (D("0.00"), D("1.00"))
        assert _receivable(api, desk.customer_id) == (0, 0)


def test_unapplied_foreign_payment_refunded_at_another_rate_leaves_nothing_on_the_receivable(api):
    # given 20.00 EUR received at 1.20 and not applied (a credit of 24.00 USD)
    _rate(api, "1.20")
    desk = order_desk(api, currency="EUR", list_price="10.00")
    payment = act(api, "/payments", 201, {"customer_id": desk.customer_id, "amount": "20.00", "currency": "EUR",
                                          "allocations": []})
    # when it is refunded the next day with the euro at 1.15
    with clock.frozen_at(clock.now() + timedelta(days=1)):
        _rate(api, "1.15")
        act(api, f"/payments/{payment['id']}/refund", json={"amount": "20.00"})
        # then 23.00 USD leaves the bank, the receivable is debited back the 24.00 it was credited, 1.00 FX gain
        assert _lines(api, payment["id"]) == {"1000": (D("0.00"), D("1.00")), "1100": (D("0.00"), D("0.00")),
                                              "7000": (D("0.00"), D("-1.00"))}
        assert _receivable(api, desk.customer_id) == (0, 0)


def _german_eur_invoice(api, quantity=4, list_price="12.50"):
    """A customer in Germany billed in EUR, and an invoice of quantity x list_price + 19 % VAT."""
    if not api.get("/tax-rates").json()["items"]:
        act(api, "/tax-rates", 201, {"name": "DE VAT", "country": "DE", "rate_percent": "19"})
    desk = order_desk(api, currency="EUR", list_price=list_price)
    act(api, f"/customers/{desk.customer_id}/addresses", 201, {"kind": "ship_to", "is_default": True,
                                                              "line1": "1 Hauptstr.", "city": "Berlin",
                                                              "country": "DE"})
    _, order = shipped_order(api, quantity, desk=desk)
    return desk, act(api, f"/sales-orders/{order['id']}/invoice", 201)


def _tax_payable(api):
    lines = api.get("/ledger/trial-balance").json()["lines"]
    return sum((D(ln["credit"]) - D(ln["debit"]) for ln in lines if ln["account_code"] == "2200"), D(0))


def test_partial_credit_notes_at_moving_rates_take_back_exactly_the_tax_the_invoice_booked(api):
    # given an invoice of 50.00 EUR + 9.50 VAT booked at 1.1075: 10.52 USD of tax (10.52125)
    _rate(api, "1.1075", clock.today() - timedelta(days=5))
    desk, invoice = _german_eur_invoice(api)
    assert _lines(api, invoice["id"])["2200"] == (D("-9.50"), D("-10.52"))
    line = invoice["lines"][0]["id"]
    # when it is credited one unit at a time (2.38, 2.37, 2.38 VAT; the last 2.37), the euro moving each day
    notes = []
    for day, rate in enumerate(("1.20", "1.25", "1.15", "1.30"), start=1):
        with clock.frozen_at(clock.now() + timedelta(days=day)):
            _rate(api, rate)
            notes.append(act(api, f"/invoices/{invoice['id']}/credit-notes", 201,
                             {"lines": [{"invoice_line_id": line, "quantity": "1"}]}))
            assert _tax_payable(api) >= 0  # never more taken back than was booked
    assert api.get(f"/invoices/{invoice['id']}").json()["status"] == "credited"
    assert sum(D(n["tax_total"]) for n in notes) == D("9.50")
    # then the notes took back, together, exactly the 10.52 USD the invoice booked: tax payable holds
    # nothing, the receivable nothing, and the books balance
    assert sum(_lines(api, n["id"])["2200"][1] for n in notes) == D("10.52")
    with clock.frozen_at(clock.now() + timedelta(days=4)):
        assert _tax_payable(api) == 0
        assert _receivable(api, desk.customer_id) == (0, 0)
        tb = api.get("/ledger/trial-balance").json()
        assert D(tb["total_debit"]) == D(tb["total_credit"])


def test_a_foreign_invoice_credited_on_a_day_the_rate_is_exactly_one_is_cleared_at_what_it_was_booked_at(api):
    # given an invoice of 30.00 EUR + 5.70 VAT booked at 1.10 (39.27 USD, of it 6.27 tax)
    _rate(api, "1.10", clock.today() - timedelta(days=5))
    desk, invoice = _german_eur_invoice(api, quantity=3, list_price="10.00")
    assert _lines(api, invoice["id"])["1100"] == (D("35.70"), D("39.27"))
    # when the euro stands at par and the invoice is credited in full
    _rate(api, "1.00")
    note = act(api, f"/invoices/{invoice['id']}/credit-notes", 201, {})
    # then the receivable is cleared at 39.27 and the tax taken back at 6.27, as on any other day: the
    # customer owes nothing in USD either, and tax payable holds nothing
    lines = _lines(api, note["id"])
    assert lines["1100"] == (D("-35.70"), D("-39.27")) and lines["2200"] == (D("5.70"), D("6.27"))
    assert _receivable(api, desk.customer_id) == (0, 0)
    assert _tax_payable(api) == 0


def test_a_foreign_invoice_credited_in_parts_takes_back_exactly_the_tax_it_booked(api):
    # given 19 % VAT on an invoice of 2 x 0.26 EUR (0.52 + 0.10 VAT), the VAT booked at 1.10 as 0.11 USD
    act(api, "/tax-rates", 201, {"name": "DE VAT", "country": "DE", "rate_percent": "19"})
    _rate(api, "1.10", clock.today() - timedelta(days=5))
    desk = order_desk(api, currency="EUR", list_price="0.26")
    act(api, f"/customers/{desk.customer_id}/addresses", 201, {"kind": "ship_to", "is_default": True,
                                                              "line1": "1 Hauptstr.", "city": "Berlin",
                                                              "country": "DE"})
    _, order = shipped_order(api, 2, desk=desk)
    invoice = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    assert _lines(api, invoice["id"])["2200"] == (D("-0.10"), D("-0.11"))
    _rate(api, "1.20")
    # when it is credited one unit at a time (0.05 VAT each)
    line_id = invoice["lines"][0]["id"]
    notes = [act(api, f"/invoices/{invoice['id']}/credit-notes", 201,
                 {"lines": [{"invoice_line_id": line_id, "quantity": "1"}]}) for _ in range(2)]
    # then the two notes take back what the invoice booked, 0.11 USD, not 2 x 0.06: tax payable keeps nothing
    taken = [_lines(api, note["id"])["2200"] for note in notes]
    assert sum((t[0] for t in taken), D(0)) == D("0.10") and sum((t[1] for t in taken), D(0)) == D("0.11"), taken
    assert _receivable(api, desk.customer_id) == (0, 0)
