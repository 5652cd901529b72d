"""Catalog tables: products, categories, units of measure, channel listings."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from entrepot.db.base import Base, HasId, TenantOwned, Timestamps, Versioned


class ProductStatus(StrEnum):
    ACTIVE = "active"
    DISCONTINUED = "discontinued"
    BLOCKED = "blocked"


class Category(TenantOwned, HasId, Timestamps, Versioned, Base):
    """A node of the category tree (`parent_id`); price lists can price a whole category."""

    __tablename__ = "catalog_categories"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("catalog_categories.id"))
    archived_at: Mapped[datetime | None]


class UnitOfMeasure(TenantOwned, HasId, Timestamps, Base):
    """A unit a product can be counted in (each, box, pallet, kg)."""

    __tablename__ = "catalog_units"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(100))


class Product(TenantOwned, HasId, Timestamps, Versioned, Base):
    __tablename__ = "catalog_products"
    __table_args__ = (
        UniqueConstraint("tenant_id", "sku"),
        Index("ix_catalog_products_tenant_id_name", "tenant_id", "name"),
        Index("ix_catalog_products_tenant_id_category_id", "tenant_id", "category_id"),
        Index("ix_catalog_products_tenant_id_gtin", "tenant_id", "gtin"),  # a scanned barcode finds its product
    )
    sku: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[ProductStatus] = mapped_column(String(20), default=ProductStatus.ACTIVE)
    category_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("catalog_categories.id"))
    # Base unit: stock and prices are kept per this unit; other units convert to it.
    unit: Mapped[str] = mapped_column(String(20), default="each")
    sales_unit: Mapped[str | None] = mapped_column(String(20))
    purchase_unit: Mapped[str | None] = mapped_column(String(20))
    gtin: Mapped[str | None] = mapped_column(String(14))
    weight_kg: Mapped[Decimal | None]
    length_cm: Mapped[Decimal | None]
    width_cm: Mapped[Decimal | None]
    height_cm: Mapped[Decimal | None]
    tax_class: Mapped[str] = mapped_column(String(40), default="standard")
    track_lots: Mapped[bool] = mapped_column(Boolean, default=False)
    track_serials: Mapped[bool] = mapped_column(Boolean, default=False)
    list_price: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    standard_cost: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    archived_at: Mapped[datetime | None]


class UnitConversion(TenantOwned, HasId, Timestamps, Base):
    """`factor` base units make one `unit` of this product (box of 12: unit=box, factor=12)."""

    __tablename__ = "catalog_unit_conversions"
    __table_args__ = (UniqueConstraint("tenant_id", "product_id", "unit"),)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id"))
    unit: Mapped[str] = mapped_column(String(20))
    factor: Mapped[Decimal]


class ChannelListing(TenantOwned, HasId, Timestamps, Base):
    """A product sellable in a channel (web, edi, dealer…), optionally only to one customer group.

    A channel with no listings at all sells the whole catalogue; once a channel has
    listings, only listed products are sellable there."""

    __tablename__ = "catalog_channel_listings"
    __table_args__ = (UniqueConstraint("tenant_id", "channel", "product_id", "customer_group"),)
    channel: Mapped[str] = mapped_column(String(40))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id"))
    customer_group: Mapped[str | None] = mapped_column(String(64))
