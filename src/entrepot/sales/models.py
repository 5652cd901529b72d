"""Sales tables: orders, shipments, quotes, returns.

Customer, product and warehouse are other domains' records: referenced by id,
read through their services.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from entrepot.db.base import Base, HasId, TenantOwned, Timestamps, Versioned

ZERO = Decimal(0)


class SalesOrder(TenantOwned, HasId, Timestamps, Versioned, Base):
    __tablename__ = "sales_orders"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        Index("ix_sales_orders_tenant_id_customer_id_status", "tenant_id", "customer_id", "status"),
        Index("ix_sales_orders_tenant_id_status", "tenant_id", "status"),
    )
    number: Mapped[str] = mapped_column(String(30))
    customer_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(20))
    invoice_status: Mapped[str] = mapped_column(String(20))
    hold_reason: Mapped[str | None] = mapped_column(String(30))
    currency: Mapped[str] = mapped_column(String(3))
    order_date: Mapped[date]
    requested_date: Mapped[date | None]
    promised_date: Mapped[date | None]
    customer_po: Mapped[str | None] = mapped_column(String(60))
    channel: Mapped[str | None] = mapped_column(String(40))
    ship_to: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ship_to_country: Mapped[str | None] = mapped_column(String(2))
    ship_to_region: Mapped[str | None] = mapped_column(String(20))
    quote_id: Mapped[uuid.UUID | None]
    subtotal: Mapped[Decimal]
    tax_total: Mapped[Decimal]
    total: Mapped[Decimal]
    invoiced_total: Mapped[Decimal] = mapped_column(default=ZERO)
    # Shipping charge (net of tax), from the carrier service's rate table; billed on the first invoice.
    shipping_carrier: Mapped[str | None] = mapped_column(String(60))
    shipping_service: Mapped[str | None] = mapped_column(String(60))
    shipping_charge: Mapped[Decimal] = mapped_column(default=ZERO)
    shipping_tax: Mapped[Decimal] = mapped_column(default=ZERO)
    shipping_invoiced: Mapped[bool] = mapped_column(Boolean, default=False)
    notes: Mapped[str] = mapped_column(String(1000), default="")
    lines: Mapped[list[SalesOrderLine]] = relationship(
        back_populates="order", order_by="SalesOrderLine.line_no", cascade="all, delete-orphan"
    )


class SalesOrderLine(TenantOwned, HasId, Base):
    """On SQLite the table is its id's b-tree (WITHOUT ROWID): a line written costs one b-tree
    fewer (no separate rowid table behind the key). No index by product: nothing reads lines
    by product, and with lines of many products each order's insert touched as many of its pages."""

    __tablename__ = "sales_order_lines"
    __table_args__ = (
        Index("ix_sales_order_lines_tenant_id_order_id", "tenant_id", "order_id"),
        {"sqlite_with_rowid": False},
    )
    order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sales_orders.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[uuid.UUID]
    sku: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(300), default="")
    tax_class: Mapped[str] = mapped_column(String(40), default="standard")
    quantity: Mapped[Decimal]
    unit_price: Mapped[Decimal]
    price_source: Mapped[str] = mapped_column(String(300), default="")  # why this price
    line_total: Mapped[Decimal]  # net of tax
    tax_rate_percent: Mapped[Decimal] = mapped_column(default=ZERO)
    tax_amount: Mapped[Decimal] = mapped_column(default=ZERO)
    weight_kg: Mapped[Decimal | None]
    quantity_backordered: Mapped[Decimal] = mapped_column(default=ZERO)
    quantity_shipped: Mapped[Decimal] = mapped_column(default=ZERO)
    quantity_invoiced: Mapped[Decimal] = mapped_column(default=ZERO)
    quantity_returned: Mapped[Decimal] = mapped_column(default=ZERO)
    # Returned and credited before it was invoiced: never to be billed (see returns.credit_return).
    quantity_returned_unbilled: Mapped[Decimal] = mapped_column(default=ZERO)
    order: Mapped[SalesOrder] = relationship(back_populates="lines")


class Shipment(TenantOwned, HasId, Timestamps, Versioned, Base):
    __tablename__ = "shipments"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        Index("ix_shipments_tenant_id_sales_order_id", "tenant_id", "sales_order_id"),
        Index("ix_shipments_tenant_id_status", "tenant_id", "status"),
        # a carrier's delivery report (and a support call) names the tracking number only
        Index("ix_shipments_tenant_id_tracking_number", "tenant_id", "tracking_number"),
    )
    number: Mapped[str] = mapped_column(String(30))
    sales_order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sales_orders.id"))
    customer_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(20))
    carrier: Mapped[str | None] = mapped_column(String(60))
    service: Mapped[str | None] = mapped_column(String(60))
    tracking_number: Mapped[str | None] = mapped_column(String(100))
    packages: Mapped[list[Any]] = mapped_column(default=list)
    shipped_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    lines: Mapped[list[ShipmentLine]] = relationship(order_by="ShipmentLine.line_no", cascade="all, delete-orphan")


