"""Catalog services on both databases: lookups other domains use, events with the change."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from entrepot.catalog.models import Product
from entrepot.catalog.service import (
    convert_quantity,
    create_product,
    get_product,
    get_products,
    list_channel_product,
    sellable_in_channel,
    set_unit_conversion,
)
from entrepot.integration.models import OutboxEvent
from entrepot.kernel.errors import NotFound, ValidationFailed


def _product(uow, sku, **extra):
    return create_product(uow, {"sku": sku, "name": sku, "list_price": "5.5", "currency": "USD", **extra})


def test_get_products_is_one_query_and_names_the_missing_id(tenant):
    with tenant.uow() as uow:
        a, b = _product(uow, "A"), _product(uow, "B")
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        found = get_products(uow, [a.id, b.id, a.id])
        assert set(found) == {a.id, b.id} and found[a.id].list_price == Decimal("5.5")
        missing = uuid.uuid4()
        with pytest.raises(NotFound) as info:
            get_products(uow, [a.id, missing])
        assert str(missing) in info.value.detail
        with pytest.raises(NotFound):
            get_product(uow, missing)


def test_another_tenants_product_is_not_found(tenant, other_tenant):
    with other_tenant.uow() as uow:
        theirs = _product(uow, "T")
        uow.commit()
    with tenant.uow(readonly=True) as uow, pytest.raises(NotFound):
        get_product(uow, theirs.id)


def test_a_rolled_back_create_leaves_no_product_and_no_event(tenant):
    with tenant.uow() as uow:
        _product(uow, "GONE")
    with tenant.uow(readonly=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(Product)) == 0
        assert uow.session.scalar(select(func.count()).where(OutboxEvent.type == "product.created.v1")) == 0


def test_invalid_product_reports_every_field(tenant):
    with tenant.uow() as uow, pytest.raises(ValidationFailed) as info:
        create_product(uow, {"sku": "bad sku!", "name": "", "list_price": "1.23456", "currency": "usd",
                             "gtin": "123", "unit": "barrel"})
    rules = {e.field: e.rule for e in info.value.errors}
    assert rules == {"sku": "pattern", "name": "required", "list_price": "scale", "currency": "currency",
                     "gtin": "gtin", "unit": "unit"}


def test_unit_conversions_box_and_pallet(tenant):
    with tenant.uow() as uow:
        p = _product(uow, "BOX")
        set_unit_conversion(uow, p.id, unit="box", factor="12")
        set_unit_conversion(uow, p.id, unit="pallet", factor="480")
        assert convert_quantity(uow, p.id, Decimal(2), "pallet") == Decimal(960)
        assert convert_quantity(uow, p.id, Decimal(1), "pallet", "box") == Decimal(40)
        with pytest.raises(ValidationFailed):
            convert_quantity(uow, p.id, Decimal(1), "kg")


def test_channel_catalogue(tenant):
    with tenant.uow() as uow:
        a, b = _product(uow, "A"), _product(uow, "B")
        assert sellable_in_channel(uow, [a.id, b.id], channel="web") == {a.id, b.id}
        list_channel_product(uow, channel="web", product_id=a.id)
        list_channel_product(uow, channel="web", product_id=b.id, customer_group="dealers")
        assert sellable_in_channel(uow, [a.id, b.id], channel="web") == {a.id}
        assert sellable_in_channel(uow, [a.id, b.id], channel="web", customer_group="dealers") == {a.id, b.id}


def test_price_basis_reads_only_this_tenants_products(tenant, other_tenant):
    from entrepot.catalog.service import create_category, price_basis

    with other_tenant.uow() as uow:
        theirs = _product(uow, "T")
        uow.commit()
    with tenant.uow() as uow:
        cat = create_category(uow, {"code": "C", "name": "C"})
        mine = _product(uow, "M", category_id=cat.id, standard_cost="2.5")
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        basis = price_basis(uow, [mine.id])[mine.id]
        assert (basis.sku, basis.category_id, basis.list_price, basis.standard_cost, basis.archived) == (
            "M", cat.id, Decimal("5.5"), Decimal("2.5"), False)
        with pytest.raises(NotFound):
            price_basis(uow, [mine.id, theirs.id])
