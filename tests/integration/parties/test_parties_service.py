"""Parties services other domains call: customers, ship-to, supplier items."""

from __future__ import annotations

from datetime import date

import pytest

from entrepot.catalog.service import create_product
from entrepot.kernel.errors import NotFound
from entrepot.parties.service import (
    CustomerNotActive,
    add_customer_address,
    change_customer_status,
    create_customer,
    create_supplier,
    create_supplier_item,
    default_ship_to,
    ensure_can_order,
    get_customer,
    supplier_items_for,
)

ADDR = {"kind": "ship_to", "line1": "1 Quay", "city": "Antwerp", "country": "BE"}


def test_default_ship_to(tenant):
    with tenant.uow() as uow:
        c = create_customer(uow, {"code": "C", "name": "C", "currency": "EUR"})
        assert default_ship_to(uow, c.id) is None
        add_customer_address(uow, c.id, ADDR)
        second = add_customer_address(uow, c.id, {**ADDR, "line1": "2 Quay", "is_default": True})
        assert default_ship_to(uow, c.id).id == second.id
        assert get_customer(uow, c.id).payment_terms_days == 30


def test_customer_on_hold_cannot_order(tenant):
    with tenant.uow() as uow:
        c = create_customer(uow, {"code": "C", "name": "C", "currency": "EUR"})
        ensure_can_order(c)
        change_customer_status(uow, c.id, "hold")
        with pytest.raises(CustomerNotActive):
            ensure_can_order(c)


def test_supplier_items_for_many_products_in_date(tenant):
    with tenant.uow() as uow:
        s = create_supplier(uow, {"code": "S", "name": "S", "currency": "USD"})
        p1 = create_product(uow, {"sku": "P1", "name": "P1", "list_price": "5", "currency": "USD"})
        p2 = create_product(uow, {"sku": "P2", "name": "P2", "list_price": "5", "currency": "USD"})
        base = {"supplier_id": s.id, "currency": "USD", "lead_time_days": 3}
        create_supplier_item(uow, {**base, "product_id": p1.id, "cost": "2.50", "valid_from": date(2026, 1, 1)})
        create_supplier_item(uow, {**base, "product_id": p1.id, "cost": "2.00", "valid_to": date(2025, 12, 31)})
        create_supplier_item(uow, {**base, "product_id": p2.id, "cost": "3.00", "pack_size": "6"})
        items = supplier_items_for(uow, [p1.id, p2.id])
        assert len(items) == 3
        current = supplier_items_for(uow, [p1.id, p2.id], on=date(2026, 6, 1))
        assert sorted(str(i.cost) for i in current) == ["2.5000", "3.0000"]
        with pytest.raises(NotFound):
            get_customer(uow, s.id)
