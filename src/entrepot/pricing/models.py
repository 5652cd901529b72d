"""Pricing tables: price lists and their entries (tiers), contract prices.

Promotions are price lists of kind `promotion`: they must carry both validity
dates and compete with the regular price on lowest-price-wins (see service.py).
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from entrepot.db.base import Base, HasId, TenantOwned, Timestamps, Versioned


class PriceListScope(StrEnum):
    ALL = "all"
    CUSTOMER_GROUP = "customer_group"
    CUSTOMER = "customer"
    CHANNEL = "channel"


class PriceListKind(StrEnum):
    STANDARD = "standard"
    PROMOTION = "promotion"


class PriceMethod(StrEnum):
    FIXED = "fixed"  # value is the unit price
    DISCOUNT = "discount"  # value is a percent off the product's list price
    MARKUP = "markup"  # value is a percent on the product's standard cost


class PriceList(TenantOwned, HasId, Timestamps, Versioned, Base):
    __tablename__ = "pricing_price_lists"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        Index("ix_pricing_price_lists_tenant_id_currency", "tenant_id", "currency"),
    )
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[PriceListKind] = mapped_column(String(20), default=PriceListKind.STANDARD)
    currency: Mapped[str] = mapped_column(String(3))
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]
    priority: Mapped[int] = mapped_column(Integer, default=0)
    scope: Mapped[PriceListScope] = mapped_column(String(20), default=PriceListScope.ALL)
    customer_group: Mapped[str | None] = mapped_column(String(64))
    customer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("parties_customers.id"))
    channel: Mapped[str | None] = mapped_column(String(40))
    # None: on the tenant's basis (setting prices_include_tax); else converted at the product's tax rate
    prices_include_tax: Mapped[bool | None]
    archived_at: Mapped[datetime | None]


class PriceListEntry(TenantOwned, HasId, Timestamps, Base):
    """A price for a product (or every product of a category) within a quantity range.

    Several entries for the same product (or category) in one list are its quantity
    tiers: `min_quantity <= quantity < max_quantity` (max open when null); they may
    not overlap."""

    __tablename__ = "pricing_price_list_entries"
    __table_args__ = (
        Index("ix_pricing_price_list_entries_tenant_id_price_list_id", "tenant_id", "price_list_id"),
        Index("ix_pricing_price_list_entries_tenant_id_product_id", "tenant_id", "product_id"),
        Index("ix_pricing_price_list_entries_tenant_id_category_id", "tenant_id", "category_id"),
    )
    price_list_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("pricing_price_lists.id"))
    product_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("catalog_products.id"))
    category_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("catalog_categories.id"))
    method: Mapped[PriceMethod] = mapped_column(String(20), default=PriceMethod.FIXED)
    value: Mapped[Decimal]
    min_quantity: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    max_quantity: Mapped[Decimal | None]


class ContractPrice(TenantOwned, HasId, Timestamps, Versioned, Base):
    """A negotiated unit price for one customer and product, within its validity."""

    __tablename__ = "pricing_contract_prices"
    __table_args__ = (
        Index("ix_pricing_contract_prices_tenant_id_customer_id_product_id", "tenant_id", "customer_id",
              "product_id"),
    )
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties_customers.id"))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id"))
    unit_price: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]
    reference: Mapped[str] = mapped_column(String(100), default="")
    archived_at: Mapped[datetime | None]
