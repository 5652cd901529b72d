"""Posting rules: each business event posts the entry the mapping declares."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from entrepot.identity.models import AuditEntry
from entrepot.integration.models import OutboxEvent
from entrepot.kernel.errors import ValidationFailed
from entrepot.ledger import posting
from entrepot.ledger.chart import Role
from entrepot.ledger.errors import NoExchangeRate
from entrepot.ledger.models import JournalLine
from entrepot.ledger.services.entries import lines_of
from entrepot.ledger.services.rates import set_rate
from tests.integration.ledger.helpers import balances, role_balance

D = Decimal
DAY = date(2026, 3, 10)


def test_an_invoice_debits_the_customer_and_credits_revenue_and_tax(tenant):
    customer = uuid.uuid4()
    invoice = uuid.uuid4()
    # given a posted invoice of 100 + 20 tax
    with tenant.uow() as uow:
        entry = posting.post_invoice(uow, source_id=invoice, number="INV-000001", on=DAY, currency="USD",
                                     customer_id=customer, net=D("100.00"), tax=D("20.00"), due_on=date(2026, 4, 9))
        uow.commit()
        entry_id, number = entry.id, entry.number
    # then the receivable carries the customer and due date; revenue and tax are credited
    with tenant.uow(readonly=True) as uow:
        assert balances(uow) == {"1100": D("120"), "4000": D("-100"), "2200": D("-20")}
        receivable = [ln for ln in lines_of(uow, uow.session.get(posting.JournalEntry, entry_id))
                      if ln.party_id is not None]
        assert [(ln.party_id, ln.due_on, ln.debit) for ln in receivable] == [(customer, date(2026, 4, 9), D("120"))]
        events = uow.session.scalars(select(OutboxEvent.type).where(OutboxEvent.type == "journal_entry.posted.v1"))
        assert list(events) == ["journal_entry.posted.v1"]
        assert uow.session.scalar(select(func.count()).select_from(AuditEntry)
                                  .where(AuditEntry.action == "ledger.entry.post")) == 1
    assert number == "SAL-000001"


def test_credit_note_payment_with_discount_and_refund(tenant):
    customer = uuid.uuid4()
    with tenant.uow() as uow:
        # given an invoice of 200 + 40
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-1", on=DAY, currency="USD",
                             customer_id=customer, net=D(200), tax=D(40))
        # when a credit note of 50 + 10, a payment of 175 with 5 discount, and a refund of 0.01 follow
        posting.post_credit_note(uow, source_id=uuid.uuid4(), number="CN-1", on=DAY, currency="USD",
                                 customer_id=customer, net=D(50), tax=D(10))
        posting.post_customer_payment(uow, source_id=uuid.uuid4(), on=DAY, currency="USD", customer_id=customer,
                                      amount=D(175), discount=D(5))
        refund = posting.post_customer_refund(uow, source_id=uuid.uuid4(), on=DAY, currency="USD",
                                              customer_id=customer, amount=D("0.01"))
        uow.commit()
        # then the customer owes 0.01 (refund of nothing owed) and the books are exact
        assert refund is not None and refund.number == "CSH-000002"
        assert balances(uow) == {"1000": D("174.99"), "1100": D("0.01"), "4000": D("-150"), "2200": D("-30"),
                                 "4500": D("5")}


def test_inventory_postings_are_functional_signed_and_skip_zero(tenant):
    with tenant.uow() as uow:
        # given stock received, partly shipped, adjusted both ways, and a return
        posting.post_goods_receipt(uow, source_id=uuid.uuid4(), on=DAY, amount=D("1000.1234"))
        posting.post_shipment_cost(uow, source_id=uuid.uuid4(), on=DAY, amount=D("400"))
        posting.post_stock_adjustment(uow, source_id=uuid.uuid4(), on=DAY, amount=D("-30"))
        posting.post_stock_adjustment(uow, source_id=uuid.uuid4(), on=DAY, amount=D("10"))
        posting.post_stock_return(uow, source_id=uuid.uuid4(), on=DAY, amount=D("50"))
        # when a zero-cost shipment and a zero adjustment are posted
        nothing = posting.post_shipment_cost(uow, source_id=uuid.uuid4(), on=DAY, amount=D(0))
        nothing_either = posting.post_stock_adjustment(uow, source_id=uuid.uuid4(), on=DAY, amount=D(0))
        uow.commit()
        # then those post nothing, and the rest keep 4 places where the valuation has them
        assert nothing is None and nothing_either is None
        assert balances(uow) == {"1200": D("630.1234"), "2100": D("-1000.1234"), "5000": D("350"),
                                 "5100": D("20")}


def test_foreign_currency_invoice_converts_at_the_rate_of_its_date(tenant):
    customer = uuid.uuid4()
    with tenant.uow() as uow:
        # given EUR at 1.10 from March 1st (and no rate before)
        set_rate(uow, "EUR", date(2026, 3, 1), "1.10")
        # when an EUR invoice is posted on March 10th
        entry = posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-2", on=DAY, currency="EUR",
                                     customer_id=customer, net=D("100.00"), tax=D("19.00"))
        uow.commit()
        # then functional amounts are at 1.10 and the document amounts are kept
        assert entry is not None and entry.rate == D("1.10")
        assert balances(uow) == {"1100": D("130.90"), "4000": D("-110"), "2200": D("-20.90")}
        amounts = sorted(uow.session.scalars(select(JournalLine.amount).where(JournalLine.entry_id == entry.id)))
        assert amounts == [D("-100"), D("-19"), D("119")]


def test_no_rate_is_a_clear_error_and_writes_nothing(tenant):
    with tenant.uow() as uow:
        set_rate(uow, "EUR", date(2026, 3, 11), "1.10")
        uow.commit()
    with tenant.uow() as uow:
        # when an EUR invoice is dated before the first EUR rate
        with pytest.raises(NoExchangeRate) as caught:
            posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-3", on=DAY, currency="EUR",
                                 customer_id=uuid.uuid4(), net=D(1), tax=D(0))
        # then the error names the currency and nothing was written
        assert caught.value.status == 422 and "EUR" in caught.value.detail
        assert uow.session.scalar(select(func.count()).select_from(JournalLine)) == 0


def test_realised_fx_difference_on_payment_goes_to_fx_gain_loss(tenant):
    customer = uuid.uuid4()
    with tenant.uow() as uow:
        # given an invoice of 100 EUR at 1.10 and a payment of it at 1.20
        set_rate(uow, "EUR", date(2026, 3, 1), "1.10")
        set_rate(uow, "EUR", date(2026, 3, 20), "1.20")
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-4", on=DAY, currency="EUR",
                             customer_id=customer, net=D(100), tax=D(0))
        posting.post_customer_payment(uow, source_id=uuid.uuid4(), on=date(2026, 3, 25), currency="EUR",
                                      customer_id=customer, amount=D(100))
        uow.commit()
        # then the receivable is cleared in functional currency and the 10 gain is realised
        assert role_balance(uow, Role.receivable) == 0
        assert balances(uow) == {"1000": D("120"), "4000": D("-110"), "7000": D("-10")}


def test_partial_and_over_payment_in_foreign_currency(tenant):
    customer = uuid.uuid4()
    with tenant.uow() as uow:
        set_rate(uow, "EUR", date(2026, 3, 1), "1.10")
        set_rate(uow, "EUR", date(2026, 3, 20), "1.30")
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-5", on=DAY, currency="EUR",
                             customer_id=customer, net=D(100), tax=D(0))
        # when 40 EUR then 80 EUR arrive at 1.30 (20 EUR more than owed)
        for amount in (D(40), D(80)):
            posting.post_customer_payment(uow, source_id=uuid.uuid4(), on=date(2026, 3, 25), currency="EUR",
                                          customer_id=customer, amount=amount)
        uow.commit()
        # then 100 EUR settled at 1.10 (gain 20), the 20 EUR excess sits as credit at spot
        assert role_balance(uow, Role.receivable) == D("-26")
        assert balances(uow)["7000"] == D("-20")


def test_unknown_amount_text_is_refused(tenant):
    with tenant.uow() as uow, pytest.raises(ValidationFailed):
        posting.post_shipment_cost(uow, source_id=uuid.uuid4(), on=DAY, amount="lots")  # type: ignore[arg-type]


def test_supplier_invoice_variance_and_payment(tenant):
    supplier = uuid.uuid4()
    with tenant.uow() as uow:
        # given goods received at 500, invoiced at 520 + 52 tax, then paid
        posting.post_goods_receipt(uow, source_id=uuid.uuid4(), on=DAY, amount=D(500))
        posting.post_supplier_invoice(uow, source_id=uuid.uuid4(), number="SUP-9", on=DAY, currency="USD",
                                      supplier_id=supplier, net=D(520), tax=D(52), received=D(500))
        posting.post_supplier_payment(uow, source_id=uuid.uuid4(), on=DAY, currency="USD", supplier_id=supplier,
                                      amount=D(572))
        uow.commit()
        # then GRNI and payables are cleared and the variance is an expense
        assert balances(uow) == {"1200": D(500), "1300": D(52), "5200": D(20), "1000": D(-572)}


def test_deferred_invoice_and_release(tenant):
    with tenant.uow() as uow:
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-6", on=DAY, currency="USD",
                             customer_id=uuid.uuid4(), net=D(120), tax=D(0), deferred=True)
        posting.post_deferred_revenue_release(uow, source_id=uuid.uuid4(), on=DAY, amount=D(10))
        uow.commit()
        assert balances(uow) == {"1100": D(120), "2300": D(-110), "4000": D(-10)}


def test_revaluation_restates_open_foreign_balances_then_payment_realises_the_rest(tenant):
    from entrepot.ledger.services.revaluation import revalue_open_balances

    customer = uuid.uuid4()
    with tenant.uow() as uow:
        # given an open invoice of 100 EUR booked at 1.10
        set_rate(uow, "EUR", date(2026, 3, 1), "1.10")
        set_rate(uow, "EUR", date(2026, 3, 31), "1.15")
        set_rate(uow, "EUR", date(2026, 4, 10), "1.12")
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-7", on=DAY, currency="EUR",
                             customer_id=customer, net=D(100), tax=D(0))
        # when March closes at 1.15
        entries = revalue_open_balances(uow, date(2026, 3, 31))
        # then the receivable is restated to 115 with an unrealised gain of 5
        assert len(entries) == 1
        assert role_balance(uow, Role.receivable) == D(115)
        assert balances(uow)["7000"] == D(-5)
        # and a second run the same day finds nothing to restate
        assert revalue_open_balances(uow, date(2026, 3, 31)) == []
        # when it is paid in April at 1.12, the loss since the revaluation (3) is realised
        posting.post_customer_payment(uow, source_id=uuid.uuid4(), on=date(2026, 4, 10), currency="EUR",
                                      customer_id=customer, amount=D(100))
        uow.commit()
        assert role_balance(uow, Role.receivable) == 0
        assert balances(uow)["7000"] == D(-2)


def test_reconciliation_helpers_give_control_and_per_party_balances(tenant):
    from entrepot.ledger.services.reports import party_balances
    from entrepot.ledger.services.reports import role_balance as control

    a, b = uuid.uuid4(), uuid.uuid4()
    with tenant.uow() as uow:
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="1", on=DAY, currency="USD", customer_id=a,
                             net=D(10), tax=D(0))
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="2", on=DAY, currency="USD", customer_id=b,
                             net=D(30), tax=D(0))
        posting.post_customer_payment(uow, source_id=uuid.uuid4(), on=DAY, currency="USD", customer_id=a,
                                      amount=D(10))
        posting.post_goods_receipt(uow, source_id=uuid.uuid4(), on=DAY, amount=D("12.3456"))
        uow.commit()
        assert party_balances(uow) == {b: D(30)}
        assert control(uow, Role.receivable) == D(30)
        assert control(uow, Role.inventory) == D("12.3456")
        assert control(uow, Role.inventory, as_of=date(2026, 3, 9)) == 0


def test_a_zero_leg_needs_no_account_for_its_role(tenant):
    # given the sales discounts account archived (no account has the role any more)
    from entrepot.ledger.errors import AccountRoleMissing
    from entrepot.ledger.services import accounts as chart

    customer = uuid.uuid4()
    with tenant.uow() as uow:
        chart.update_account(uow, chart.account_for_role(uow, Role.sales_discounts), {"archived": True})
        uow.commit()
    with tenant.uow() as uow:
        # then a payment without discount posts (its discount leg is zero and left out)
        entry = posting.post_customer_payment(uow, source_id=uuid.uuid4(), on=DAY, currency="USD",
                                              customer_id=customer, amount=D("50.00"))
        assert entry is not None
        # and one with a discount is refused: the role's account is missing
        with pytest.raises(AccountRoleMissing):
            posting.post_customer_payment(uow, source_id=uuid.uuid4(), on=DAY, currency="USD",
                                          customer_id=customer, amount=D("45.00"), discount=D("5.00"))
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        assert balances(uow) == {"1000": D("50"), "1100": D("-50")}
