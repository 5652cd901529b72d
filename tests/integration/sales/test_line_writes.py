"""Documents and their lines are written in one statement each (db.documents: insert_document,
working copies and save), yet behave as ordinary rows of the session: later steps of the same unit
of work read and change them, objects a caller holds show what the steps wrote, and what commits is
what they hold."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

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


def test_objects_a_caller_holds_follow_every_step_of_the_same_unit_of_work(tenant):
    # given an order and a shipment entered, confirmed and created in one unit of work (setup_order)
    order, shipment = setup_order(tenant)

    # when, in one unit of work that holds the order as an ORM object, it ships, is invoiced and paid
    from entrepot.billing import service as billing

    with tenant.uow() as uow:
        held = sales.get_sales_order(uow, order.id)
        version = held.version
        sales.ship_shipment(uow, shipment.id)
        # then the held order already shows what the step wrote, as loaded values (nothing left to flush)
        assert held.status == "shipped" and held.version == version + 1
        assert [ln.quantity_shipped for ln in held.lines] == [D(2), D(2)]
        assert held not in uow.session.dirty
        invoice = sales.invoice_sales_order(uow, order.id)
        assert held.invoice_status == "invoiced" and held.status == "closed"
        payment = billing.record_payment(uow, customer_id=order.customer_id, amount=invoice.total, currency="USD",
                                         allocations=[billing.AllocationInput(invoice.id, invoice.total)])
        assert invoice.status == "paid" and invoice.amount_due == 0 and invoice not in uow.session.dirty
        uow.commit()

    # and the database holds exactly that, each document's version moved once per step
    with tenant.uow(readonly=True) as uow:
        stored = sales.get_sales_order(uow, order.id)
        assert (stored.status, stored.invoice_status, stored.version) == ("closed", "invoiced", version + 2)
        assert [ln.quantity_invoiced for ln in stored.lines] == [D(2), D(2)]
        paid = billing.get_invoice(uow, invoice.id)
        assert (paid.status, paid.amount_due, paid.version) == ("paid", D(0), 2)
        assert [a.invoice_id for a in billing.get_payment(uow, payment.id).allocations] == [invoice.id]


def test_a_step_refuses_to_overwrite_a_row_changed_since_it_was_read(tenant):
    # given a confirmed order, read by a step
    from sqlalchemy import update
    from sqlalchemy.orm.exc import StaleDataError

    from entrepot.db.documents import save
    from entrepot.sales.models import SalesOrder

    order, _ = setup_order(tenant)
    with tenant.uow() as uow:
        copy = sales._locked_order(uow, order.id)
        # when the row's version moves underneath it (as another writer's would) and the step saves
        uow.session.connection().execute(update(SalesOrder.__table__).where(SalesOrder.__table__.c.id == order.id)
                                         .values(version=SalesOrder.__table__.c.version + 1))
        copy.notes = "late"
        # then nothing is overwritten
        with pytest.raises(StaleDataError):
            save(uow, [copy])


def test_a_steps_locked_read_holds_the_values_the_orm_loads(tenant):
    # given a confirmed order with a ship-to and a shipment (setup_order), shipped
    order, shipment = setup_order(tenant)
    with tenant.uow() as uow:
        sales.ship_shipment(uow, shipment.id)
        uow.commit()

    from entrepot.sales.models import SalesOrder, Shipment

    def columns(obj, model):  # type: ignore[no-untyped-def]
        return {c.key: getattr(obj, c.key) for c in model.__table__.c}

    # when a step reads the order, the shipment's order and the shipment with their lines (one
    # generated conversion per part of the joined row), and the ORM loads the same rows
    with tenant.uow(readonly=True) as uow:
        copies = [sales._locked_order(uow, order.id), sales._locked_order_of_shipment(uow, shipment.id),
                  sales._locked_shipment(uow, shipment.id)]
        uow.session.expunge_all()
        loaded = [sales.get_sales_order(uow, order.id), sales.get_sales_order(uow, order.id),
                  sales.get_shipment(uow, shipment.id)]
        # then each copy holds every column's value, of the same type, header and lines alike
        for copy, orm, model, line_model in zip(copies, loaded, [SalesOrder, SalesOrder, Shipment],
                                                [SalesOrderLine, SalesOrderLine, ShipmentLine], strict=True):
            assert columns(copy, model) == columns(orm, model)
            assert [type(v) for v in columns(copy, model).values()] == [type(v) for v in columns(orm, model).values()]
            assert [columns(ln, line_model) for ln in copy.lines] == [columns(ln, line_model) for ln in orm.lines]
            assert len(copy.lines) == 2
