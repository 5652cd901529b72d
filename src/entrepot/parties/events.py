"""Parties events."""

from __future__ import annotations

from typing import Any

from entrepot.kernel.events import EventData, event_type


@event_type("customer.created.v1")
class CustomerCreated(EventData):
    """A customer account was opened."""

    customer_id: str
    code: str
    name: str
    currency: str
    credit_limit: str | None = None
    customer_group: str | None = None


@event_type("customer.updated.v1")
class CustomerUpdated(EventData):
    """A customer changed; `changes` holds the new values of the fields that moved."""

    customer_id: str
    code: str
    changes: dict[str, Any]


@event_type("customer.archived.v1")
class CustomerArchived(EventData):
    """A customer was archived (kept for the documents that reference it)."""

    customer_id: str
    code: str


@event_type("supplier.created.v1")
class SupplierCreated(EventData):
    """A supplier was added."""

    supplier_id: str
    code: str
    name: str
    currency: str


@event_type("supplier.updated.v1")
class SupplierUpdated(EventData):
    """A supplier changed."""

    supplier_id: str
    code: str
    changes: dict[str, Any]


@event_type("supplier.archived.v1")
class SupplierArchived(EventData):
    """A supplier was archived."""

    supplier_id: str
    code: str


@event_type("supplier_item.created.v1")
class SupplierItemCreated(EventData):
    """A supplier now offers a product (their SKU, cost, lead time)."""

    supplier_item_id: str
    supplier_id: str
    product_id: str
    cost: str
    currency: str
    lead_time_days: int


@event_type("supplier_item.updated.v1")
class SupplierItemUpdated(EventData):
    """A supplier item changed (cost, lead time, validity…)."""

    supplier_item_id: str
    supplier_id: str
    product_id: str
    changes: dict[str, Any]


@event_type("supplier_item.archived.v1")
class SupplierItemArchived(EventData):
    """A supplier item was withdrawn."""

    supplier_item_id: str
    supplier_id: str
    product_id: str
