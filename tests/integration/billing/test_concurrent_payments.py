"""Two cashiers allocate to the same invoice at once: the invoice lock serialises them, so the
amount due never goes below zero (real threads; row locks on PostgreSQL, the write lock on SQLite)."""

from __future__ import annotations

import threading
from decimal import Decimal as D

from entrepot.billing import service as billing
from entrepot.kernel.errors import DomainError
from tests.integration.sales.test_one_transaction import setup_order


def test_concurrent_allocations_never_overpay(tenant):
    from entrepot.sales import service as sales

    order, shipment = setup_order(tenant)
    with tenant.uow() as uow:
        sales.ship_shipment(uow, shipment.id)
        invoice = sales.invoice_sales_order(uow, order.id)  # 40.00
        uow.commit()
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def cashier() -> None:
        start.wait()
        try:
            with tenant.uow() as uow:
                billing.record_payment(uow, customer_id=order.customer_id, amount=D("30.00"), currency="USD",
                                       allocations=[billing.AllocationInput(invoice.id, D("30.00"))])
                uow.commit()
                outcomes.append("paid")
        except DomainError as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=cashier) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # one allocation wins, the other is refused for exceeding what is now due
    assert sorted(outcomes) == ["OverAllocation", "paid"]
    with tenant.uow(readonly=True) as uow:
        assert billing.get_invoice(uow, invoice.id).amount_due == D("10.00")
