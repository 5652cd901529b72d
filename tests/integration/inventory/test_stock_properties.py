"""Property: any sequence of receipts, adjustments, reservations, releases, transfers (shipped at once,
or requested, then shipped, cancelled or received), shipments and opening-stock imports keeps every
balance equal to the ledger, never lets available stock go negative, and keeps the valuation equal to the
inventory account; an import that is accepted sets what it says, and the stock exported then imported
again changes nothing."""

from __future__ import annotations

import io
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from entrepot.catalog import service as catalog
from entrepot.identity.services.tenant_settings import update_tenant_settings
from entrepot.inventory import service as inventory
from entrepot.inventory.imports import export_stock, import_stock
from entrepot.inventory.models import CostLayer, ItemCost, LocationKind, StockBalance, StockMove, Warehouse
from entrepot.inventory.services import valuation
from entrepot.kernel import clock
from entrepot.kernel.errors import DomainError
from entrepot.ledger.services.reports import account_balances
from tests.conftest import make_tenant
from tests.integration.inventory.helpers import product, warehouse

qty = st.integers(min_value=1, max_value=8).map(Decimal)
cost = st.sampled_from(["1.00", "2.50", "3.33", "0.07"])
ops = st.lists(
    st.one_of(
        st.tuples(st.just("receive"), st.integers(0, 1), qty, cost),
        st.tuples(st.just("receive_backdated"), st.integers(0, 1), qty, st.tuples(cost, st.integers(0, 6))),
        st.tuples(st.just("adjust"), st.integers(0, 1), st.integers(-6, 6).filter(bool).map(Decimal), cost),
        st.tuples(st.just("allocate"), st.integers(0, 1), qty, st.none()),
        st.tuples(st.just("release"), st.integers(0, 50), st.none(), st.none()),
        st.tuples(st.just("issue"), st.integers(0, 50), qty, st.none()),
        st.tuples(st.just("transfer"), st.integers(0, 1), qty, st.none()),
        st.tuples(st.just("request_transfer"), st.integers(0, 1), qty, st.none()),
        st.tuples(st.just("ship_transfer"), st.integers(0, 50), st.none(), st.none()),
        st.tuples(st.just("cancel_transfer"), st.integers(0, 50), st.none(), st.none()),
        st.tuples(st.just("receive_transfer"), st.integers(0, 50), st.none(), st.none()),
        st.tuples(st.just("scrap"), st.integers(0, 1), qty, st.none()),
        # the opening-stock file says what is on hand (at a cost, or at the average), all or nothing
        st.tuples(st.just("import"), st.integers(0, 1), st.integers(0, 9).map(Decimal), st.none() | cost),
        st.tuples(st.just("export_import"), st.none(), st.none(), st.none()),
    ),
    min_size=1, max_size=25,
)


def _apply(uow, op, p, warehouses, demands, transfers):
    kind, a, b, c = op
    if kind == "receive":
        inventory.receive_stock(uow, product_id=p, warehouse_id=warehouses[a], quantity=b, unit_cost=c,
                                reference="PO")
    elif kind == "receive_backdated":
        inventory.receive_stock(uow, product_id=p, warehouse_id=warehouses[a], quantity=b, unit_cost=c[0],
                                reference="PO-late", on=clock.today() - timedelta(days=c[1]))
    elif kind == "adjust":
        inventory.adjust_stock(uow, warehouse_id=warehouses[a], product_id=p, quantity=b, reason="test",
                               unit_cost=c if b > 0 else None)
    elif kind == "allocate":
        line = inventory.Demand("line", uuid.uuid4(), p, b, warehouses[a] if a else None)
        inventory.allocate(uow, [line])
        demands.append(line.demand_id)
    elif kind == "release" and demands:
        inventory.release(uow, "line", demands[a % len(demands)])
    elif kind == "issue" and demands:
        demand_id = demands[a % len(demands)]
        reserved = inventory.reserved_quantity(uow, "line", [demand_id])[demand_id]
        if reserved > 0:
            inventory.issue_reserved(uow, demand_type="line", demand_id=demand_id, quantity=min(b, reserved),
                                     reference="SHP")
    elif kind in ("transfer", "request_transfer"):
        transfers.append(inventory.create_transfer(uow, product_id=p, from_warehouse_id=warehouses[a],
                                                   to_warehouse_id=warehouses[1 - a], quantity=b,
                                                   ship=kind == "transfer").id)
    elif kind in ("ship_transfer", "cancel_transfer", "receive_transfer") and transfers:
        act = {"ship_transfer": inventory.ship_transfer, "cancel_transfer": inventory.cancel_transfer,
               "receive_transfer": inventory.receive_transfer}[kind]
        act(uow, transfers[a % len(transfers)])
    elif kind == "scrap":
        inventory.scrap_stock(uow, warehouse_id=warehouses[a], product_id=p, quantity=b, reason="test")
    elif kind == "import":
        sku, code = catalog.get_product(uow, p).sku, uow.session.get(Warehouse, warehouses[a]).code
        report = import_stock(uow, io.StringIO(f"sku,warehouse,quantity,unit_cost\n{sku},{code},{b},{c or ''}\n"))
        if not report.ok:
            uow.rollback()
            return
        on_hand = uow.session.scalar(select(func.sum(StockBalance.on_hand)).where(
            StockBalance.product_id == p, StockBalance.warehouse_id == warehouses[a],
            StockBalance.location_kind == LocationKind.STOCK.value)) or Decimal(0)
        assert on_hand == b, (op, report)
    elif kind == "export_import":
        exported = io.StringIO()
        export_stock(uow, exported)
        report = import_stock(uow, io.StringIO(exported.getvalue()))
        assert (report.error_count, report.created, report.updated) == (0, 0, 0), (exported.getvalue(), report)


