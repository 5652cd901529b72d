"""Sales' view of the domains below it (catalog, parties, pricing, inventory).

Imports are made on first use so the sales package loads (and the API mounts)
even while a lower domain is being replaced; each function names exactly what
sales needs from its neighbour.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Any

from entrepot.db.uow import UnitOfWork
from entrepot.kernel import clock

DEMAND_TYPE = "sales_order_line"


def get_customer(uow: UnitOfWork, customer_id: uuid.UUID) -> Any:
    """The customer's facts (status, currency, credit limit, tax exemption, default ship-to),
    read once per unit of work."""
    from entrepot.parties.service import customer_facts

    return customer_facts(uow, customer_id)


def hold_customer_for_document(uow: UnitOfWork, customer_id: uuid.UUID) -> None:
    from entrepot.parties.service import hold_customer_for_document

    hold_customer_for_document(uow, customer_id)


def lock_customer(uow: UnitOfWork, customer_id: uuid.UUID) -> None:
    from entrepot.parties.service import lock_customer

    lock_customer(uow, customer_id)


def ensure_can_order(customer: Any) -> None:
    from entrepot.parties import service

    fn = getattr(service, "ensure_can_order", None)
    if fn:
        fn(customer)


def ensure_bookable(uow: UnitOfWork, currency: str) -> None:
    """The books can take a document in `currency` today: it is the tenant's currency, or one with
    an exchange rate (else 422 `no_exchange_rate` on `currency`)."""
    from entrepot.ledger.services.rates import rate_on

    rate_on(uow, currency, clock.today())


def default_ship_to(uow: UnitOfWork, customer_id: uuid.UUID) -> Any:
    """The default ship-to address (name, line1, line2, city, region, postal_code, country), or None."""
    return get_customer(uow, customer_id).default_ship_to


def get_products(uow: UnitOfWork, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Any]:
    """The lines' products (sku, name, status, tax class, weight, price basis), one prepared read."""
    from entrepot.catalog.service import order_products

    return order_products(uow, ids)


def ensure_sellable(product: Any) -> None:
    from entrepot.catalog.service import ensure_sellable as check

    check(product)


def sellable_in_channel(uow: UnitOfWork, ids: Sequence[uuid.UUID], channel: str, group: str | None) -> set[uuid.UUID]:
    from entrepot.catalog import service

    fn = getattr(service, "sellable_in_channel", None)
    return fn(uow, ids, channel=channel, customer_group=group) if fn else set(ids)


def resolve_prices(uow: UnitOfWork, *, customer_id: uuid.UUID, lines: Sequence[tuple[uuid.UUID, Decimal]],
                   on: date | None, channel: str | None, products: Any = None,
                   ship_to: tuple[str | None, str | None] | None = None) -> list[Any]:
    from entrepot.pricing.service import resolve_prices as resolve

    return resolve(uow, customer_id=customer_id, lines=lines, on=on, channel=channel, products=products,
                   ship_to=ship_to)


def check_margin(uow: UnitOfWork, *, product: Any, unit_price: Decimal, field: str = "unit_price",
                 ship_to: tuple[str | None, str | None] | None = None, on: date | None = None,
                 currency: str | None = None, exempt: bool = False) -> None:
    from entrepot.pricing.service import check_margin as check

    check(uow, product=product, unit_price=unit_price, field=field, ship_to=ship_to, on=on, currency=currency,
          exempt=exempt)


def inventory() -> Any:
    from entrepot.inventory import service

    return service


def backordered_quantity(uow: UnitOfWork, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Decimal]:
    return inventory().backordered_quantity(uow, DEMAND_TYPE, ids)


def lead_time_days(uow: UnitOfWork, product_ids: Sequence[uuid.UUID], default: int) -> int:
    """Days until the slowest of these products can be replenished: its quickest supplier's
    lead time (the default when a product has no supplier item)."""
    from entrepot.parties.service import quickest_lead_times

    if not product_ids:
        return default
    quickest = quickest_lead_times(uow, product_ids, on=clock.today())
    return max(quickest.get(pid, default) for pid in product_ids)
