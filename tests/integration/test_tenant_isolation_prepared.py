"""The tenancy wall on the statements that skip the ORM (Core and db.prepared).

The ORM session filters every query on a tenant-owned model by tenant; Core and prepared
statements are not filtered for them, and SQLite has no row-level security behind them. So
each such statement names the unit of work's tenant itself. These tests give one tenant's
services the ids of another tenant's documents: the answer must be NotFound (or a refusal
naming no other tenant's data), and the other tenant's rows must not change. They run on
SQLite and on PostgreSQL.
"""

from __future__ import annotations

import uuid
from decimal import Decimal as D

import pytest
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from entrepot.api.reads import load_row
from entrepot.billing import service as billing
from entrepot.billing.models import Invoice
from entrepot.catalog.models import Product
from entrepot.db.documents import insert_document, new_row, save, working_copy
from entrepot.db.engine import TenancyViolation
from entrepot.inventory.service import reserved_quantity
from entrepot.inventory.services.allocation import issue_reserved_many
from entrepot.kernel.errors import DomainError, NotFound
from entrepot.kernel.ids import new_id
from entrepot.parties.service import create_customer
from entrepot.sales import service as sales
from entrepot.sales.models import SalesOrder, SalesOrderLine, Shipment
from tests.conftest import make_tenant
from tests.integration.sales.test_one_transaction import setup_order


def _state_of(handle, order_id, shipment_id):
    """What tenant B's documents look like, read through B's own unit of work."""
    with handle.uow(readonly=True) as uow:
        order = sales.get_sales_order(uow, order_id)
        shipment = uow.session.get(Shipment, shipment_id)
        reserved = reserved_quantity(uow, sales.DEMAND, [ln.id for ln in order.lines])
        return ((order.status, order.invoice_status, order.version),
                [(ln.quantity_shipped, ln.quantity_invoiced, ln.quantity_backordered) for ln in order.lines],
                (shipment.status, shipment.version), sorted(reserved.values()))


@pytest.mark.parametrize("step", ["confirm", "release_hold", "allocate_backorders", "create_shipment",
                                  "ship", "invoice"])
def test_a_step_given_another_tenants_document_is_not_found_and_changes_nothing(tenant, other_tenant, step):
    # given tenant B's order, confirmed, with a draft shipment
    order, shipment = setup_order(other_tenant)
    before = _state_of(other_tenant, order.id, shipment.id)
    run = {
        "confirm": lambda uow: sales.confirm_sales_order(uow, order.id),
        "release_hold": lambda uow: sales.release_hold(uow, order.id),
        "allocate_backorders": lambda uow: sales.allocate_backorders(uow, order.id),
        "create_shipment": lambda uow: sales.create_shipment(uow, sales_order_id=order.id),
        "ship": lambda uow: sales.ship_shipment(uow, shipment.id),
        "invoice": lambda uow: sales.invoice_sales_order(uow, order.id),
    }[step]
    # when tenant A's unit of work runs the step on B's ids
    # (a shipment names its order in the body: not found there either, naming the field)
    with tenant.uow() as uow:
        with pytest.raises(DomainError) as refused:
            run(uow)
        assert refused.value.status == 404 and refused.value.code == NotFound.code
        uow.commit()
    # then B's order, lines, shipment and reservations are as they were
    assert _state_of(other_tenant, order.id, shipment.id) == before


def _invoiced_order(handle) -> uuid.UUID:
    """A confirmed order of `handle`'s tenant, shipped and invoiced: its invoice's id."""
    order, shipment = setup_order(handle)
    with handle.uow() as uow:
        sales.ship_shipment(uow, shipment.id)
        invoice_id = sales.invoice_sales_order(uow, order.id).id
        uow.commit()
    return invoice_id


def test_a_payment_cannot_be_allocated_to_another_tenants_invoice(tenant, other_tenant):
    # given tenant B's shipped and invoiced order, and a customer of tenant A
    invoice_id = _invoiced_order(other_tenant)
    with tenant.uow() as uow:
        customer_id = create_customer(uow, {"code": "C1", "name": "Customer", "currency": "USD"}).id
        uow.commit()
    # when A records a payment allocated to B's invoice
    with tenant.uow() as uow, pytest.raises(DomainError) as refused:
        billing.record_payment(uow, customer_id=customer_id, amount=D("10"), currency="USD",
                               allocations=[billing.AllocationInput(invoice_id, D("10"))])
    # then it is refused as no invoice of A's, and B's invoice is unchanged
    assert "no such invoice" in str(refused.value.__dict__) or "no such invoice" in str(refused.value)
    with other_tenant.uow(readonly=True) as uow:
        invoice = billing.get_invoice(uow, invoice_id)
        assert (invoice.amount_paid, invoice.status, invoice.version) == (D(0), "posted", 1)


def test_issuing_another_tenants_reservations_is_refused(tenant, other_tenant):
    # given tenant B's order with stock reserved for its lines
    order, shipment = setup_order(other_tenant)
    before = _state_of(other_tenant, order.id, shipment.id)
    # when A's unit of work issues what B reserved
    with tenant.uow() as uow, pytest.raises(DomainError):
        issue_reserved_many(uow, demand_type=sales.DEMAND, reference="X",
                            items=[(ln.id, D(1)) for ln in order.lines])
    # then nothing of B's moved
    assert _state_of(other_tenant, order.id, shipment.id) == before


