"""Billing tables: tax rates, invoices, credit notes, payments.

References to other domains (customer, product, sales order) are plain ids:
domains talk through services, never through each other's tables.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from entrepot.db.base import Base, HasId, TenantOwned, Timestamps, Versioned

ZERO = Decimal(0)


class TaxRate(TenantOwned, HasId, Timestamps, Base):
    """A rate for one jurisdiction (country, optional region) and product tax class.

    `tax_class` "*" applies to every class without a rate of its own; `region`
    NULL applies to the whole country. Stored as a percentage (8.875) so four
    decimal places of storage are enough.
    """

    __tablename__ = "tax_rates"
    __table_args__ = (Index("ix_tax_rates_tenant_id_country", "tenant_id", "country"),)
    name: Mapped[str] = mapped_column(String(100))
    country: Mapped[str] = mapped_column(String(2))
    region: Mapped[str | None] = mapped_column(String(20))
    tax_class: Mapped[str] = mapped_column(String(40), default="*")
    rate_percent: Mapped[Decimal]
    valid_from: Mapped[date | None]
    valid_to: Mapped[date | None]


class Invoice(TenantOwned, HasId, Timestamps, Versioned, Base):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        Index("ix_invoices_tenant_id_customer_id_status", "tenant_id", "customer_id", "status"),
        Index("ix_invoices_tenant_id_sales_order_id", "tenant_id", "sales_order_id"),
    )
    number: Mapped[str] = mapped_column(String(30))
    customer_id: Mapped[uuid.UUID]
    sales_order_id: Mapped[uuid.UUID | None]
    status: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    issued_on: Mapped[date]
    due_on: Mapped[date]
    discount_percent: Mapped[Decimal] = mapped_column(default=ZERO)
    discount_until: Mapped[date | None]
    ship_to_country: Mapped[str | None] = mapped_column(String(2))
    ship_to_region: Mapped[str | None] = mapped_column(String(20))
    subtotal: Mapped[Decimal]
    tax_total: Mapped[Decimal]
    total: Mapped[Decimal]
    amount_paid: Mapped[Decimal] = mapped_column(default=ZERO)
    amount_discounted: Mapped[Decimal] = mapped_column(default=ZERO)
    # Of amount_discounted, the tax part (tenant setting early_discount_reduces_tax): the output tax the
    # discount took off tax payable. Zero when the setting was off as the discount was taken.
    discount_tax: Mapped[Decimal] = mapped_column(default=ZERO)
    amount_credited: Mapped[Decimal] = mapped_column(default=ZERO)
    amount_due: Mapped[Decimal]
    lines: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice", order_by="InvoiceLine.line_no", cascade="all, delete-orphan"
    )


class InvoiceLine(TenantOwned, HasId, Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (Index("ix_invoice_lines_tenant_id_invoice_id", "tenant_id", "invoice_id"),)
    invoice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("invoices.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    product_id: Mapped[uuid.UUID | None]
    source_line_id: Mapped[uuid.UUID | None]  # the sales order line invoiced
    description: Mapped[str] = mapped_column(String(300), default="")
    tax_class: Mapped[str] = mapped_column(String(40), default="standard")
    quantity: Mapped[Decimal]
    unit_price: Mapped[Decimal]
    line_total: Mapped[Decimal]  # net of tax
    tax_rate_percent: Mapped[Decimal] = mapped_column(default=ZERO)
    tax_amount: Mapped[Decimal] = mapped_column(default=ZERO)
    quantity_credited: Mapped[Decimal] = mapped_column(default=ZERO)
    invoice: Mapped[Invoice] = relationship(back_populates="lines")


class CreditNote(TenantOwned, HasId, Timestamps, Base):
    __tablename__ = "credit_notes"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        Index("ix_credit_notes_tenant_id_invoice_id", "tenant_id", "invoice_id"),
    )
    number: Mapped[str] = mapped_column(String(30))
    invoice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("invoices.id"))
    customer_id: Mapped[uuid.UUID]
    status: Mapped[str] = mapped_column(String(20), default="posted")
    currency: Mapped[str] = mapped_column(String(3))
    issued_on: Mapped[date]
    reason: Mapped[str] = mapped_column(String(300), default="")
    subtotal: Mapped[Decimal]
    tax_total: Mapped[Decimal]
    total: Mapped[Decimal]
    # What the invoice's amount due could not absorb (it was already paid): customer credit.
    applied_to_invoice: Mapped[Decimal] = mapped_column(default=ZERO)
    refunded: Mapped[Decimal] = mapped_column(default=ZERO)  # paid back to the customer
    unapplied: Mapped[Decimal] = mapped_column(default=ZERO)
    # The early-payment discount the credited goods had earned (the invoice was settled with it):
    # taken back, so the customer is credited what it paid for them, `total` less this.
    discount_reversed: Mapped[Decimal] = mapped_column(default=ZERO)
    # Of discount_reversed, the tax part: what the discount had taken off tax payable, put back.
    discount_tax_reversed: Mapped[Decimal] = mapped_column(default=ZERO)
    lines: Mapped[list[CreditNoteLine]] = relationship(order_by="CreditNoteLine.line_no", cascade="all, delete-orphan")


class CreditNoteLine(TenantOwned, HasId, Base):
    __tablename__ = "credit_note_lines"
    __table_args__ = (Index("ix_credit_note_lines_tenant_id_credit_note_id", "tenant_id", "credit_note_id"),)
    credit_note_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("credit_notes.id"))
    line_no: Mapped[int] = mapped_column(Integer)
    invoice_line_id: Mapped[uuid.UUID | None]
    description: Mapped[str] = mapped_column(String(300), default="")
    quantity: Mapped[Decimal]
    unit_price: Mapped[Decimal]
    line_total: Mapped[Decimal]
    tax_amount: Mapped[Decimal]


class Payment(TenantOwned, HasId, Timestamps, Versioned, Base):
    """A receipt from a customer; what is not allocated stays as customer credit."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("tenant_id", "number"),
        Index("ix_payments_tenant_id_customer_id", "tenant_id", "customer_id"),
    )
    number: Mapped[str] = mapped_column(String(30))
    customer_id: Mapped[uuid.UUID]
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal]
    received_on: Mapped[date]
    method: Mapped[str] = mapped_column(String(30), default="bank_transfer")
    reference: Mapped[str] = mapped_column(String(100), default="")
    applied: Mapped[Decimal] = mapped_column(default=ZERO)
    discount: Mapped[Decimal] = mapped_column(default=ZERO)
    discount_tax: Mapped[Decimal] = mapped_column(default=ZERO)  # of discount, the tax part
    refunded: Mapped[Decimal] = mapped_column(default=ZERO)
    unapplied: Mapped[Decimal] = mapped_column(default=ZERO)
    allocations: Mapped[list[PaymentAllocation]] = relationship(cascade="all, delete-orphan")


class PaymentAllocation(TenantOwned, HasId, Base):
    __tablename__ = "payment_allocations"
    __table_args__ = (
        Index("ix_payment_allocations_tenant_id_payment_id", "tenant_id", "payment_id"),
        Index("ix_payment_allocations_tenant_id_invoice_id", "tenant_id", "invoice_id"),
    )
    payment_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("payments.id"))
    invoice_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("invoices.id"))
    amount: Mapped[Decimal]
    discount: Mapped[Decimal] = mapped_column(default=ZERO)
    discount_tax: Mapped[Decimal] = mapped_column(default=ZERO)  # of discount, the tax part
    applied_at: Mapped[datetime]
