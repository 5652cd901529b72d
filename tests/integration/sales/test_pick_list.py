"""Pick lists: each shipment line says where to take its reserved stock (warehouse, location, lot,
serials), in the order the shipment will be issued, so what is picked is what ships."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

import pytest

from entrepot.catalog.service import create_product
from entrepot.inventory.service import create_location, create_warehouse, receive_stock, release
from entrepot.parties.service import create_customer
from entrepot.sales import service as sales


def _stock(uow, *, sku, track_lots=False, track_serials=False):
    wh = create_warehouse(uow, {"code": f"W{sku}", "name": "Main"})
    product = create_product(uow, {"sku": sku, "name": f"Part {sku}", "list_price": D("10"), "currency": "USD",
                                   "standard_cost": D("4"), "track_lots": track_lots,
                                   "track_serials": track_serials})
    return wh, product


def _customer(uow):
    return create_customer(uow, {"code": "PICK", "name": "Picker customer", "currency": "USD"})


def _confirmed_order(uow, customer, product, quantity):
    order = sales.create_sales_order(uow, customer_id=customer.id,
                                     lines=[sales.OrderLineInput(product.id, D(quantity))])
    sales.confirm_sales_order(uow, order.id)
    return order


def test_picks_follow_the_lots_the_shipment_will_be_issued_from(tenant):
    # given a lot-tracked product in two bins: the later-expiring lot received first
    with tenant.uow() as uow:
        wh, product = _stock(uow, sku="LOT", track_lots=True)
        bin_a = create_location(uow, wh.id, {"code": "A-01", "name": "Aisle A"})
        bin_b = create_location(uow, wh.id, {"code": "B-07", "name": "Aisle B"})
        receive_stock(uow, product_id=product.id, warehouse_id=wh.id, quantity=D(3), unit_cost=D(4), reference="r1",
                      lot_code="LATE", expiry=date(2099, 6, 1), location_id=bin_a.id)
        receive_stock(uow, product_id=product.id, warehouse_id=wh.id, quantity=D(2), unit_cost=D(4), reference="r2",
                      lot_code="SOON", expiry=date(2098, 1, 1), location_id=bin_b.id)
        order = _confirmed_order(uow, _customer(uow), product, 4)
        shipment = sales.create_shipment(uow, sales_order_id=order.id)
        uow.commit()

    # when the warehouse asks for the pick list
    with tenant.uow(readonly=True) as uow:
        picks = sales.pick_list(uow, shipment.id)

    # then the soonest-expiring lot comes first, each pick names its bin and lot, and they add up
    [line] = picks.lines
    assert [(p.location_code, p.lot_code, p.quantity) for p in line.picks] == [
        (f"{wh.code}/B-07", "SOON", D(2)), (f"{wh.code}/A-01", "LATE", D(2))]
    assert all(p.warehouse_code == wh.code and p.serials == [] for p in line.picks)
    assert line.short == 0 and line.order_line.sku == "LOT"

    # and shipping takes exactly those lots
    with tenant.uow() as uow:
        shipped = sales.ship_shipment(uow, shipment.id)
        uow.commit()
    issued = {lot["lot_code"]: D(lot["quantity"]) for lot in shipped.lines[0].lots}
    assert issued == {p.lot_code: p.quantity for p in line.picks}


def test_serial_tracked_lines_name_the_serials_that_will_ship(tenant):
    # given three serial numbers in stock
    with tenant.uow() as uow:
        wh, product = _stock(uow, sku="SER", track_serials=True)
        receive_stock(uow, product_id=product.id, warehouse_id=wh.id, quantity=D(3), unit_cost=D(4), reference="r1",
                      serials=["SN-1", "SN-2", "SN-3"])
        order = _confirmed_order(uow, _customer(uow), product, 2)
        shipment = sales.create_shipment(uow, sales_order_id=order.id)
        uow.commit()

    # when the pick list is read
    with tenant.uow(readonly=True) as uow:
        [line] = sales.pick_list(uow, shipment.id).lines

    # then it names two serials, and those are the ones that ship
    [pick] = line.picks
    assert pick.quantity == 2 and len(pick.serials) == 2
    with tenant.uow() as uow:
        shipped = sales.ship_shipment(uow, shipment.id)
        uow.commit()
    shipped_serials = [s for lot in shipped.lines[0].lots for s in lot["serials"]]
    assert sorted(shipped_serials) == sorted(pick.serials)


def test_a_later_shipment_of_the_same_line_picks_after_the_earlier_one(tenant):
    # given a 5-unit line over two lots, split into a 2-unit and a 3-unit shipment
    with tenant.uow() as uow:
        wh, product = _stock(uow, sku="SPLIT", track_lots=True)
        receive_stock(uow, product_id=product.id, warehouse_id=wh.id, quantity=D(3), unit_cost=D(4), reference="r1",
                      lot_code="L1", expiry=date(2098, 1, 1))
        receive_stock(uow, product_id=product.id, warehouse_id=wh.id, quantity=D(2), unit_cost=D(4), reference="r2",
                      lot_code="L2", expiry=date(2099, 1, 1))
        order = _confirmed_order(uow, _customer(uow), product, 5)
        line_id = order.lines[0].id
        first = sales.create_shipment(uow, sales_order_id=order.id,
                                      lines=[sales.ShipmentLineInput(line_id, D(2))])
        second = sales.create_shipment(uow, sales_order_id=order.id)
        uow.commit()

    # when both pick lists are read
    with tenant.uow(readonly=True) as uow:
        picks_1 = [(p.lot_code, p.quantity) for p in sales.pick_list(uow, first.id).lines[0].picks]
        picks_2 = [(p.lot_code, p.quantity) for p in sales.pick_list(uow, second.id).lines[0].picks]

    # then the second starts where the first stops: nothing is picked twice
    assert picks_1 == [("L1", D(2))]
    assert picks_2 == [("L1", D(1)), ("L2", D(2))]


def test_a_line_whose_reservation_was_released_is_short(tenant):
    # given a draft shipment whose line lost its reservation meanwhile
    with tenant.uow() as uow:
        wh, product = _stock(uow, sku="GONE")
        receive_stock(uow, product_id=product.id, warehouse_id=wh.id, quantity=D(5), unit_cost=D(4), reference="r1")
        order = _confirmed_order(uow, _customer(uow), product, 2)
        shipment = sales.create_shipment(uow, sales_order_id=order.id)
        release(uow, sales.DEMAND, order.lines[0].id)
        uow.commit()

    # when the pick list is read
    with tenant.uow(readonly=True) as uow:
        [line] = sales.pick_list(uow, shipment.id).lines

    # then there is nothing to pick and the whole quantity is reported short
    assert line.picks == [] and line.short == D(2)


def test_a_shipped_shipment_has_nothing_left_to_pick(tenant):
    # given a shipment that has shipped
    with tenant.uow() as uow:
        wh, product = _stock(uow, sku="DONE")
        receive_stock(uow, product_id=product.id, warehouse_id=wh.id, quantity=D(5), unit_cost=D(4), reference="r1")
        order = _confirmed_order(uow, _customer(uow), product, 2)
        shipment = sales.create_shipment(uow, sales_order_id=order.id)
        sales.ship_shipment(uow, shipment.id)
        uow.commit()

    # when its pick list is asked for, then the answer is a conflict naming the state
    with tenant.uow(readonly=True) as uow, pytest.raises(sales.NothingToPick, match="shipped"):
        sales.pick_list(uow, shipment.id)