def test_the_by_id_read_does_not_find_another_tenants_row(tenant, other_tenant):
    # given a product of tenant B
    order, _ = setup_order(other_tenant)
    product_id = order.lines[0].product_id
    # then A's read of it by id is NotFound, B's finds it
    with tenant.uow(readonly=True) as uow, pytest.raises(NotFound):
        load_row(uow, Product, product_id, "product")
    with other_tenant.uow(readonly=True) as uow:
        assert load_row(uow, Product, product_id, "product").id == product_id


def test_the_one_message_read_on_postgresql_does_not_find_another_tenants_row(pg_url):
    # PostgreSQL's by-id read of the API (api.reads.fetch_row_on_postgres); SQLite's is load_row, above
    import asyncio

    from entrepot.api.reads import fetch_row_on_postgres
    from entrepot.db.async_pool import AsyncReadPool, connect_args
    from entrepot.db.engine import get_engine

    tenant, other_tenant = make_tenant(pg_url), make_tenant(pg_url)
    order, _ = setup_order(other_tenant)
    product_id = order.lines[0].product_id
    engine = get_engine(pg_url)

    async def read_in_both_tenants():  # type: ignore[no-untyped-def]
        pool = AsyncReadPool(connect_args(engine), 1)
        try:
            return (await fetch_row_on_postgres(pool, engine.dialect, Product, product_id, tenant.id),
                    await fetch_row_on_postgres(pool, engine.dialect, Product, product_id, other_tenant.id))
        finally:
            await pool.close()

    in_tenant, in_other_tenant = asyncio.run(read_in_both_tenants())
    assert in_tenant is None
    assert in_other_tenant.id == product_id


def test_a_document_written_with_another_tenants_id_is_refused(tenant, other_tenant):
    # given tenant B's customer (a row any order needs)
    order, _ = setup_order(other_tenant)
    # when A's unit of work writes a document that claims tenant B, as the ORM's flush would refuse
    order_id = new_id()
    with tenant.uow() as uow:
        with pytest.raises(TenancyViolation):
            insert_document(uow, new_row(
                SalesOrder, id=order_id, tenant_id=other_tenant.id, number="SO-X", customer_id=order.customer_id,
                status="draft", invoice_status="not_invoiced", currency="USD", order_date=order.order_date,
                subtotal=D(0), tax_total=D(0), total=D(0), invoiced_total=D(0), shipping_charge=D(0),
                shipping_tax=D(0), shipping_invoiced=False))
        uow.rollback()
    # then no such order exists for B
    with other_tenant.uow(readonly=True) as uow:
        assert uow.session.get(SalesOrder, order_id) is None


def test_lines_written_with_another_tenants_id_are_refused(tenant, other_tenant):
    order, _ = setup_order(other_tenant)
    line = order.lines[0]
    with tenant.uow() as uow:
        with pytest.raises(TenancyViolation):
            insert_document(uow, new_row(
                SalesOrder, id=new_id(), number="SO-Y", customer_id=order.customer_id, status="draft",
                invoice_status="not_invoiced", currency="USD", order_date=order.order_date, subtotal=D(0),
                tax_total=D(0), total=D(0), invoiced_total=D(0), shipping_charge=D(0), shipping_tax=D(0),
                shipping_invoiced=False), "lines",
                [new_row(SalesOrderLine, id=new_id(), tenant_id=other_tenant.id, order_id=order.id, line_no=9,
                         product_id=line.product_id, sku="X", description="X", quantity=D(1), unit_price=D(1),
                         line_total=D(1), tax_rate_percent=D(0), tax_amount=D(0))])
        uow.rollback()


def test_saving_a_copy_of_another_tenants_rows_writes_nothing(tenant, other_tenant):
    # given working copies (in A's unit of work) built from tenant B's order row and line rows
    order, shipment = setup_order(other_tenant)
    before = _state_of(other_tenant, order.id, shipment.id)
    with other_tenant.uow(readonly=True) as uow:
        order_row = dict(uow.session.execute(select(*SalesOrder.__table__.c).where(
            SalesOrder.id == order.id)).one()._mapping)
    with tenant.uow() as uow:
        copy = working_copy(uow, SalesOrder, order_row)
        copy.status = "cancelled"
        # then the versioned header matches no row of A's: refused as a stale write
        with pytest.raises(StaleDataError):
            save(uow, [copy])
        uow.rollback()
    assert _state_of(other_tenant, order.id, shipment.id) == before


