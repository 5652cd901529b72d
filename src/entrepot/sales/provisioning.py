"""Sales' hooks in the domains below it: a customer with sales orders or quotes keeps its currency; billing
finds the invoices of an order (a grouped invoice names it by its lines only); the tenant's tax basis
does not change under orders and quotes priced on it."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Select, select

from entrepot.billing.service import use_order_line_ids
from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.tenant_settings import guard_setting
from entrepot.kernel.errors import Conflict
from entrepot.parties.service import hold_customer_currency
from entrepot.sales.models import Quote, SalesOrder, SalesOrderLine
from entrepot.sales.states import OrderInvoiceStatus, OrderStatus, QuoteStatus

hold_customer_currency("sales orders", SalesOrder)
hold_customer_currency("quotes", Quote)


def _order_line_ids(order_id: uuid.UUID) -> Select[Any]:
    return select(SalesOrderLine.id).where(SalesOrderLine.order_id == order_id)


use_order_line_ids(_order_line_ids)


def _keep_tax_basis_under_priced_documents(uow: UnitOfWork, name: str, old: Any, new: Any) -> None:
    """An order's prices are read on the tenant's basis when it is invoiced, not when it was entered: an
    order not yet wholly invoiced, or a sent quote (accepted, its prices become an order's), would be billed
    on the other basis (50.00 + 5.00 tax confirmed, 45.45 + 4.55 billed). Refused while any is open, naming
    a few. (A draft quote is priced again when it is sent.)"""
    orders = list(uow.session.scalars(
        select(SalesOrder.number).where(SalesOrder.status != OrderStatus.cancelled,
                                        SalesOrder.invoice_status != OrderInvoiceStatus.invoiced)
        .order_by(SalesOrder.number).limit(4)))
    quotes = list(uow.session.scalars(
        select(Quote.number).where(Quote.status == QuoteStatus.sent)
        .order_by(Quote.number).limit(4)))
    if orders or quotes:
        held = [f"{kind} {', '.join(numbers[:3])}{' and more' if len(numbers) > 3 else ''}"
                for kind, numbers in (("orders", orders), ("quotes", quotes)) if numbers]
        raise Conflict(f"{name} cannot change from {old} to {new} while {' and '.join(held)} hold prices "
                       "entered on the current basis: invoice or cancel the orders, and let the quotes be "
                       "accepted, declined or expire, first", field=name)


guard_setting("prices_include_tax", _keep_tax_basis_under_priced_documents)
