"""Sales' hooks in the domains below it: a customer with sales orders or quotes keeps its currency."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from entrepot.db.uow import UnitOfWork
from entrepot.parties.service import hold_customer_currency
from entrepot.sales.models import Quote, SalesOrder


def _sales_documents(uow: UnitOfWork, customer_id: uuid.UUID) -> str | None:
    if uow.session.scalar(select(SalesOrder.id).where(SalesOrder.customer_id == customer_id).limit(1)):
        return "sales orders"
    if uow.session.scalar(select(Quote.id).where(Quote.customer_id == customer_id).limit(1)):
        return "quotes"
    return None


hold_customer_currency(_sales_documents)
