"""Billing's hooks in the domains below it: pricing asks billing's tax engine for each product's
rate when it converts a price list kept on the other tax basis (pricing cannot import billing)."""

from __future__ import annotations

from entrepot.billing.tax import product_tax_rates
from entrepot.pricing.service import use_product_tax_rates

use_product_tax_rates(product_tax_rates)