def test_a_copy_cannot_be_moved_to_another_tenant(tenant, other_tenant):
    # given tenant A's order, read as a step's working copy
    order, shipment = setup_order(tenant)
    before = _state_of(tenant, order.id, shipment.id)
    with tenant.uow() as uow:
        copy = sales._locked_order(uow, order.id)
        # when a step gives it (or a line) tenant B's id, then save refuses it, as the ORM's flush would
        copy.lines[0].tenant_id = other_tenant.id
        with pytest.raises(TenancyViolation):
            save(uow, copy.lines)
        copy.tenant_id = other_tenant.id
        with pytest.raises(TenancyViolation):
            save(uow, [copy])
        uow.rollback()
    assert _state_of(tenant, order.id, shipment.id) == before
    with other_tenant.uow(readonly=True) as uow:
        assert uow.session.get(SalesOrder, order.id) is None


def test_invoices_of_another_tenant_are_not_read_for_allocation(tenant, other_tenant):
    # the locked read of a payment's invoices names the tenant (billing._locked_invoices)
    invoice_id = _invoiced_order(other_tenant)
    with tenant.uow() as uow:
        assert billing._locked_invoices(uow, [invoice_id, uuid.uuid4()]) == {}
    with other_tenant.uow() as uow:
        found = billing._locked_invoices(uow, [invoice_id])
        assert list(found) == [invoice_id] and isinstance(found[invoice_id], Invoice)


# ---------------------------------------------------------------- db.documents and savepoints
#
# Not the wall, but what the ORM did with the same rows: a savepoint that rolls back takes the
# rows written in it away from the session too (new objects expunged, changed ones expired).


def test_a_document_inserted_in_a_savepoint_that_rolls_back_is_gone_from_the_session(tenant):
    order, _ = setup_order(tenant)
    with tenant.uow() as uow:
        savepoint = uow.session.begin_nested()
        created = sales.create_sales_order(uow, customer_id=order.customer_id, lines=[
            sales.OrderLineInput(order.lines[0].product_id, D(1))])
        savepoint.rollback()
        assert uow.session.get(SalesOrder, created.id) is None
        assert uow.session.get(SalesOrderLine, created.lines[0].id) is None


def test_a_step_saved_in_a_savepoint_that_rolls_back_leaves_held_objects_as_the_database_has_them(tenant):
    order, shipment = setup_order(tenant)
    with tenant.uow() as uow:
        held = sales.get_sales_order(uow, order.id)
        status, version = held.status, held.version
        savepoint = uow.session.begin_nested()
        sales.ship_shipment(uow, shipment.id)
        assert held.status == "shipped"
        savepoint.rollback()
        assert (held.status, held.version) == (status, version)
        assert [ln.quantity_shipped for ln in held.lines] == [D(0), D(0)]
        # and the step can run again in the same unit of work
        sales.ship_shipment(uow, shipment.id)
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        assert sales.get_sales_order(uow, order.id).version == version + 1


def test_order_entry_reads_do_not_see_another_tenants_listings_or_supplier_items(tenant, other_tenant):
    from entrepot.catalog.service import create_product, list_channel_product, sellable_in_channel
    from entrepot.kernel import clock
    from entrepot.parties.service import create_supplier, create_supplier_item, quickest_lead_times

    # given tenant B lists its product in the web channel for one group only, with a 30-day supplier
    with other_tenant.uow() as uow:
        theirs = create_product(uow, {"sku": "B-1", "name": "B's", "list_price": D("5"), "currency": "USD"})
        list_channel_product(uow, channel="web", product_id=theirs.id, customer_group="dealers")
        supplier = create_supplier(uow, {"code": "S", "name": "S", "currency": "USD"})
        create_supplier_item(uow, {"supplier_id": supplier.id, "product_id": theirs.id, "cost": D("4"),
                                   "currency": "USD", "lead_time_days": 30})
        uow.commit()
    with tenant.uow() as uow:
        mine = create_product(uow, {"sku": "A-1", "name": "A's", "list_price": D("5"), "currency": "USD"})
        uow.commit()
    # when tenant A asks about the web channel and lead times, naming B's product too
    with tenant.uow(readonly=True) as uow:
        # then A's web channel lists nothing, so it sells everything: B's listing is not seen
        assert sellable_in_channel(uow, [mine.id, theirs.id], channel="web") == {mine.id, theirs.id}
        # and B's supplier item gives A no lead time
        assert quickest_lead_times(uow, [mine.id, theirs.id], on=clock.today()) == {}
    with other_tenant.uow(readonly=True) as uow:  # while B sees its own
        assert sellable_in_channel(uow, [theirs.id], channel="web") == set()
        assert quickest_lead_times(uow, [theirs.id], on=clock.today()) == {theirs.id: 30}


def test_reserved_and_backordered_quantities_of_another_tenants_lines_are_not_read(tenant, other_tenant):
    from entrepot.inventory.service import backordered_quantity

    # given tenant B's confirmed order, with stock reserved for its lines
    order, _ = setup_order(other_tenant)
    line_ids = [ln.id for ln in order.lines]
    with other_tenant.uow(readonly=True) as uow:
        assert any(reserved_quantity(uow, sales.DEMAND, line_ids).values())
    # when tenant A asks about B's lines, then it learns nothing
    with tenant.uow(readonly=True) as uow:
        assert set(reserved_quantity(uow, sales.DEMAND, line_ids).values()) == {D(0)}
        assert set(backordered_quantity(uow, sales.DEMAND, line_ids).values()) <= {D(0)}
