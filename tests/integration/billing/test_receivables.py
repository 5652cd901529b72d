"""Open receivables (the credit check's view of what a customer owes): open invoices' amounts due,
less the customer's unapplied payments and credit notes, in exact decimals, this tenant only."""

from __future__ import annotations

from decimal import Decimal as D

from entrepot.billing import service as billing
from entrepot.sales import service as sales
from tests.integration.sales.test_one_transaction import setup_order


def test_receivables_are_open_invoices_less_unapplied_credit(tenant, other_tenant):
    # given an invoice of 40.00 for the shipped order
    order, shipment = setup_order(tenant)
    with tenant.uow() as uow:
        sales.ship_shipment(uow, shipment.id)
        invoice = sales.invoice_sales_order(uow, order.id)
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        assert billing.open_receivables(uow, order.customer_id) == invoice.total == D("40.00")

    # when the customer pays 15.25 against it and sends 4.10 more unallocated
    with tenant.uow() as uow:
        billing.record_payment(uow, customer_id=order.customer_id, amount=D("15.25"), currency="USD",
                               allocations=[billing.AllocationInput(invoice.id, D("15.25"))])
        billing.record_payment(uow, customer_id=order.customer_id, amount=D("4.10"), currency="USD")
        uow.commit()

    # then it owes the rest of the invoice less its credit, and another tenant sees nothing of it
    with tenant.uow(readonly=True) as uow:
        assert billing.open_receivables(uow, order.customer_id) == D("40.00") - D("15.25") - D("4.10")
    with other_tenant.uow(readonly=True) as uow:
        assert billing.open_receivables(uow, order.customer_id) == 0
