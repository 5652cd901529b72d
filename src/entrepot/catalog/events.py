"""Catalog events."""

from __future__ import annotations

from typing import Any

from entrepot.kernel.events import EventData, event_type


@event_type("product.created.v1")
class ProductCreated(EventData):
    """A product was added to the catalogue."""

    product_id: str
    sku: str
    name: str
    status: str
    unit: str
    list_price: str
    currency: str


@event_type("product.updated.v1")
class ProductUpdated(EventData):
    """A product changed; `changes` holds the new values of the fields that moved."""

    product_id: str
    sku: str
    changes: dict[str, Any]


@event_type("product.archived.v1")
class ProductArchived(EventData):
    """A product was archived: no longer offered, kept for the documents that reference it."""

    product_id: str
    sku: str


@event_type("category.created.v1")
class CategoryCreated(EventData):
    """A product category was created."""

    category_id: str
    code: str
    name: str
    parent_id: str | None = None


@event_type("category.updated.v1")
class CategoryUpdated(EventData):
    """A product category changed."""

    category_id: str
    code: str
    changes: dict[str, Any]


@event_type("category.archived.v1")
class CategoryArchived(EventData):
    """A product category was archived."""

    category_id: str
    code: str
