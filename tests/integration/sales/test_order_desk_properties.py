"""Random order-desk days (hypothesis): after every action, refused or not, the books hold.

Two customers: one in the tenant's currency (USD, untaxed), one in EUR shipping to Germany (19 % VAT),
while the euro's rate of the day moves (on some days there is none until it is first entered: the books
refuse the EUR invoices, and the nightly run leaves them for later).

Invariants: the ledger balances; receivables aging equals the receivable account, per currency and in
USD; stock balances equal the ledger of stock moves; no line is invoiced beyond what shipped, and invoice
lines add up to what the order says it invoiced; an invoice whose tax is credited in full (at once, in
parts, or by returns) leaves nothing on tax payable; invoice and credit note numbers have no gaps.
"""

from __future__ import annotations

from decimal import Decimal as D

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test
from sqlalchemy import func, select

from entrepot.billing import service as billing
from entrepot.billing.models import CreditNote, Invoice, InvoiceLine
from entrepot.catalog.service import create_product
from entrepot.inventory.service import adjust_stock, check_balances, create_warehouse
from entrepot.kernel import clock
from entrepot.kernel.errors import DomainError
from entrepot.ledger.chart import Role
from entrepot.ledger.models import Account, JournalEntry, JournalLine
from entrepot.ledger.services.rates import set_rate
from entrepot.ledger.services.reports import aging, trial_balance
from entrepot.parties.service import add_customer_address, create_customer
from entrepot.sales import returns
from entrepot.sales import service as sales
from entrepot.sales.models import SalesOrder, SalesOrderLine
from tests.conftest import make_tenant


