"""Pricing events."""

from __future__ import annotations

from typing import Any

from entrepot.kernel.events import EventData, event_type


@event_type("price_list.created.v1")
class PriceListCreated(EventData):
    """A price list (or promotion) was created."""

    price_list_id: str
    code: str
    kind: str
    currency: str
    scope: str
    priority: int
    valid_from: str | None = None
    valid_to: str | None = None
    entries: int = 0
    prices_include_tax: bool | None = None  # null: on the tenant's tax basis


@event_type("price_list.updated.v1")
class PriceListUpdated(EventData):
    """A price list changed: its header (`changes`) or its entries (`entries_added`, `entries_removed`)."""

    price_list_id: str
    code: str
    changes: dict[str, Any] = {}
    entries_added: int = 0
    entries_removed: int = 0


@event_type("price_list.archived.v1")
class PriceListArchived(EventData):
    """A price list no longer applies."""

    price_list_id: str
    code: str


@event_type("contract_price.created.v1")
class ContractPriceCreated(EventData):
    """A negotiated price for one customer and product."""

    contract_price_id: str
    customer_id: str
    product_id: str
    unit_price: str
    currency: str
    valid_from: str | None = None
    valid_to: str | None = None


@event_type("contract_price.archived.v1")
class ContractPriceArchived(EventData):
    """A contract price was withdrawn."""

    contract_price_id: str
    customer_id: str
    product_id: str
