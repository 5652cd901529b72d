"""Billing's hooks in the domains below it: pricing asks billing's tax engine for each product's
rate when it converts a price list kept on the other tax basis (pricing cannot import billing);
a customer with invoices or payments keeps its currency."""

from __future__ import annotations

from entrepot.billing.models import Invoice, Payment
from entrepot.billing.tax import product_tax_rates
from entrepot.parties.service import hold_customer_currency
from entrepot.pricing.service import use_product_tax_rates

use_product_tax_rates(product_tax_rates)
hold_customer_currency("invoices", Invoice)
hold_customer_currency("payments", Payment)
