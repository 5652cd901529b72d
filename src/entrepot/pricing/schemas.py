"""Pricing API shapes."""

from __future__ import annotations

import datetime as dt
import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from entrepot.catalog.schemas import DecimalIn, Money, Quantity, in_its_currency


class EntryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_id: uuid.UUID | None = None
    category_id: uuid.UUID | None = None
    method: str = Field(default="fixed", description="fixed (a unit price), discount (% off list), markup (% on cost)")
    value: DecimalIn
    min_quantity: DecimalIn = "0"
    max_quantity: DecimalIn | None = Field(default=None, description="exclusive; open when null")


class EntryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    product_id: uuid.UUID | None
    category_id: uuid.UUID | None
    method: str
    value: Quantity
    min_quantity: Quantity
    max_quantity: Quantity | None


class EntriesAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")
    entries: list[EntryCreate]
    replace: bool = Field(default=False, description="replace every entry of the list")


class PriceListCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=64)
    name: str = Field(max_length=200)
    currency: str
    kind: str = Field(default="standard", description="standard or promotion")
    priority: int = 0
    scope: str = Field(default="all", description="all, customer_group, customer or channel")
    customer_group: str | None = None
    customer_id: uuid.UUID | None = None
    channel: str | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    prices_include_tax: bool | None = Field(
        default=None, description="whether this list's prices include tax; null: as the tenant's setting "
        "prices_include_tax. A list on the other basis is converted at each product's tax rate where the order ships")
    entries: list[EntryCreate] = []


class PriceListUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    priority: int | None = None
    scope: str | None = None
    customer_group: str | None = None
    customer_id: uuid.UUID | None = None
    channel: str | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    prices_include_tax: bool | None = Field(
        default=None, description="whether this list's prices include tax; null: as the tenant's setting "
        "prices_include_tax. A list on the other basis is converted at each product's tax rate where the order ships")


class PriceListRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    code: str
    name: str
    kind: str
    currency: str
    priority: int
    scope: str
    customer_group: str | None
    customer_id: uuid.UUID | None
    channel: str | None
    valid_from: date | None
    valid_to: date | None
    prices_include_tax: bool | None
    archived_at: datetime | None
    version: int


class ContractPriceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: uuid.UUID
    product_id: uuid.UUID
    unit_price: DecimalIn
    currency: str | None = Field(default=None, description="defaults to the customer's currency")
    valid_from: date | None = None
    valid_to: date | None = None
    reference: str = ""


class ContractPriceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    customer_id: uuid.UUID
    product_id: uuid.UUID
    unit_price: Money
    currency: str
    valid_from: date | None
    valid_to: date | None
    reference: str
    archived_at: datetime | None

    _money = in_its_currency("unit_price")


class QuoteRead(BaseModel):
    product_id: uuid.UUID
    quantity: Quantity
    unit_price: Money
    currency: str
    line_total: Money
    rule: str
    explanation: list[dict[str, Any]]
    sellable: bool = Field(default=True, description="Whether an order for this customer (and channel) would take "
                                                     "the product")
    not_sellable_reason: str | None = Field(default=None, description="Why not, when it would not")

    _money = in_its_currency("unit_price", "line_total")


class QuoteLine(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product_id: uuid.UUID
    quantity: DecimalIn


class QuoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    customer_id: uuid.UUID
    lines: list[QuoteLine] = Field(min_length=1, max_length=5000)
    date: dt.date | None = None
    channel: str | None = None
    ship_to_country: str | None = Field(default=None, description="where the lines would ship (ISO 3166), "
                                        "for the tax rates of a price list on the other tax basis; default: "
                                        "the customer's default ship-to")
    ship_to_region: str | None = None


class QuoteBatchRead(BaseModel):
    customer_id: uuid.UUID
    date: dt.date
    lines: list[QuoteRead]
