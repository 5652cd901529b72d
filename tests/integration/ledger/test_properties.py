"""Invariants under any sequence of postings (hypothesis).

For random business postings (invoices, credit notes, payments with discounts, some
of them reducing the tax as EU VAT's do, at the invoices' own rates; refunds, stock
movements, supplier invoices and payments, in USD and EUR with moving rates) and
manual entries:
* the trial balance balances (revaluations included),
* receivables and payables aging totals equal their control accounts, and
* reversing every entry returns every account to zero.
"""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from entrepot.ledger import posting
from entrepot.ledger.chart import Role
from entrepot.ledger.models import JournalEntry
from entrepot.ledger.services.entries import ManualEntry, ManualLine, create_manual_entry, reverse_entry
from entrepot.ledger.services.rates import set_rate
from entrepot.ledger.services.reports import account_balances, aging, check_books, trial_balance
from entrepot.ledger.services.revaluation import revalue_open_balances
from tests.conftest import make_tenant

START = date(2026, 1, 1)
CUSTOMERS = [uuid.UUID(int=i + 1) for i in range(3)]
SUPPLIERS = [uuid.UUID(int=i + 100) for i in range(2)]

money = st.decimals(min_value=0, max_value=5000, places=2, allow_nan=False, allow_infinity=False)
signed = st.decimals(min_value=-5000, max_value=5000, places=2, allow_nan=False, allow_infinity=False)
cost = st.decimals(min_value=0, max_value=5000, places=4, allow_nan=False, allow_infinity=False)
day = st.integers(min_value=0, max_value=150)
currency = st.sampled_from(["USD", "EUR"])
customer = st.sampled_from(CUSTOMERS)
supplier = st.sampled_from(SUPPLIERS)

operation = st.one_of(
    st.tuples(st.just("invoice"), customer, day, money, money, currency, st.integers(0, 90)),
    st.tuples(st.just("credit_note"), customer, day, money, money, currency, money, st.integers(0, 100)),
    st.tuples(st.just("payment"), customer, day, money, money, currency, st.integers(0, 100)),
    st.tuples(st.just("refund"), customer, day, money, currency),
    st.tuples(st.just("shipment"), day, cost),
    st.tuples(st.just("adjustment"), day, signed),
    st.tuples(st.just("receipt"), day, cost),
    st.tuples(st.just("return"), day, cost),
    st.tuples(st.just("supplier_invoice"), supplier, day, money, money, currency, money),
    st.tuples(st.just("supplier_payment"), supplier, day, money, currency),
    st.tuples(st.just("revalue"), day),
    st.tuples(st.just("manual"), day, money.filter(lambda m: m > 0), st.sampled_from(["6100", "6300", "4900"])),
)


def apply(uow, op, invoices) -> None:  # type: ignore[no-untyped-def]
    """`invoices`: the invoices posted so far, (source id, currency); a discount's tax part is taken
    off at the rate of the last one in its currency."""
    kind, *args = op
    src = uuid.uuid4()
    on = lambda d: START + timedelta(days=d)  # noqa: E731
    if kind == "invoice":
        who, d, net, tax, cur, terms = args
        posting.post_invoice(uow, source_id=src, number="I", on=on(d), currency=cur, customer_id=who, net=net,
                             tax=tax, due_on=on(d + terms))
        invoices.append((src, cur))
    elif kind == "credit_note":
        who, d, net, tax, cur, discount, tax_percent = args
        source = next((i for i, c in reversed(invoices) if c == cur), None)
        posting.post_credit_note(uow, source_id=src, number="C", on=on(d), currency=cur, customer_id=who, net=net,
                                 tax=tax, discount=discount, discount_tax=round(discount * tax_percent / 100, 2),
                                 invoice_id=source)
    elif kind == "payment":
        who, d, amount, discount, cur, tax_percent = args
        source = next((i for i, c in reversed(invoices) if c == cur), uuid.uuid4())
        posting.post_customer_payment(uow, source_id=src, on=on(d), currency=cur, customer_id=who, amount=amount,
                                      discount=discount,
                                      discount_tax=[(source, round(discount * tax_percent / 100, 2))])
    elif kind == "refund":
        who, d, amount, cur = args
        posting.post_customer_refund(uow, source_id=src, on=on(d), currency=cur, customer_id=who, amount=amount)
    elif kind in ("shipment", "adjustment", "receipt", "return"):
        d, amount = args
        fn = {"shipment": posting.post_shipment_cost, "adjustment": posting.post_stock_adjustment,
              "receipt": posting.post_goods_receipt, "return": posting.post_stock_return}[kind]
        fn(uow, source_id=src, on=on(d), amount=amount)
    elif kind == "supplier_invoice":
        who, d, net, tax, cur, received = args
        posting.post_supplier_invoice(uow, source_id=src, number="S", on=on(d), currency=cur, supplier_id=who,
                                      net=net, tax=tax, received=received)
    elif kind == "supplier_payment":
        who, d, amount, cur = args
        posting.post_supplier_payment(uow, source_id=src, on=on(d), currency=cur, supplier_id=who, amount=amount)
    elif kind == "revalue":
        revalue_open_balances(uow, on(args[0]))
    else:
        d, amount, code = args
        create_manual_entry(uow, ManualEntry(on(d), [ManualLine(account_code=code, debit=amount),
                                                     ManualLine(account_code="1000", credit=amount)]))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(ops=st.lists(operation, min_size=1, max_size=25))
def test_books_always_balance_tie_out_and_reverse_to_zero(db_url, ops):
    tenant = make_tenant(db_url)
    with tenant.uow() as uow:
        set_rate(uow, "EUR", date(2025, 12, 1), "1.1")
        set_rate(uow, "EUR", date(2026, 2, 1), "1.2537")
        set_rate(uow, "EUR", date(2026, 4, 1), "0.9871")
        invoices: list[tuple[uuid.UUID, str]] = []
        for op in ops:
            apply(uow, op, invoices)
        uow.commit()

    with tenant.uow(readonly=True) as uow:
        # every entry balances and each journal is numbered 1..n
        assert check_books(uow) == []
        for as_of in (date(2026, 1, 20), date(2026, 3, 31), date(2026, 12, 31)):
            # the trial balance balances
            report = trial_balance(uow, as_of=as_of)
            assert report.total_debit == report.total_credit
            # each aging ties to its control account
            for role in (Role.receivable, Role.payable):
                a = aging(uow, as_of=as_of, role=role)
                assert a.total == a.control_balance
                assert sum((r.total for r in a.rows), Decimal(0)) == a.total

    # when every entry is reversed
    with tenant.uow() as uow:
        for entry in list(uow.session.scalars(select(JournalEntry).order_by(JournalEntry.posted_at))):
            reverse_entry(uow, entry)
        uow.commit()
    # then every account is back to zero
    with tenant.uow(readonly=True) as uow:
        assert [b.code for b in account_balances(uow) if b.balance] == []
        assert check_books(uow) == []
