"""Sales' hooks in the domains below it: a customer with sales orders or quotes keeps its currency; billing
finds the invoices of an order (a grouped invoice names it by its lines only)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select

from entrepot.billing.service import use_order_line_ids
from entrepot.parties.service import hold_customer_currency
from entrepot.sales.models import Quote, SalesOrder, SalesOrderLine

hold_customer_currency("sales orders", SalesOrder)
hold_customer_currency("quotes", Quote)


def _order_line_ids(order_id: uuid.UUID) -> Select[Any]:
    return select(SalesOrderLine.id).where(SalesOrderLine.order_id == order_id)


use_order_line_ids(_order_line_ids)
