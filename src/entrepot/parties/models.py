"""Parties: customers (accounts, addresses, terms, credit) and suppliers (items, costs, lead times)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from entrepot.db.base import Base, HasId, TenantOwned, Timestamps, Versioned


class CustomerStatus(StrEnum):
    ACTIVE = "active"
    ON_HOLD = "on_hold"
    BLOCKED = "blocked"


class SupplierStatus(StrEnum):
    ACTIVE = "active"
    BLOCKED = "blocked"


class AddressKind(StrEnum):
    BILL_TO = "bill_to"
    SHIP_TO = "ship_to"


class Customer(TenantOwned, HasId, Timestamps, Versioned, Base):
    __tablename__ = "parties_customers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        Index("ix_parties_customers_tenant_id_name", "tenant_id", "name"),
    )
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    legal_name: Mapped[str] = mapped_column(String(200), default="")
    currency: Mapped[str] = mapped_column(String(3))
    credit_limit: Mapped[Decimal | None]
    status: Mapped[CustomerStatus] = mapped_column(String(20), default=CustomerStatus.ACTIVE)
    customer_group: Mapped[str | None] = mapped_column(String(64))
    tax_id: Mapped[str | None] = mapped_column(String(40))
    tax_country: Mapped[str | None] = mapped_column(String(2))
    tax_exempt: Mapped[bool] = mapped_column(Boolean, default=False)
    exemption_certificate: Mapped[str | None] = mapped_column(String(100))
    # Payment terms: net N days; N% early-payment discount within M days.
    payment_terms_days: Mapped[int] = mapped_column(Integer, default=30)
    early_discount_percent: Mapped[Decimal] = mapped_column(default=Decimal("0"))
    early_discount_days: Mapped[int] = mapped_column(Integer, default=0)
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40))
    # [{name, email, phone, role}] — people to talk to; not a login (that is identity.User).
    contacts: Mapped[list[Any]] = mapped_column(default=list)
    archived_at: Mapped[datetime | None]


class _Address:
    kind: Mapped[AddressKind] = mapped_column(String(10))
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    name: Mapped[str] = mapped_column(String(200), default="")
    line1: Mapped[str] = mapped_column(String(200))
    line2: Mapped[str] = mapped_column(String(200), default="")
    city: Mapped[str] = mapped_column(String(100))
    region: Mapped[str] = mapped_column(String(100), default="")
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    country: Mapped[str] = mapped_column(String(2))


class CustomerAddress(_Address, TenantOwned, HasId, Timestamps, Base):
    __tablename__ = "parties_customer_addresses"
    __table_args__ = (Index("ix_parties_customer_addresses_tenant_id_customer_id", "tenant_id", "customer_id"),)
    customer_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties_customers.id"))


class Supplier(TenantOwned, HasId, Timestamps, Versioned, Base):
    __tablename__ = "parties_suppliers"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        Index("ix_parties_suppliers_tenant_id_name", "tenant_id", "name"),
    )
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    legal_name: Mapped[str] = mapped_column(String(200), default="")
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[SupplierStatus] = mapped_column(String(20), default=SupplierStatus.ACTIVE)
    tax_id: Mapped[str | None] = mapped_column(String(40))
    tax_country: Mapped[str | None] = mapped_column(String(2))
    payment_terms_days: Mapped[int] = mapped_column(Integer, default=30)
    email: Mapped[str | None] = mapped_column(String(320))
    phone: Mapped[str | None] = mapped_column(String(40))
    contacts: Mapped[list[Any]] = mapped_column(default=list)
    archived_at: Mapped[datetime | None]


class SupplierAddress(_Address, TenantOwned, HasId, Timestamps, Base):
    __tablename__ = "parties_supplier_addresses"
    __table_args__ = (Index("ix_parties_supplier_addresses_tenant_id_supplier_id", "tenant_id", "supplier_id"),)
    supplier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties_suppliers.id"))


class SupplierItem(TenantOwned, HasId, Timestamps, Versioned, Base):
    """What a supplier sells us: their SKU, our cost, order constraints and lead time."""

    __tablename__ = "parties_supplier_items"
    __table_args__ = (
        UniqueConstraint("tenant_id", "supplier_id", "product_id", "valid_from"),
        Index("ix_parties_supplier_items_tenant_id_product_id", "tenant_id", "product_id"),
    )
    supplier_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("parties_suppliers.id"))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id"))
    supplier_sku: Mapped[str] = mapped_column(String(64), default="")
    cost: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    min_order_qty: Mapped[Decimal] = mapped_column(default=Decimal("1"))
    pack_size: Mapped[Decimal] = mapped_column(default=Decimal("1"))
    lead_time_days: Mapped[int] = mapped_column(Integer, default=0)
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]
    archived_at: Mapped[datetime | None]