class ShipmentLine(TenantOwned, HasId, Base):
    """WITHOUT ROWID on SQLite, as SalesOrderLine."""

    __tablename__ = "shipment_lines"
    __table_args__ = (
        Index("ix_shipment_lines_tenant_id_shipment_id", "tenant_id", "shipment_id"),
        Index("ix_shipment_lines_tenant_id_sales_order_line_id", "tenant_id", "sales_order_line_id"),
        {"sqlite_with_rowid": False},
    )
    shipment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("shipments.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    sales_order_line_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sales_order_lines.id"))
    product_id: Mapped[uuid.UUID]
    quantity: Mapped[Decimal]
    warehouse_id: Mapped[uuid.UUID | None]
    cost: Mapped[Decimal | None]
    lots: Mapped[list[Any]] = mapped_column(default=list)  # [{lot_code, quantity, serials}] as issued


class Quote(TenantOwned, HasId, Timestamps, Versioned, Base):
    __tablename__ = "quotes"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        Index("ix_quotes_tenant_id_status_valid_until", "tenant_id", "status", "valid_until"),
    )
    number: Mapped[str] = mapped_column(String(30))
    customer_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    valid_until: Mapped[date]
    channel: Mapped[str | None] = mapped_column(String(40))
    customer_po: Mapped[str | None] = mapped_column(String(60))
    subtotal: Mapped[Decimal]
    tax_total: Mapped[Decimal]
    total: Mapped[Decimal]
    sales_order_id: Mapped[uuid.UUID | None]
    decline_reason: Mapped[str | None] = mapped_column(String(500))  # why the customer declined, if told
    lines: Mapped[list[QuoteLine]] = relationship(order_by="QuoteLine.line_no", cascade="all, delete-orphan")


class QuoteLine(TenantOwned, HasId, Base):
    __tablename__ = "quote_lines"
    __table_args__ = (Index("ix_quote_lines_tenant_id_quote_id", "tenant_id", "quote_id"),)
    quote_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("quotes.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[uuid.UUID]
    sku: Mapped[str] = mapped_column(String(64))
    description: Mapped[str] = mapped_column(String(300), default="")
    quantity: Mapped[Decimal]
    unit_price: Mapped[Decimal]
    price_source: Mapped[str] = mapped_column(String(300), default="")
    line_total: Mapped[Decimal]
    tax_amount: Mapped[Decimal] = mapped_column(default=ZERO)


class ReturnAuthorization(TenantOwned, HasId, Timestamps, Versioned, Base):
    __tablename__ = "return_authorizations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        Index("ix_return_authorizations_tenant_id_sales_order_id", "tenant_id", "sales_order_id"),
    )
    number: Mapped[str] = mapped_column(String(30))
    sales_order_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sales_orders.id"))
    customer_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(300), default="")
    restocking_fee_percent: Mapped[Decimal] = mapped_column(default=ZERO)
    credit_note_id: Mapped[uuid.UUID | None]
    lines: Mapped[list[ReturnLine]] = relationship(order_by="ReturnLine.line_no", cascade="all, delete-orphan")


class ReturnLine(TenantOwned, HasId, Base):
    __tablename__ = "return_lines"
    __table_args__ = (Index("ix_return_lines_tenant_id_return_id", "tenant_id", "return_id"),)
    return_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("return_authorizations.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    sales_order_line_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("sales_order_lines.id"))
    product_id: Mapped[uuid.UUID]
    quantity: Mapped[Decimal]
    quantity_received: Mapped[Decimal] = mapped_column(default=ZERO)
    disposition: Mapped[str] = mapped_column(String(20), default="restock")  # restock | scrap
    warehouse_id: Mapped[uuid.UUID | None]
    unit_cost: Mapped[Decimal] = mapped_column(default=ZERO)


class ShippingRate(TenantOwned, HasId, Timestamps, Base):
    """One band of a carrier service's rate table: up to `max_weight_kg` into `zone` costs `charge`;
    orders whose goods total `free_over` or more ship free. `zone` is a country code or "*"."""

    __tablename__ = "shipping_rates"
    __table_args__ = (Index("ix_shipping_rates_tenant_id_carrier_service", "tenant_id", "carrier", "service"),)
    carrier: Mapped[str] = mapped_column(String(60))
    service: Mapped[str] = mapped_column(String(60))
    zone: Mapped[str] = mapped_column(String(2), default="*")
    max_weight_kg: Mapped[Decimal]
    charge: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3))
    free_over: Mapped[Decimal | None]