@pytest.mark.parametrize("method,negative", [("moving_average", False), ("fifo", False),
                                             ("moving_average", True), ("fifo", True)])
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=ops)
# A requested transfer shipped from two reservations (one filled by a receipt, one taken at shipping), then
# more scrapped than is left: the transfer's moves left the valuation as one take, so the warehouse kept an
# average its history, replayed move by move, does not give (a 0.03 correction on the scrap).
@example(sequence=[("request_transfer", 1, Decimal(5), None), ("receive", 1, Decimal(4), "1.00"),
                   ("adjust", 1, Decimal(1), "0.07"), ("ship_transfer", 28, None, None),
                   ("scrap", 1, Decimal(8), None)])
# Where negative stock is allowed, a place below zero was exported as '-1, which the import refuses: the
# stock exported did not load back.
@example(sequence=[("scrap", 0, Decimal(1), None), ("export_import", None, None, None)])
def test_balances_always_equal_the_ledger(db_url, method, negative, sequence):
    # given a fresh tenant (valuing stock by `method`, allowing negative stock or not) with one product in
    # two warehouses
    tenant = make_tenant(db_url, allow_negative_stock=negative)
    with tenant.uow() as uow:
        update_tenant_settings(uow, {"valuation_method": method})
        uow.commit()
    p = product(tenant)
    warehouses = [warehouse(tenant), warehouse(tenant)]
    demands: list[uuid.UUID] = []
    transfers: list[uuid.UUID] = []
    for op in sequence:
        # when each operation runs in its own transaction (refusals roll back)
        with tenant.uow() as uow:
            try:
                _apply(uow, op, p, warehouses, demands, transfers)
                uow.commit()
            except DomainError:
                pass
        # then the balances equal the ledger and available never goes negative (unless the tenant allows it)
        with tenant.uow(readonly=True) as uow:
            assert inventory.check_balances(uow) == [], op
            for bal in uow.session.scalars(select(StockBalance)):
                assert negative or bal.on_hand - bal.reserved >= 0, op
                assert bal.reserved >= 0
    # and the valuation report equals the inventory account of the ledger
    with tenant.uow(readonly=True) as uow:
        value = inventory.valuation(uow).total_value
        ledger = sum((a.balance for a in account_balances(uow) if a.role == "inventory"), Decimal(0))
        # FIFO: while a warehouse holds stock its layers add up to its valuation; without stock it has none
        for cost in uow.session.scalars(select(ItemCost)):
            held_qty, held_value, layers = uow.session.execute(
                select(func.sum(CostLayer.quantity), func.sum(CostLayer.value), func.count())
                .where(CostLayer.product_id == cost.product_id, CostLayer.warehouse_id == cost.warehouse_id)).one()
            if method == "fifo" and cost.quantity > 0:
                assert (held_qty, held_value) == (cost.quantity, cost.value)
            else:
                assert layers == 0
    assert value == ledger
    # and what was done step by step is exact: replaying each warehouse's whole history in date order
    # (what a back-dated move does) finds nothing to correct
    with tenant.uow() as uow:
        trigger = uow.session.scalars(select(StockMove).limit(1)).first()
        if trigger is not None:
            for wh in warehouses:
                deltas = valuation.revalue(uow, catalog.get_product(uow, p), wh, trigger)
                assert not any(deltas.values()), (wh, deltas)
        uow.rollback()
