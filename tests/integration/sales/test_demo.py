"""The demo data (platform/demo.py), made through the services, leaves consistent books."""

from __future__ import annotations

from sqlalchemy import func, select

from entrepot.billing import service as billing
from entrepot.inventory.models import SerialNumber, StockCount, Transfer
from entrepot.inventory.service import check_balances, expiring_lots, replenishment_suggestions
from entrepot.ledger.services.reports import trial_balance
from entrepot.platform.demo import load_demo_data
from entrepot.pricing.models import ContractPrice, PriceList
from entrepot.sales.models import Quote, ReturnAuthorization, SalesOrder, Shipment
from tests.conftest import make_tenant


def test_demo_data_is_varied_and_balanced(sqlite_only):
    # given a distributor and two dealers
    parent = make_tenant(sqlite_only)
    dealers = [make_tenant(sqlite_only, currency="EUR", parent=parent.slug),
               make_tenant(sqlite_only, currency="CAD", parent=parent.slug)]
    # when the demo data is loaded (a share of the orders)
    load_demo_data(parent.slug, [d.slug for d in dealers], scale=0.4)
    # then each tenant has orders in several states, and its books hold
    for tenant in (parent, *dealers):
        with tenant.uow(readonly=True) as uow:
            states = dict(uow.session.execute(select(SalesOrder.status, func.count()).group_by(SalesOrder.status))
                          .all())
            assert sum(states.values()) >= 6 and len(states) >= 3, states
            tb = trial_balance(uow)
            assert tb.total_debit == tb.total_credit > 0
            receivable = sum((ln.debit - ln.credit for ln in tb.lines if ln.account_code == "1100"), 0)
            assert billing.aging(uow)["total"] == receivable
            assert check_balances(uow) == []
            # and replenishment and transfers have something to show, and volume tiers and contracts price
            assert replenishment_suggestions(uow), "no product is due for reorder"
            assert uow.session.scalar(select(func.count()).select_from(PriceList)) == 1
            assert uow.session.scalar(select(func.count()).select_from(ContractPrice)) == 5
            # and a lot near its expiry, serials shipped to a customer, and a posted count with a variance
            assert [x.lot.code for x in expiring_lots(uow)] == ["SL-A"]
            assert uow.session.scalar(select(func.count()).select_from(SerialNumber)) == 6
            [count] = uow.session.scalars(select(StockCount)).all()
            # (the sheet's other lines, not counted, are kept with what was expected)
            assert count.status == "posted" and [ln["variance"] for ln in count.lines if ln.get("counted")] == [
                "0.0000", "-2.0000"]
    with parent.uow(readonly=True) as uow:
        # and the parent's lists show documents at every stage: quotes declined, shipments on the
        # warehouse floor, returns waiting for goods or for their credit note
        assert set(uow.session.scalars(select(Quote.status))) == {"draft", "sent", "accepted", "declined", "expired"}
        shipments = set(uow.session.scalars(select(Shipment.status)))
        assert {"draft", "picked", "packed", "shipped", "delivered"} <= shipments
        assert set(uow.session.scalars(select(ReturnAuthorization.status))) >= {"authorised", "received", "credited"}
        assert set(uow.session.scalars(select(Transfer.status))) == {"received", "in_transit", "requested"}
