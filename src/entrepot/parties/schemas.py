"""Parties API shapes."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from entrepot.catalog.schemas import DecimalIn, Money, Quantity, in_its_currency


class Contact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(max_length=200)
    email: str | None = None
    phone: str | None = None
    role: str | None = None


class AddressCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(description="bill_to or ship_to")
    is_default: bool = False
    name: str = ""
    line1: str
    line2: str = ""
    city: str
    region: str = ""
    postal_code: str = ""
    country: str = Field(description="ISO 3166 alpha-2")


class AddressRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    kind: str
    is_default: bool
    name: str
    line1: str
    line2: str
    city: str
    region: str
    postal_code: str
    country: str


class CustomerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=64)
    name: str = Field(max_length=200)
    currency: str
    credit_limit: DecimalIn | None = None
    legal_name: str = ""
    status: str | None = None
    customer_group: str | None = None
    tax_id: str | None = None
    tax_country: str | None = None
    tax_exempt: bool = False
    exemption_certificate: str | None = None
    payment_terms_days: int = 30
    early_discount_percent: DecimalIn = "0"
    early_discount_days: int = 0
    email: str | None = None
    phone: str | None = None
    contacts: list[Contact] = []
    addresses: list[AddressCreate] = []


class CustomerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    currency: str | None = None
    credit_limit: DecimalIn | None = None
    legal_name: str | None = None
    status: str | None = None
    customer_group: str | None = None
    tax_id: str | None = None
    tax_country: str | None = None
    tax_exempt: bool | None = None
    exemption_certificate: str | None = None
    payment_terms_days: int | None = None
    early_discount_percent: DecimalIn | None = None
    early_discount_days: int | None = None
    email: str | None = None
    phone: str | None = None
    contacts: list[Contact] | None = None


class CustomerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    code: str
    name: str
    legal_name: str
    currency: str
    credit_limit: Money | None
    status: str
    customer_group: str | None
    tax_id: str | None
    tax_country: str | None
    tax_exempt: bool
    exemption_certificate: str | None
    payment_terms_days: int
    early_discount_percent: Quantity
    early_discount_days: int
    email: str | None
    phone: str | None
    contacts: list[dict[str, Any]]
    archived_at: datetime | None

    _money = in_its_currency("credit_limit")
    created_at: datetime
    updated_at: datetime
    version: int


class StatusAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str


class SupplierCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=64)
    name: str = Field(max_length=200)
    currency: str
    legal_name: str = ""
    status: str | None = None
    tax_id: str | None = None
    tax_country: str | None = None
    payment_terms_days: int = 30
    email: str | None = None
    phone: str | None = None
    contacts: list[Contact] = []
    addresses: list[AddressCreate] = []


class SupplierUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    currency: str | None = None
    legal_name: str | None = None
    status: str | None = None
    tax_id: str | None = None
    tax_country: str | None = None
    payment_terms_days: int | None = None
    email: str | None = None
    phone: str | None = None
    contacts: list[Contact] | None = None


class SupplierRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    code: str
    name: str
    legal_name: str
    currency: str
    status: str
    tax_id: str | None
    tax_country: str | None
    payment_terms_days: int
    email: str | None
    phone: str | None
    contacts: list[dict[str, Any]]
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int


class SupplierItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    supplier_id: uuid.UUID
    product_id: uuid.UUID
    cost: DecimalIn
    currency: str
    supplier_sku: str = ""
    min_order_qty: DecimalIn = "1"
    pack_size: DecimalIn = "1"
    lead_time_days: int = 0
    valid_from: date | None = None
    valid_to: date | None = None


class SupplierItemUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    supplier_sku: str | None = None
    cost: DecimalIn | None = None
    currency: str | None = None
    min_order_qty: DecimalIn | None = None
    pack_size: DecimalIn | None = None
    lead_time_days: int | None = None
    valid_from: date | None = None
    valid_to: date | None = None


class SupplierItemRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    supplier_id: uuid.UUID
    product_id: uuid.UUID
    supplier_sku: str
    cost: Money
    currency: str
    min_order_qty: Quantity
    pack_size: Quantity
    lead_time_days: int
    valid_from: date | None
    valid_to: date | None
    archived_at: datetime | None
    version: int

    _money = in_its_currency("cost")
