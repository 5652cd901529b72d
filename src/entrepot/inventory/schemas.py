"""API shapes of the inventory. Quantities and amounts are decimal strings in JSON."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from entrepot.catalog.schemas import Money, Quantity, amount_input, in_its_currency

# Inputs: strings or numbers; the service parses them exactly (and names the field on error).
DecIn = Annotated[str | int | float, Field(union_mode="left_to_right"), BeforeValidator(amount_input)]


def _id_input(value: object) -> object:
    """An id is a string (the service looks it up and names the field when it is no record of this
    tenant); anything else is refused on the field itself, not on the union's `product_id.uuid`, …"""
    if isinstance(value, uuid.UUID | str):
        return value
    raise ValueError(f"{type(value).__name__} is not an id")


IdIn = Annotated[uuid.UUID | str, BeforeValidator(_id_input)]


BIN = "A storage bin (default: the warehouse's main stock location)"


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WarehouseCreate(_In):
    code: str = Field(max_length=32)
    name: str = Field(max_length=200)
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    postal_code: str | None = None
    region: str | None = None
    country: str | None = None
    active: bool | None = None
    priority: int | None = None


class WarehouseUpdate(_In):
    name: str | None = None
    address_line1: str | None = None
    address_line2: str | None = None
    city: str | None = None
    postal_code: str | None = None
    region: str | None = None
    country: str | None = None
    active: bool | None = None
    priority: int | None = None


class WarehouseRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    code: str
    name: str
    address_line1: str
    address_line2: str
    city: str
    postal_code: str
    region: str
    country: str | None
    active: bool
    priority: int
    version: int
    created_at: datetime
    updated_at: datetime


class LocationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    code: str
    name: str
    kind: str
    warehouse_id: uuid.UUID | None
    active: bool
    count_locked: bool


class LocationCreate(_In):
    code: str
    name: str


class AdjustmentCreate(_In):
    warehouse_id: IdIn
    product_id: IdIn
    quantity: DecIn
    reason: str
    unit_cost: DecIn | None = None
    lot_code: str | None = None
    lot_id: IdIn | None = None
    expiry_date: date | None = None
    serials: list[str] | None = None
    reference: str | None = None
    on: date | None = Field(default=None, description="Effective date (back-dating within an open period)")
    location_id: IdIn | None = Field(default=None, description=BIN)


class ReceiptCreate(_In):
    warehouse_id: IdIn
    product_id: IdIn
    quantity: DecIn
    unit_cost: DecIn
    reference: str = ""
    lot_code: str | None = None
    expiry_date: date | None = None
    serials: list[str] | None = None
    on: date | None = None
    location_id: IdIn | None = Field(default=None, description=BIN)


class ScrapCreate(_In):
    warehouse_id: IdIn
    product_id: IdIn
    quantity: DecIn
    reason: str
    lot_code: str | None = None
    serials: list[str] | None = None
    location_id: IdIn | None = Field(default=None, description=BIN)


class StockMoveRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    product_id: uuid.UUID
    lot_id: uuid.UUID | None
    from_location_id: uuid.UUID
    to_location_id: uuid.UUID
    from_warehouse_id: uuid.UUID | None
    to_warehouse_id: uuid.UUID | None
    quantity: Quantity
    unit_cost: Money
    value: Money
    kind: str
    reason: str | None
    reference: str
    demand_type: str | None
    demand_id: uuid.UUID | None
    serials: list[Any] | None
    effective_date: date
    created_at: datetime
    actor: str


class WarehouseStockRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    warehouse_id: uuid.UUID
    warehouse_code: str
    product_id: uuid.UUID
    on_hand: Quantity
    reserved: Quantity
    available: Quantity
    in_transit: Quantity


class LocationStockRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    warehouse_id: uuid.UUID
    location_id: uuid.UUID
    location_code: str
    location_kind: str
    lot_id: uuid.UUID | None
    lot_code: str | None
    expiry_date: date | None
    on_hand: Quantity
    reserved: Quantity
    available: Quantity


class StockAtRead(BaseModel):
    product_id: uuid.UUID
    on: date
    items: list[WarehouseStockRead]


class ValuationLineRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    product_id: uuid.UUID
    warehouse_id: uuid.UUID
    quantity: Quantity
    unit_cost: Money
    value: Money


class ValuationRead(BaseModel):
    currency: str
    total_value: Money
    items: list[ValuationLineRead]

    _money = in_its_currency("total_value")


class LotRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    product_id: uuid.UUID
    code: str
    expiry_date: date | None
    created_at: datetime


