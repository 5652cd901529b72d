"""Sales' hooks in the domains below it: a customer with sales orders or quotes keeps its currency."""

from __future__ import annotations

from entrepot.parties.service import hold_customer_currency
from entrepot.sales.models import Quote, SalesOrder

hold_customer_currency("sales orders", SalesOrder)
hold_customer_currency("quotes", Quote)
