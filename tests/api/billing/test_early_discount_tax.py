"""An early-payment discount that reduces the tax, as EU VAT has it (German Skonto): the tenant setting
`early_discount_reduces_tax`. The discount taken splits into its net part (sales discounts) and its tax
part (off tax payable); a credit note that takes the discount back puts both back.

The invariant, on both databases: tax payable (2200) = Σ invoices (tax − tax part of the discounts
kept) − Σ credit-note tax, to the cent; a settled customer owes nothing; the books balance."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal as D

import pytest

from entrepot.kernel import clock
from tests.factories.catalog import create_product
from tests.factories.inventory import adjust
from tests.factories.sales import act, create_order, order_desk, shipped_order

BERLIN = {"kind": "ship_to", "is_default": True, "line1": "Unter den Linden 1", "city": "Berlin", "country": "DE"}
TERMS = {"payment_terms_days": 30, "early_discount_percent": "2", "early_discount_days": 10}


def _german_desk(api, *, currency="USD", list_price="12.50"):
    """A customer in Germany on 2 % / 10 days terms, and a product taxed at 19 %."""
    if not api.get("/tax-rates").json()["items"]:
        act(api, "/tax-rates", 201, {"name": "DE standard", "country": "DE", "rate_percent": "19"})
        act(api, "/tax-rates", 201, {"name": "DE reduced", "country": "DE", "tax_class": "reduced",
                                     "rate_percent": "7"})
    desk = order_desk(api, stock=20, currency=currency, list_price=list_price, **TERMS)
    act(api, f"/customers/{desk.customer_id}/addresses", 201, BERLIN)
    return desk


def _invoice(api, desk, quantity=4):
    _, order = shipped_order(api, quantity, desk)
    return act(api, f"/sales-orders/{order['id']}/invoice", 201)


def _reduce_tax(api, on=True):
    r = api.patch("/tenant/settings", json={"early_discount_reduces_tax": on})
    assert r.status_code == 200 and r.json()["early_discount_reduces_tax"] is on, r.text


def _pay(api, customer_id, amount, allocations, currency="USD"):
    r = api.post("/payments", json={"customer_id": customer_id, "amount": amount, "currency": currency,
                                    "allocations": allocations})
    assert r.status_code == 201, r.text
    return r.json()


def _posted(api, source_id):
    """{account code: (document amount, functional debit − credit)} of what a document posted."""
    out: dict[str, tuple[D, D]] = {}
    for entry in api.get("/ledger/journal-entries", params={"source_id": source_id}).json()["items"]:
        for line in api.get(f"/ledger/journal-entries/{entry['id']}").json()["lines"]:
            amount, functional = out.get(line["account_code"], (D(0), D(0)))
            out[line["account_code"]] = (amount + D(line["amount"]), functional + D(line["debit"]) - D(line["credit"]))
    return out


def _balance(api, code):
    """An account's balance, debit positive, in the tenant's currency."""
    lines = api.get("/ledger/trial-balance").json()["lines"]
    return sum((D(ln["debit"]) - D(ln["credit"]) for ln in lines if ln["account_code"] == code), D(0))


def _books_hold_the_invariant(api, invoices):
    """Tax payable = Σ (tax − discount tax kept) − credit-note tax; the trial balance balances."""
    expected = D(0)
    for invoice in invoices:
        inv = api.get(f"/invoices/{invoice['id']}").json()
        notes = api.get("/credit-notes", params={"invoice_id": inv["id"]}).json()["items"]
        kept = D(inv["discount_tax"]) - sum((D(n["discount_tax_reversed"]) for n in notes), D(0))
        expected += D(inv["tax_total"]) - kept - sum((D(n["tax_total"]) for n in notes), D(0))
    assert -_balance(api, "2200") == expected
    tb = api.get("/ledger/trial-balance").json()
    assert D(tb["total_debit"]) == D(tb["total_credit"])
    return expected


def test_by_default_a_discount_is_all_a_sales_discount_and_the_tax_stays_as_invoiced(api):
    # given an invoice of 50.00 + 9.50 German VAT on 2 % terms, and the setting left at its default
    desk = _german_desk(api)
    invoice = _invoice(api, desk)
    assert invoice["total"] == "59.50"
    # when it is paid in terms (59.50 less 1.19)
    paid = _pay(api, desk.customer_id, "58.31", [{"invoice_id": invoice["id"], "amount": "58.31"}])
    # then the whole discount is a sales discount and the output tax is what was invoiced
    assert (paid["discount"], paid["discount_tax"]) == ("1.19", "0.00")
    assert _posted(api, paid["id"]) == {"1000": (D("58.31"), D("58.31")), "4500": (D("1.19"), D("1.19")),
                                        "1100": (D("-59.50"), D("-59.50"))}
    assert _balance(api, "2200") == D("-9.50")
    assert api.get(f"/invoices/{invoice['id']}").json()["discount_tax"] == "0.00"


def test_a_discount_taken_reduces_the_output_tax_by_its_tax_share(api):
    # given the setting on and an invoice of 50.00 + 9.50 VAT on 2 % terms
    _reduce_tax(api)
    desk = _german_desk(api)
    invoice = _invoice(api, desk)
    # when it is paid in terms: 1.19 discount, of which 1.19 x 9.50 / 59.50 = 0.19 is tax
    paid = _pay(api, desk.customer_id, "58.31", [{"invoice_id": invoice["id"], "amount": "58.31"}])
    # then the payment splits the discount: 1.00 to sales discounts, 0.19 off tax payable
    assert (paid["discount"], paid["discount_tax"]) == ("1.19", "0.19")
    assert [(a["discount"], a["discount_tax"]) for a in paid["allocations"]] == [("1.19", "0.19")]
    assert _posted(api, paid["id"]) == {"1000": (D("58.31"), D("58.31")), "4500": (D("1.00"), D("1.00")),
                                        "2200": (D("0.19"), D("0.19")), "1100": (D("-59.50"), D("-59.50"))}
    inv = api.get(f"/invoices/{invoice['id']}").json()
    assert (inv["status"], inv["amount_discounted"], inv["discount_tax"]) == ("paid", "1.19", "0.19")
    assert _books_hold_the_invariant(api, [invoice]) == D("9.31")
    assert _balance(api, "1100") == 0
    # and the event says it too
    [event] = [e["data"] for e in api.get("/events").json()["items"] if e["type"] == "payment.received.v1"]
    assert (event["discount"], event["discount_tax"], event["allocations"][0]["discount_tax"]) == (
        "1.19", "0.19", "0.19")


def test_credit_notes_after_the_discount_put_its_tax_part_back_on_tax_payable(api):
    # given the setting on and an invoice of 4 x 12.50 + 9.50 VAT settled in terms (1.19 discount, 0.19 tax)
    _reduce_tax(api)
    desk = _german_desk(api)
    invoice = _invoice(api, desk)
    _pay(api, desk.customer_id, "58.31", [{"invoice_id": invoice["id"], "amount": "58.31"}])
    # when one unit is credited back (12.50 + 2.38 = 14.88)
    line = invoice["lines"][0]["id"]
    one = act(api, f"/invoices/{invoice['id']}/credit-notes", 201,
              {"lines": [{"invoice_line_id": line, "quantity": "1"}]})
    # then it takes back the discount the unit earned (round(14.88 x 2 %) = 0.30), of which
    # round(0.30 x 2.38 / 14.88) = 0.05 goes back to tax payable and 0.25 to sales discounts
    assert (one["total"], one["tax_total"], one["discount_reversed"], one["discount_tax_reversed"],
            one["unapplied"]) == ("14.88", "2.38", "0.30", "0.05", "14.58")
    assert _posted(api, one["id"]) == {"4000": (D("12.50"), D("12.50")), "2200": (D("2.33"), D("2.33")),
                                       "4500": (D("-0.25"), D("-0.25")), "1100": (D("-14.58"), D("-14.58"))}
    # 9.50 invoiced, less the 0.14 discount tax the three units kept, less the 2.38 credited
    assert _books_hold_the_invariant(api, [invoice]) == D("6.98")
    # when the rest is credited: the last note takes back exactly what is left (0.89, of it 0.14 tax)
    rest = act(api, f"/invoices/{invoice['id']}/credit-notes", 201)
    assert (rest["total"], rest["tax_total"], rest["discount_reversed"], rest["discount_tax_reversed"]) == (
        "44.62", "7.12", "0.89", "0.14")
    # then tax payable and sales discounts hold nothing for an invoice that no longer exists
    assert _books_hold_the_invariant(api, [invoice]) == 0
    assert _balance(api, "4500") == 0
    # and the customer, refunded what it paid, owes and is owed nothing
    for note in (one, rest):
        act(api, f"/credit-notes/{note['id']}/refund", json={"amount": note["unapplied"]})
    assert D(one["unapplied"]) + D(rest["unapplied"]) == D("58.31")
    assert _balance(api, "1100") == 0
    [event] = [e["data"] for e in api.get("/events").json()["items"]
               if e["type"] == "credit_note.issued.v1" and e["data"]["credit_note_id"] == rest["id"]]
    assert (event["discount_reversed"], event["discount_tax_reversed"]) == ("0.89", "0.14")


def test_a_note_crediting_goods_at_another_rate_puts_back_their_own_tax_share(api):
    # given the setting on and an invoice of a 19 % line (2 x 12.50) and a 7 % line (2 x 10.00) on 2 % terms
    _reduce_tax(api)
    desk = _german_desk(api)
    book = create_product(api, list_price="10.00", currency="USD", standard_cost="4.00", tax_class="reduced")["id"]
    adjust(api, desk.warehouse_id, book, 10, unit_cost="4.00")
    order = create_order(api, desk, lines=[{"product_id": desk.product_id, "quantity": "2"},
                                           {"product_id": book, "quantity": "2"}])
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    act(api, f"/shipments/{shipment['id']}/ship")
    invoice = act(api, f"/sales-orders/{order['id']}/invoice", 201)
    # 25.00 + 4.75 and 20.00 + 1.40: 51.15; discount round(51.15 x 2 %) = 1.02, tax round(1.02 x 6.15 / 51.15)
    assert (invoice["total"], invoice["tax_total"]) == ("51.15", "6.15")
    paid = _pay(api, desk.customer_id, "50.13", [{"invoice_id": invoice["id"], "amount": "50.13"}])
    assert (paid["discount"], paid["discount_tax"]) == ("1.02", "0.12")
    # when the 7 % line is credited (21.40): its discount round(21.40 x 2 %) = 0.43, of it 0.43 x 1.40 / 21.40
    reduced = next(ln for ln in invoice["lines"] if ln["tax_rate_percent"] == "7")
    note = act(api, f"/invoices/{invoice['id']}/credit-notes", 201,
               {"lines": [{"invoice_line_id": reduced["id"], "quantity": "2"}]})
    # then the tax put back is the 7 % goods' share (0.03), not the invoice's average (0.05)
    assert (note["discount_reversed"], note["discount_tax_reversed"]) == ("0.43", "0.03")
    _books_hold_the_invariant(api, [invoice])
    # and crediting the rest leaves nothing
    act(api, f"/invoices/{invoice['id']}/credit-notes", 201)
    assert _books_hold_the_invariant(api, [invoice]) == 0
    assert _balance(api, "4500") == 0


@pytest.mark.parametrize("after", ["off", "on"])
def test_a_note_undoes_what_the_payment_did_whatever_the_setting_says_since(api, after):
    # given a discount taken with the setting off (all a sales discount) or on (0.19 of it tax)
    _reduce_tax(api, after == "on")
    desk = _german_desk(api)
    invoice = _invoice(api, desk)
    paid = _pay(api, desk.customer_id, "58.31", [{"invoice_id": invoice["id"], "amount": "58.31"}])
    # when the setting is turned the other way and the invoice credited in full
    _reduce_tax(api, after != "on")
    note = act(api, f"/invoices/{invoice['id']}/credit-notes", 201)
    # then the note puts back what the payment took, no more, no less
    assert note["discount_tax_reversed"] == paid["discount_tax"] == ("0.19" if after == "on" else "0.00")
    assert _books_hold_the_invariant(api, [invoice]) == 0
    assert _balance(api, "4500") == 0


def test_a_discount_on_an_invoice_partly_credited_before_payment_is_taxed_on_what_it_still_bills(api):
    # given the setting on, an invoice of 59.50 of which one unit (14.88, 2.38 tax) is credited before payment
    _reduce_tax(api)
    desk = _german_desk(api)
    invoice = _invoice(api, desk)
    act(api, f"/invoices/{invoice['id']}/credit-notes", 201,
        {"lines": [{"invoice_line_id": invoice["lines"][0]["id"], "quantity": "1"}]})
    # when the rest (44.62, 7.12 tax) is paid in terms: discount round(44.62 x 2 %) = 0.89
    paid = _pay(api, desk.customer_id, "43.73", [{"invoice_id": invoice["id"], "amount": "43.73"}])
    # then its tax part is round(0.89 x 7.12 / 44.62) = 0.14
    assert (paid["discount"], paid["discount_tax"]) == ("0.89", "0.14")
    assert _books_hold_the_invariant(api, [invoice]) == D("9.50") - D("2.38") - D("0.14")
    assert _balance(api, "1100") == 0


def test_one_payment_settling_several_invoices_reduces_the_tax_of_each(api):
    # given the setting on and two invoices of the same customer, 4 and 2 units
    _reduce_tax(api)
    desk = _german_desk(api)
    first, second = _invoice(api, desk, 4), _invoice(api, desk, 2)
    assert (first["total"], second["total"]) == ("59.50", "29.75")
    # when one payment settles both in terms (1.19 and round(29.75 x 2 %) = 0.60 discounts)
    paid = _pay(api, desk.customer_id, "87.46", [{"invoice_id": first["id"], "amount": "58.31"},
                                                 {"invoice_id": second["id"], "amount": "29.15"}])
    # then each takes its own tax part (0.19; round(0.60 x 4.75 / 29.75) = 0.10) and the payment their sum
    assert [a["discount_tax"] for a in paid["allocations"]] == ["0.19", "0.10"]
    assert paid["discount_tax"] == "0.29"
    assert _books_hold_the_invariant(api, [first, second]) == D("14.25") - D("0.29")
    assert _balance(api, "1100") == 0


def test_a_foreign_discount_takes_its_tax_off_at_each_invoices_rate(api):
    # given the setting on, a tenant in USD, and two EUR invoices of 30.00 + 5.70 VAT, one booked at 1.10
    # and one at 1.30, both on 2 % terms
    _reduce_tax(api)
    act(api, "/ledger/exchange-rates", 201, {"currency": "EUR", "date": str(clock.today() - timedelta(days=5)),
                                             "rate": "1.10"})
    desk = _german_desk(api, currency="EUR", list_price="10.00")
    first = _invoice(api, desk, 3)
    act(api, "/ledger/exchange-rates", 201, {"currency": "EUR", "date": str(clock.today()), "rate": "1.30"})
    second = _invoice(api, desk, 3)
    assert (_posted(api, first["id"])["2200"], _posted(api, second["id"])["2200"]) == (
        (D("-5.70"), D("-6.27")), (D("-5.70"), D("-7.41")))
    # when one payment settles both in terms at 1.30: each 0.71 discount, of it round(0.71 x 5.70 / 35.70) = 0.11
    paid = _pay(api, desk.customer_id, "69.98", [{"invoice_id": first["id"], "amount": "34.99"},
                                                 {"invoice_id": second["id"], "amount": "34.99"}], currency="EUR")
    assert (paid["discount"], paid["discount_tax"]) == ("1.42", "0.22")
    # then the tax comes off at what each invoice booked it at (0.12 + 0.14 USD, not 0.22 x 1.30 = 0.29),
    # and the receivable is cleared at its carrying value; the rest is FX
    posted = _posted(api, paid["id"])
    assert posted["2200"] == (D("0.22"), D("0.26"))
    assert posted["1100"] == (D("-71.40"), D("-85.68"))
    # when both are credited in full (at 1.30) and the customer refunded what it paid
    notes = [act(api, f"/invoices/{inv['id']}/credit-notes", 201) for inv in (first, second)]
    assert [n["discount_tax_reversed"] for n in notes] == ["0.11", "0.11"]
    for note in notes:
        act(api, f"/credit-notes/{note['id']}/refund", json={"amount": note["unapplied"]})
    # then tax payable, sales discounts and the receivable hold nothing, in USD too; the books balance
    assert (_balance(api, "2200"), _balance(api, "4500"), _balance(api, "1100")) == (0, 0, 0)
    tb = api.get("/ledger/trial-balance").json()
    assert D(tb["total_debit"]) == D(tb["total_credit"])


def test_without_tax_the_setting_changes_nothing(api):
    # given the setting on and an untaxed invoice of 50.00 on 2 % terms
    _reduce_tax(api)
    desk = order_desk(api, stock=10, **TERMS)
    # (the desk's customer has no ship-to address in a taxed country: no tax)
    invoice = _invoice(api, desk)
    assert invoice["tax_total"] == "0.00"
    paid = _pay(api, desk.customer_id, "49.00", [{"invoice_id": invoice["id"], "amount": "49.00"}])
    assert (paid["discount"], paid["discount_tax"]) == ("1.00", "0.00")
    assert _posted(api, paid["id"]) == {"1000": (D("49.00"), D("49.00")), "4500": (D("1.00"), D("1.00")),
                                        "1100": (D("-50.00"), D("-50.00"))}


def test_foreign_partial_notes_at_moving_rates_put_back_exactly_the_discount_tax_the_payment_took(api):
    # given the setting on, a tenant in USD and an invoice of 50.00 EUR + 9.50 VAT booked at 1.034
    # (9.82 USD of tax), paid in terms at 1.20: 1.19 discount, 0.19 of it tax, taken off at 1.034 (0.20 USD)
    _reduce_tax(api)
    act(api, "/ledger/exchange-rates", 201, {"currency": "EUR", "date": str(clock.today() - timedelta(days=5)),
                                             "rate": "1.034"})
    desk = _german_desk(api, currency="EUR")
    invoice = _invoice(api, desk)
    act(api, "/ledger/exchange-rates", 201, {"currency": "EUR", "date": str(clock.today()), "rate": "1.20"})
    paid = _pay(api, desk.customer_id, "58.31", [{"invoice_id": invoice["id"], "amount": "58.31"}], currency="EUR")
    assert (paid["discount_tax"], _posted(api, paid["id"])["2200"]) == ("0.19", (D("0.19"), D("0.20")))
    # when it is credited one unit a day (each putting back 0.05 of discount tax, the last 0.04), the euro moving
    notes = []
    line = invoice["lines"][0]["id"]
    for day, rate in enumerate(("1.25", "1.15", "1.30", "1.05"), start=1):
        with clock.frozen_at(clock.now() + timedelta(days=day)):
            act(api, "/ledger/exchange-rates", 201, {"currency": "EUR", "date": str(clock.today()), "rate": rate})
            notes.append(act(api, f"/invoices/{invoice['id']}/credit-notes", 201,
                             {"lines": [{"invoice_line_id": line, "quantity": "1"}]}))
    assert [n["discount_tax_reversed"] for n in notes] == ["0.05", "0.05", "0.05", "0.04"]
    # then the notes put back, together, the 0.20 USD the payment took (not 3 x 0.05 + 0.04) and took back
    # the 9.82 the invoice
    # booked: tax payable holds nothing (sales discounts, like revenue, move at the day's rates); refunded,
    # the customer is owed nothing in USD
    assert sum(_posted(api, n["id"])["2200"][1] for n in notes) == D("9.82") - D("0.20")
    with clock.frozen_at(clock.now() + timedelta(days=5)):
        act(api, "/ledger/exchange-rates", 201, {"currency": "EUR", "date": str(clock.today()), "rate": "1.40"})
        for note in notes:
            act(api, f"/credit-notes/{note['id']}/refund", json={"amount": note["unapplied"]})
        assert (_balance(api, "2200"), _balance(api, "1100")) == (0, 0)
        tb = api.get("/ledger/trial-balance").json()
        assert D(tb["total_debit"]) == D(tb["total_credit"])


def test_a_foreign_discount_taken_on_a_day_the_rate_is_exactly_one_takes_its_tax_off_at_the_invoices_rate(api):
    # given the setting on and an invoice of 30.00 EUR + 5.70 VAT booked at 1.10 (6.27 USD of tax)
    _reduce_tax(api)
    act(api, "/ledger/exchange-rates", 201, {"currency": "EUR", "date": str(clock.today() - timedelta(days=5)),
                                             "rate": "1.10"})
    desk = _german_desk(api, currency="EUR", list_price="10.00")
    invoice = _invoice(api, desk, 3)
    # when it is paid in terms on a day the euro stands at par: 0.71 discount, 0.11 of it tax
    act(api, "/ledger/exchange-rates", 201, {"currency": "EUR", "date": str(clock.today()), "rate": "1.00"})
    paid = _pay(api, desk.customer_id, "34.99", [{"invoice_id": invoice["id"], "amount": "34.99"}], currency="EUR")
    # then the tax comes off at 1.10 (0.12 USD) and the receivable is cleared at what it was booked at
    posted = _posted(api, paid["id"])
    assert (posted["2200"], posted["1100"]) == ((D("0.11"), D("0.12")), (D("-35.70"), D("-39.27")))
    assert _balance(api, "1100") == 0
    # and crediting it in full leaves nothing on tax payable
    act(api, f"/invoices/{invoice['id']}/credit-notes", 201)
    assert _balance(api, "2200") == 0
