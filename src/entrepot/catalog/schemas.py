"""Catalog API shapes. Money and quantities travel as decimal strings."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, field_serializer

from entrepot.kernel.money import format_price, format_quantity


def _money_str(value: Decimal) -> str:
    """At least two places, more only when the value has them ("12.50", "0.1234")."""
    text = format(value.normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


Money = Annotated[Decimal, PlainSerializer(_money_str, return_type=str, when_used="json")]


def in_its_currency(*fields: str) -> Any:
    """A read model's serializer of its `Money` fields in the places of its own `currency`
    (`format_price`): a yen price reads "1500", not "1500.00", and a dinar limit "1000.100", as the
    events and the billing documents say them; more places only when the value has them.
    Use: `_money = in_its_currency("list_price")` in the class body."""

    def serialize(self: Any, value: Decimal | None) -> str | None:
        if value is None:
            return None
        return format_price(value, self.currency) if self.currency else _money_str(value)

    return field_serializer(*fields, when_used="json")(serialize)
Quantity = Annotated[Decimal, PlainSerializer(format_quantity, return_type=str, when_used="json")]


def amount_input(value: object) -> object:
    """Let through a string or a number as it came (the services parse it exactly); anything else —
    a boolean, which a lax int would take as 1 or 0, a list, an object — is refused on the field
    itself (a union's own errors would name `quantity.str`, `quantity.int`, … instead)."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not an amount")
    if not isinstance(value, str | int | float | Decimal):
        raise ValueError(f"{type(value).__name__} is not an amount")
    return value


# Inputs: strings or numbers; the services check ranges and scale with named rules.
DecimalIn = Annotated[Decimal | int | str, BeforeValidator(amount_input)]


class ProductCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: str = Field(max_length=64)
    name: str = Field(max_length=200)
    list_price: DecimalIn
    currency: str
    description: str = ""
    status: str | None = None
    category_id: uuid.UUID | None = None
    unit: str = "each"
    sales_unit: str | None = None
    purchase_unit: str | None = None
    gtin: str | None = None
    weight_kg: DecimalIn | None = None
    length_cm: DecimalIn | None = None
    width_cm: DecimalIn | None = None
    height_cm: DecimalIn | None = None
    tax_class: str = "standard"
    track_lots: bool = False
    track_serials: bool = False
    standard_cost: DecimalIn = Decimal("0")


class ProductUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sku: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    list_price: DecimalIn | None = None
    currency: str | None = None
    description: str | None = None
    status: str | None = None
    category_id: uuid.UUID | None = None
    unit: str | None = None
    sales_unit: str | None = None
    purchase_unit: str | None = None
    gtin: str | None = None
    weight_kg: DecimalIn | None = None
    length_cm: DecimalIn | None = None
    width_cm: DecimalIn | None = None
    height_cm: DecimalIn | None = None
    tax_class: str | None = None
    track_lots: bool | None = None
    track_serials: bool | None = None
    standard_cost: DecimalIn | None = None


class ProductRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    sku: str
    name: str
    description: str
    status: str
    category_id: uuid.UUID | None
    unit: str
    sales_unit: str | None
    purchase_unit: str | None
    gtin: str | None
    weight_kg: Quantity | None
    length_cm: Quantity | None
    width_cm: Quantity | None
    height_cm: Quantity | None
    tax_class: str
    track_lots: bool
    track_serials: bool
    list_price: Money
    currency: str
    standard_cost: Money
    archived_at: datetime | None
    created_at: datetime
    updated_at: datetime
    version: int

    _money = in_its_currency("list_price", "standard_cost")


class ProductStatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str = Field(description="discontinue, block or reactivate")


class CategoryCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=64)
    name: str = Field(max_length=200)
    parent_id: uuid.UUID | None = None


class CategoryUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str | None = Field(default=None, max_length=64)
    name: str | None = Field(default=None, max_length=200)
    parent_id: uuid.UUID | None = None


class CategoryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    code: str
    name: str
    parent_id: uuid.UUID | None
    archived_at: datetime | None
    version: int


class UnitCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=20)
    name: str = Field(max_length=100)


class UnitRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    code: str
    name: str


class UnitConversionSet(BaseModel):
    model_config = ConfigDict(extra="forbid")
    unit: str
    factor: DecimalIn = Field(description="base units in one of this unit (a box of 12: 12)")


class UnitConversionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    unit: str
    factor: Quantity


class ChannelListingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channel: str = Field(max_length=40)
    product_id: uuid.UUID
    customer_group: str | None = Field(default=None, max_length=64)


class ChannelListingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    channel: str
    product_id: uuid.UUID
    customer_group: str | None


def changes_of(body: BaseModel) -> dict[str, Any]:
    """Only the fields the client sent (so null can clear a field and absence leaves it)."""
    return body.model_dump(exclude_unset=True)


class ImportRowProblem(BaseModel):
    row: int
    column: str
    message: str
    rule: str


class ImportResult(BaseModel):
    """What an import did (or, with dry_run, would do)."""

    entity: str
    dry_run: bool
    rows: int
    created: int
    updated: int
    unchanged: int
    error_count: int
    errors: list[ImportRowProblem] = []