class LotTraceRead(BaseModel):
    lot: LotRead
    received: list[StockMoveRead]
    shipped: list[StockMoveRead]
    on_hand: list[LocationStockRead]


class TransferCreate(_In):
    product_id: IdIn
    from_warehouse_id: IdIn
    to_warehouse_id: IdIn
    quantity: DecIn
    lot_code: str | None = None
    ship: bool = Field(default=True, description="Ship at once (default); false: only reserve the stock at the "
                       "source (the rest backordered) until POST /transfers/{id}/ship")
    location_id: IdIn | None = Field(default=None, description="Shipped at once: the source's bin it leaves "
                                     "(default: its main stock location)")


class TransferReceive(_In):
    """A transfer is received whole, as it left (lot by lot, serial by serial): the call takes no
    quantity. A body naming one is refused rather than read as a partial receipt; units lost on the way
    are written off afterwards with an adjustment at the destination."""


class TransferRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    number: str
    product_id: uuid.UUID
    lot_id: uuid.UUID | None
    from_warehouse_id: uuid.UUID
    to_warehouse_id: uuid.UUID
    quantity: Quantity
    status: str
    shipped_at: datetime | None
    received_at: datetime | None
    reserved: Quantity | None = Field(default=None, description="A requested transfer's stock reserved at the source")
    backordered: Quantity | None = Field(default=None, description="A requested transfer's quantity still awaited")
    version: int

    @classmethod
    def of(cls, transfer: Any, reservation: tuple[Any, Any] | None = None) -> TransferRead:
        read = cls.model_validate(transfer)
        if reservation is not None:
            read.reserved, read.backordered = reservation
        return read


class CountCreate(_In):
    warehouse_id: IdIn
    counter: str
    location_id: IdIn | None = Field(default=None, description=BIN)


class CountLineIn(_In):
    product_id: IdIn
    counted_quantity: DecIn
    lot_code: str | None = None
    # a serial-tracked product: the serial numbers found on the shelf (as many as counted); the book's
    # serials not among them are written off, those not on the book are taken in
    serials: list[str] | None = Field(default=None, max_length=10_000)


class CountPost(_In):
    lines: list[CountLineIn]


class CountLineRead(BaseModel):
    """What was on the books when the count started; once posted, what was counted and the variance
    (posted as an adjustment, `move_id`)."""
    product_id: uuid.UUID
    lot_id: uuid.UUID | None = None
    expected: Quantity
    counted: Quantity | None = None
    variance: Quantity | None = None
    move_id: uuid.UUID | None = None
    # a serial-tracked product: the serials the books had there that were not found, and those found
    # that the books did not have there (each side posted as its own adjustment)
    serials_missing: list[str] | None = None
    serials_found: list[str] | None = None


class CountRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    number: str
    warehouse_id: uuid.UUID
    location_id: uuid.UUID
    counter: str
    status: str
    lines: list[CountLineRead]
    posted_at: datetime | None
    version: int


class ReorderRuleIn(_In):
    product_id: IdIn
    warehouse_id: IdIn
    reorder_point: DecIn
    order_up_to: DecIn
    safety_stock: DecIn = 0


class ReorderRuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    product_id: uuid.UUID
    warehouse_id: uuid.UUID
    reorder_point: Quantity
    order_up_to: Quantity
    safety_stock: Quantity
    version: int


class SuggestionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    product_id: uuid.UUID
    warehouse_id: uuid.UUID
    supplier_id: uuid.UUID | None
    supplier_item_id: uuid.UUID | None
    quantity: Quantity
    projected: Quantity
    reorder_point: Quantity
    order_up_to: Quantity
    lead_time_days: int
    unit_cost: Money | None
    currency: str | None
    daily_usage: Quantity = Field(description="Average quantity shipped to customers per day (usage window)")
    lead_time_demand: Quantity = Field(description="daily_usage × lead_time_days, covered by the quantity")
    expected_on: date | None = Field(description="When an order placed today arrives (today + lead time)")
    backordered: Quantity = Field(description="Open backorders this warehouse fills first from what arrives, "
                                              "taken off `projected`")
    in_transit: Quantity = Field(description="On its way from other warehouses (transfers shipped, "
                                 "or requested and not yet shipped), counted in `projected`")

    _money = in_its_currency("unit_cost")


class SupplierSuggestions(BaseModel):
    supplier_id: uuid.UUID | None
    lines: list[SuggestionRead]


class DiscrepancyRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    kind: str
    product_id: uuid.UUID
    location_id: uuid.UUID | None
    lot_id: uuid.UUID | None
    expected: Quantity
    actual: Quantity
