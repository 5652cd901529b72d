"""Document lines are written in one statement (db.document_lines: insert_lines / update_lines), yet behave as
ordinary rows of the session: later steps of the same unit of work read and change them, and what
commits is what they hold."""

from __future__ import annotations

from decimal import Decimal as D

from entrepot.billing.service import get_invoice
from entrepot.sales import service as sales
from entrepot.sales.models import SalesOrderLine, ShipmentLine
from tests.integration.sales.test_one_transaction import setup_order


def test_a_whole_order_to_invoice_in_one_unit_of_work_commits_every_line_change(tenant):
    # given an order entered, confirmed and put on a shipment in one unit of work (setup_order)
    order, shipment = setup_order(tenant)

    # when, again in one unit of work, it ships, is invoiced and one line's description is edited ORM-style
    with tenant.uow() as uow:
        sales.ship_shipment(uow, shipment.id)
        invoice = sales.invoice_sales_order(uow, order.id)
        invoice.lines[0].description = "edited after the insert"
        uow.commit()

    # then the database holds every change: shipped and invoiced quantities, what left, the edit
    with tenant.uow(readonly=True) as uow:
        lines = sales.get_sales_order(uow, order.id).lines
        assert [(ln.quantity_shipped, ln.quantity_invoiced) for ln in lines] == [(D(2), D(2)), (D(2), D(2))]
        shipped = uow.session.query(ShipmentLine).filter_by(shipment_id=shipment.id).all()
        assert all(sl.warehouse_id is not None and sl.cost == D("8.00") for sl in shipped)
        stored = get_invoice(uow, invoice.id)
        assert stored.lines[0].description == "edited after the insert"
        assert len(stored.lines) == 2 and stored.total == D("40.00")


def test_lines_written_at_once_belong_to_the_tenant(tenant, other_tenant):
    # given an order of this tenant
    order, _ = setup_order(tenant)
    # then its lines carry this tenant, and the other tenant does not see them
    with tenant.uow(readonly=True) as uow:
        assert {ln.tenant_id for ln in sales.get_sales_order(uow, order.id).lines} == {tenant.id}
    with other_tenant.uow(readonly=True) as uow:
        assert uow.session.query(SalesOrderLine).filter_by(order_id=order.id).count() == 0
