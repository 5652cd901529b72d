"""Each order-desk step is one transaction: documents, stock, ledger and outbox commit together or not at all."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from sqlalchemy import func, select

from entrepot.catalog.service import create_product
from entrepot.integration.models import OutboxEvent
from entrepot.inventory.service import adjust_stock, create_warehouse, release, reserved_quantity
from entrepot.ledger.models import JournalEntry
from entrepot.parties.service import create_customer
from entrepot.sales import service as sales
from entrepot.sales.models import Shipment


def setup_order(tenant):
    with tenant.uow() as uow:
        wh = create_warehouse(uow, {"code": "MAIN", "name": "Main"})
        products = [create_product(uow, {"sku": f"P{i}", "name": f"Part {i}", "list_price": D("10"),
                                         "currency": "USD", "standard_cost": D("4")}) for i in range(2)]
        for p in products:
            adjust_stock(uow, warehouse_id=wh.id, product_id=p.id, quantity=D(5), reason="initial",
                         unit_cost=D("4"))
        customer = create_customer(uow, {"code": "C1", "name": "Customer", "currency": "USD"})
        order = sales.create_sales_order(uow, customer_id=customer.id, lines=[
            sales.OrderLineInput(p.id, D(2)) for p in products])
        sales.confirm_sales_order(uow, order.id)
        shipment = sales.create_shipment(uow, sales_order_id=order.id)
        uow.commit()
        return order, shipment


def counts(tenant):
    with tenant.uow(readonly=True) as uow:
        return (uow.session.scalar(select(func.count()).select_from(OutboxEvent)),
                uow.session.scalar(select(func.count()).select_from(JournalEntry)))


def test_a_shipment_that_fails_on_its_second_line_changes_nothing(tenant):
    # given a draft shipment of two lines, whose second line lost its reservation meanwhile
    order, shipment = setup_order(tenant)
    with tenant.uow() as uow:
        release(uow, sales.DEMAND, order.lines[1].id)
        uow.commit()
    before = counts(tenant)
    # when it is shipped
    with tenant.uow() as uow, pytest.raises(Exception):  # noqa: B017 - inventory's NotReserved
        sales.ship_shipment(uow, shipment.id)
    # then the first line's stock did not leave, no event or journal was written, the shipment is still a draft
    with tenant.uow(readonly=True) as uow:
        assert reserved_quantity(uow, sales.DEMAND, [order.lines[0].id])[order.lines[0].id] == 2
        assert uow.session.get(Shipment, shipment.id).status == "draft"
        assert sales.get_sales_order(uow, order.id).lines[0].quantity_shipped == 0
    assert counts(tenant) == before


def test_a_refused_payment_leaves_no_trace(tenant):
    from entrepot.billing import service as billing
    from entrepot.kernel.errors import DomainError

    order, shipment = setup_order(tenant)
    with tenant.uow() as uow:
        sales.ship_shipment(uow, shipment.id)
        invoice = sales.invoice_sales_order(uow, order.id)
        uow.commit()
    before = counts(tenant)
    with tenant.uow() as uow, pytest.raises(DomainError):
        billing.record_payment(uow, customer_id=order.customer_id, amount=D("100"), currency="USD",
                               allocations=[billing.AllocationInput(invoice.id, D("10")),
                                            billing.AllocationInput(invoice.id, D("10"))])
    assert counts(tenant) == before


def test_a_shipment_posts_one_cost_of_goods_entry_for_all_its_lines(tenant):
    # given a draft shipment of two lines of 2 units at 4.00
    _order, shipment = setup_order(tenant)
    # when it ships
    with tenant.uow() as uow:
        shipped = sales.ship_shipment(uow, shipment.id)
        line_costs = [sl.cost for sl in shipped.lines]
        uow.commit()
    # then each shipment line keeps its own cost and the ledger has one entry for their total
    assert line_costs == [D("8.00"), D("8.00")]
    with tenant.uow(readonly=True) as uow:
        entries = list(uow.session.scalars(select(JournalEntry).where(JournalEntry.source_type == "shipment")))
        issued = uow.session.scalar(select(func.count()).select_from(OutboxEvent)
                                    .where(OutboxEvent.type == "stock.issued.v1"))
    assert [e.total for e in entries] == [D("16.00")]
    assert issued == 2


def test_stock_issued_by_a_refused_shipment_is_taken_back_even_if_the_caller_commits(tenant):
    # Inventory runs its writes in a savepoint; the ledger refuses the shipment's COGS after them.
    from entrepot.inventory.models import StockMove
    from entrepot.kernel import clock
    from entrepot.kernel.errors import DomainError
    from entrepot.ledger.services.periods import close_period, ensure_period

    # given a draft shipment, and the current period closed
    order, shipment = setup_order(tenant)
    with tenant.uow() as uow:
        close_period(uow, ensure_period(uow, clock.today()))
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        moves = uow.session.scalar(select(func.count()).select_from(StockMove))
    # when it is shipped, the refusal caught, and the transaction committed anyway
    with tenant.uow() as uow:
        with pytest.raises(DomainError):
            sales.ship_shipment(uow, shipment.id)
        uow.commit()
    # then no stock left: no move, and both lines are still reserved
    with tenant.uow(readonly=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(StockMove)) == moves
        reserved = reserved_quantity(uow, sales.DEMAND, [line.id for line in order.lines])
        assert [reserved[line.id] for line in order.lines] == [2, 2]