class OrderDesk(RuleBasedStateMachine):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.tenant = make_tenant(url)
        with self.tenant.uow() as uow:
            self.warehouse = create_warehouse(uow, {"code": "W1", "name": "Main"}).id
            self.products = [create_product(uow, {"sku": f"P{i}", "name": f"Part {i}", "list_price": D("9.99"),
                                                  "currency": "USD", "standard_cost": D("3.33")}).id
                             for i in range(3)]
            self.customers = [create_customer(uow, {"code": code, "name": code, "currency": cur,
                                                    "credit_limit": D("400")}).id for code, cur in (("C", "USD"),
                                                                                                 ("E", "EUR"))]
            add_customer_address(uow, self.customers[1], {"kind": "ship_to", "is_default": True,
                                                          "line1": "1 Hauptstr.", "city": "Berlin", "country": "DE"})
            billing.create_tax_rate(uow, name="DE VAT", country="DE", rate_percent=D("19"))
            uow.commit()
        self.orders: list = []
        self.invoices: list = []

    def act(self, fn):  # type: ignore[no-untyped-def]
        """One action in one unit of work; a refusal (DomainError) must leave nothing behind."""
        try:
            with self.tenant.uow() as uow:
                result = fn(uow)
                uow.commit()
                return result
        except DomainError:
            return None

    @initialize(euro_known=st.booleans())
    def open_the_desk(self, euro_known):
        if euro_known:
            self.move_the_euro("1.1")
        for i in range(3):
            self.receive_stock(i, 5)
        for i in range(3):
            self.enter_order(i, 2 + i, customer=i % 2, euros=("0.26", "3.17", "9.99")[i])

    @rule(pick=st.integers(0, 50), steps=st.integers(1, 5))
    def advance(self, pick, steps):
        """Take an order a few steps further down the happy path, wherever it is."""
        for _ in range(steps):
            self._advance(pick)

    def _advance(self, pick):
        if not self.orders:
            return
        order_id = self.orders[pick % len(self.orders)]
        with self.tenant.uow(readonly=True) as uow:
            order = sales.get_sales_order(uow, order_id)
            status, unbilled = order.status, any(ln.quantity_shipped > ln.quantity_invoiced for ln in order.lines)
        if status == "draft":
            self.work_order(pick, "confirm")
        elif status == "on_hold":
            self.work_order(pick, "release")
        elif unbilled:
            self.work_order(pick, "invoice")
        elif status in ("confirmed", "partially_shipped"):
            self.work_order(pick, "ship")
        elif self.invoices:
            with self.tenant.uow(readonly=True) as uow:
                due = billing.get_invoice(uow, self.invoices[-1]).amount_due
            self.receive_payment(len(self.invoices) - 1, int(due * 100), 0)

    @rule(rate=st.sampled_from(["1.1", "1.2537", "0.9871", "1.0733"]))
    def move_the_euro(self, rate):
        """The euro's rate of the day is entered (again, a feed correcting it): what is posted keeps its rate."""
        self.act(lambda uow: set_rate(uow, "EUR", clock.today(), rate))

    @rule()
    def nightly_run(self):
        """The unattended billing run: what the books refuse waits for a later run, the rest is invoiced."""
        invoices = self.act(lambda uow: sales.run_invoicing(uow, refused=[]))
        self.invoices.extend(invoice.id for invoice in invoices or [])

    @rule(product=st.integers(0, 2), quantity=st.integers(1, 8))
    def receive_stock(self, product, quantity):
        self.act(lambda uow: adjust_stock(uow, warehouse_id=self.warehouse, product_id=self.products[product],
                                          quantity=D(quantity), reason="receipt", unit_cost=D("3.50")))

    @rule(product=st.integers(0, 2), quantity=st.integers(-3, 6), customer=st.integers(0, 1),
          euros=st.sampled_from(["0.26", "9.99", "3.17"]))
    def enter_order(self, product, quantity, customer=0, euros="9.99"):
        # the products are listed in USD: the EUR customer's price is given
        order = self.act(lambda uow: sales.create_sales_order(uow, customer_id=self.customers[customer], lines=[
            sales.OrderLineInput(self.products[product], D(quantity), D(euros) if customer else None)]))
        if order is not None:
            self.orders.append(order.id)

    @rule(pick=st.integers(0, 50), action=st.sampled_from(["confirm", "cancel", "release", "ship", "invoice",
                                                           "allocate", "return", "close"]))
    def work_order(self, pick, action):
        if not self.orders:
            return
        order_id = self.orders[pick % len(self.orders)]
        if action == "confirm":
            self.act(lambda uow: sales.confirm_sales_order(uow, order_id))
        elif action == "cancel":
            self.act(lambda uow: sales.cancel_sales_order(uow, order_id))
        elif action == "release":
            self.act(lambda uow: sales.release_hold(uow, order_id))
        elif action == "close":
            self.act(lambda uow: sales.close_short(uow, order_id))
        elif action == "allocate":
            self.act(lambda uow: sales.allocate_backorders(uow, order_id))
        elif action == "ship":
            def ship(uow):  # type: ignore[no-untyped-def]
                shipment = sales.create_shipment(uow, sales_order_id=order_id)
                return sales.ship_shipment(uow, shipment.id)
            self.act(ship)
        elif action == "invoice":
            invoice = self.act(lambda uow: sales.invoice_sales_order(uow, order_id))
            if invoice is not None:
                self.invoices.append(invoice.id)
        else:
            def give_back(uow):  # type: ignore[no-untyped-def]
                order = sales.get_sales_order(uow, order_id)
                rma = returns.authorise_return(uow, sales_order_id=order_id, lines=[
                    returns.ReturnLineInput(order.lines[0].id, D(1))])
                returns.receive_return(uow, rma.id)
                return returns.credit_return(uow, rma.id)
            self.act(give_back)

    @rule(pick=st.integers(0, 50), whole=st.booleans())
    def credit(self, pick, whole):
        """Credit an invoice: all that is left of it, or one unit of its first line not yet credited."""
        if not self.invoices:
            return
        invoice_id = self.invoices[pick % len(self.invoices)]

        def issue(uow):  # type: ignore[no-untyped-def]
            invoice = billing.get_invoice(uow, invoice_id)
            open_lines = [ln for ln in invoice.lines if ln.quantity > ln.quantity_credited]
            lines = None if whole or not open_lines else [billing.CreditLineInput(open_lines[0].id, D(1))]
            return billing.issue_credit_note(uow, invoice_id=invoice_id, lines=lines)
        self.act(issue)

    @rule(pick=st.integers(0, 50), cents=st.integers(-100, 20000), spare=st.integers(0, 1000))
    def receive_payment(self, pick, cents, spare):
        if not self.invoices:
            return
        invoice_id = self.invoices[pick % len(self.invoices)]
        with self.tenant.uow(readonly=True) as uow:
            invoice = billing.get_invoice(uow, invoice_id)
            customer, currency = invoice.customer_id, invoice.currency
        amount = D(cents) / 100
        self.act(lambda uow: billing.record_payment(
            uow, customer_id=customer, amount=amount + D(spare) / 100, currency=currency,
            allocations=[billing.AllocationInput(invoice_id, amount)]))

    @invariant()
    def books_hold(self):
        with self.tenant.uow(readonly=True) as uow:
            tb = trial_balance(uow)
            assert tb.total_debit == tb.total_credit
            receivable = sum((ln.debit - ln.credit for ln in tb.lines if ln.account_code == "1100"), D(0))
            ledger_aging = aging(uow, as_of=clock.today(), role=Role.receivable)
            assert ledger_aging.total == ledger_aging.control_balance == receivable
            # each currency's open items are what the receivable account holds in that currency
            held = dict(uow.session.execute(
                select(JournalLine.currency, func.sum(JournalLine.amount))
                .join(Account, Account.id == JournalLine.account_id).where(Account.code == "1100")
                .group_by(JournalLine.currency)).all())
            assert {cur: total for cur, total in billing.aging(uow)["totals"].items() if total} == {
                cur: D(total) for cur, total in held.items() if total}
            assert check_balances(uow) == []
            for line in uow.session.scalars(select(SalesOrderLine)):
                assert line.quantity_invoiced <= line.quantity_shipped <= line.quantity
                billed = uow.session.scalar(select(func.sum(InvoiceLine.quantity)).where(
                    InvoiceLine.source_line_id == line.id)) or D(0)
                assert billed == line.quantity_invoiced
            # an invoice whose tax was credited in full keeps nothing on tax payable, in either currency
            for invoice_id, tax, credited, notes in uow.session.execute(
                    select(Invoice.id, Invoice.tax_total, func.sum(CreditNote.tax_total), func.count())
                    .join(CreditNote, CreditNote.invoice_id == Invoice.id).group_by(Invoice.id, Invoice.tax_total)):
                if tax and credited == tax:
                    sources = [invoice_id, *uow.session.scalars(select(CreditNote.id)
                                                                .where(CreditNote.invoice_id == invoice_id))]
                    left = uow.session.execute(
                        select(func.sum(JournalLine.amount), func.sum(JournalLine.debit - JournalLine.credit))
                        .join(JournalEntry, JournalEntry.id == JournalLine.entry_id)
                        .join(Account, Account.id == JournalLine.account_id)
                        .where(JournalEntry.source_id.in_(sources), Account.role == Role.tax_payable.value)).one()
                    assert tuple(left) == (0, 0), (invoice_id, tax, notes, left)
            for model in (Invoice, CreditNote):
                numbers = sorted(int(number.rsplit("-", 1)[-1]) for number in uow.session.scalars(select(model.number)))
                assert numbers == list(range(1, len(numbers) + 1)), (model.__name__, numbers)
            for order in uow.session.scalars(select(SalesOrder)):
                assert order.status in ("draft", "on_hold", "confirmed", "partially_shipped", "shipped", "closed",
                                        "cancelled")


def test_random_order_desk_days_keep_the_books(sqlite_only):
    run_state_machine_as_test(lambda: OrderDesk(sqlite_only), settings=settings(
        max_examples=20, stateful_step_count=40, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))
