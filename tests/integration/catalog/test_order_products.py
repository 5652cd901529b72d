"""order_products: an order's products in one prepared read, inside the tenant."""

from __future__ import annotations

from decimal import Decimal

import pytest

from entrepot.catalog.service import archive_product, create_product, ensure_sellable, get_products, order_products
from entrepot.kernel.errors import NotFound


def _product(uow, sku, **extra):
    return create_product(uow, {"sku": sku, "name": f"Item {sku}", "list_price": "12.5", "currency": "USD",
                                "standard_cost": "7", **extra})


@pytest.mark.parametrize("n", [1, 3, 4, 5, 300])
def test_reads_every_product_whatever_the_number(tenant, n):
    # given
    with tenant.uow() as uow:
        ids = [_product(uow, f"P{i}", tax_class="reduced", weight_kg="1.25").id for i in range(n)]
        uow.commit()
    # when
    with tenant.uow(readonly=True) as uow:
        found = order_products(uow, [*ids, ids[0]])
        orm = get_products(uow, ids)
    # then
    assert set(found) == set(ids)
    for pid in ids:
        p, o = found[pid], orm[pid]
        assert (p.sku, p.name, p.status, p.archived_at, p.category_id) == (o.sku, o.name, o.status, None, None)
        assert (p.list_price, p.currency, p.standard_cost) == (Decimal("12.5"), "USD", Decimal(7))
        assert (p.tax_class, p.weight_kg) == ("reduced", Decimal("1.25"))


def test_archived_product_is_refused_on_order(tenant):
    with tenant.uow() as uow:
        p = _product(uow, "OLD")
        archive_product(uow, p.id)
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        product = order_products(uow, [p.id])[p.id]
        with pytest.raises(Exception, match="archived"):
            ensure_sellable(product)


def test_another_tenants_product_is_not_found(tenant, other_tenant):
    # given
    with other_tenant.uow() as uow:
        theirs = _product(uow, "THEIRS")
        uow.commit()
    with tenant.uow() as uow:
        ours = _product(uow, "OURS")
        uow.commit()
    # when / then
    with tenant.uow(readonly=True) as uow:
        with pytest.raises(NotFound, match=str(theirs.id)):
            order_products(uow, [ours.id, theirs.id])
        assert set(order_products(uow, [ours.id])) == {ours.id}
