"""Billing's hooks in the domains below it: pricing asks billing's tax engine for each product's
rate when it converts a price list kept on the other tax basis (pricing cannot import billing);
a customer with invoices or payments keeps its currency."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from entrepot.billing.models import Invoice, Payment
from entrepot.billing.tax import product_tax_rates
from entrepot.db.uow import UnitOfWork
from entrepot.parties.service import hold_customer_currency
from entrepot.pricing.service import use_product_tax_rates

use_product_tax_rates(product_tax_rates)


def _billing_documents(uow: UnitOfWork, customer_id: uuid.UUID) -> str | None:
    if uow.session.scalar(select(Invoice.id).where(Invoice.customer_id == customer_id).limit(1)):
        return "invoices"
    if uow.session.scalar(select(Payment.id).where(Payment.customer_id == customer_id).limit(1)):
        return "payments"
    return None


hold_customer_currency(_billing_documents)
