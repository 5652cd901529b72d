"""A month of a distributor's books, March 2026, checked against figures worked out by hand.

The owner pays in capital; 400 units are bought at 50 and invoiced by the supplier
at 51; two customers buy at 90 (10 % tax); Acme pays early taking a 2 % discount;
Bolt returns 5 units and pays part of its invoice; the supplier and the rent are
paid; March is closed.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest

from entrepot.ledger import posting
from entrepot.ledger.errors import PeriodClosed
from entrepot.ledger.services import periods
from entrepot.ledger.services.entries import ManualEntry, ManualLine, create_manual_entry
from entrepot.ledger.services.reports import aging, balance_sheet, customer_statement, profit_and_loss, trial_balance

D = Decimal
ACME, BOLT, SUPPLIER = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def march(day: int) -> date:
    return date(2026, 3, day)


def test_a_month_of_books(tenant):
    with tenant.uow() as uow:
        # Mar 1: the owner pays in 50,000
        create_manual_entry(uow, ManualEntry(march(1), [ManualLine(account_code="1000", debit="50000"),
                                                        ManualLine(account_code="3000", credit="50000")],
                                             description="Capital paid in"))
        # Mar 2: 400 units received at 50 → inventory 20,000 against goods received not invoiced
        posting.post_goods_receipt(uow, source_id=uuid.uuid4(), on=march(2), amount=D(20000))
        # Mar 3: the supplier invoices 400 × 51 = 20,400 + 10 % tax: 400 price variance
        posting.post_supplier_invoice(uow, source_id=uuid.uuid4(), number="SUP-771", on=march(3), currency="USD",
                                      supplier_id=SUPPLIER, net=D(20400), tax=D(2040), received=D(20000),
                                      due_on=march(31))
        # Mar 5: Acme buys 100 × 90 = 9,000 + 900 tax, due in 30 days; the goods cost 100 × 50
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-000001", on=march(5), currency="USD",
                             customer_id=ACME, net=D(9000), tax=D(900), due_on=date(2026, 4, 4))
        posting.post_shipment_cost(uow, source_id=uuid.uuid4(), on=march(5), amount=D(5000))
        # Mar 10: Bolt buys 60 × 90 = 5,400 + 540, due in 15 days; cost 3,000
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-000002", on=march(10), currency="USD",
                             customer_id=BOLT, net=D(5400), tax=D(540), due_on=march(25))
        posting.post_shipment_cost(uow, source_id=uuid.uuid4(), on=march(10), amount=D(3000))
        # Mar 12: Acme pays 9,702, taking the 2 % early-payment discount of 198
        posting.post_customer_payment(uow, source_id=uuid.uuid4(), on=march(12), currency="USD", customer_id=ACME,
                                      amount=D(9702), discount=D(198))
        # Mar 15: Bolt returns 5 units: credit note 450 + 45, back in stock at 250
        posting.post_credit_note(uow, source_id=uuid.uuid4(), number="CN-000001", on=march(15), currency="USD",
                                 customer_id=BOLT, net=D(450), tax=D(45))
        posting.post_stock_return(uow, source_id=uuid.uuid4(), on=march(15), amount=D(250))
        # Mar 20: the supplier is paid in full
        posting.post_supplier_payment(uow, source_id=uuid.uuid4(), on=march(20), currency="USD",
                                      supplier_id=SUPPLIER, amount=D(22440))
        # Mar 25: March rent
        create_manual_entry(uow, ManualEntry(march(25), [ManualLine(account_code="6100", debit="3000"),
                                                         ManualLine(account_code="1000", credit="3000")],
                                             description="Rent, March"))
        # Mar 28: Bolt pays 3,000 on account
        posting.post_customer_payment(uow, source_id=uuid.uuid4(), on=march(28), currency="USD", customer_id=BOLT,
                                      amount=D(3000))
        uow.commit()

    # Mar 31: March is closed
    with tenant.uow() as uow:
        periods.close_period(uow, periods.ensure_period(uow, march(31)))
        uow.commit()

    with tenant.uow(readonly=True) as uow:
        pnl = profit_and_loss(uow, from_date=march(1), to_date=march(31))
        # revenue 9,000 + 5,400 − 450 = 13,950, less discounts 198 = 13,752
        assert pnl.total_income == D(13752)
        # COGS 5,000 + 3,000 − 250 = 7,750, plus price variance 400
        assert pnl.cost_of_sales == D(8150)
        assert pnl.gross_profit == D(5602)
        # plus rent 3,000
        assert pnl.total_expenses == D(11150)
        assert pnl.net_income == D(2602)

        sheet = balance_sheet(uow, as_of=march(31))
        assets = {r.account_code: r.amount for r in sheet.assets}
        # cash 50,000 + 9,702 − 22,440 − 3,000 + 3,000
        assert assets == {"1000": D(37262), "1100": D(2445), "1200": D(12250), "1300": D(2040)}
        assert sheet.total_assets == D(53997)
        # tax payable 900 + 540 − 45; AP and GRNI cleared
        assert {r.account_code: r.amount for r in sheet.liabilities if r.amount} == {"2200": D(1395)}
        assert sheet.current_earnings == D(2602)
        assert sheet.total_liabilities + sheet.total_equity == D(53997)

        receivables = aging(uow, as_of=march(31))
        # Bolt's 5,940 fell due on Mar 25; 495 credited and 3,000 paid leave 2,445 six days overdue
        assert [(r.party_id, r.buckets["1_30"], r.total) for r in receivables.rows] == [(BOLT, D(2445), D(2445))]
        assert receivables.control_balance == D(2445)

        statement = customer_statement(uow, customer_id=BOLT, from_date=march(1), to_date=march(31))
        assert [ln.balance for ln in statement.lines] == [D(5940), D(5445), D(2445)]

        report = trial_balance(uow, as_of=march(31))
        assert report.total_debit == report.total_credit

    # April: March can no longer be posted to; April can
    with tenant.uow() as uow, pytest.raises(PeriodClosed):
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-000003", on=march(31), currency="USD",
                             customer_id=ACME, net=D(10), tax=D(1))
    with tenant.uow() as uow:
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-000003", on=date(2026, 4, 1),
                             currency="USD", customer_id=ACME, net=D(10), tax=D(1))
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        assert profit_and_loss(uow, from_date=march(1), to_date=march(31)).net_income == D(2602)
