"""Pricing permissions (`domain.noun.verb`)."""

PRICE_LIST_READ = "pricing.price_list.read"
PRICE_LIST_MANAGE = "pricing.price_list.manage"
CONTRACT_READ = "pricing.contract.read"
CONTRACT_MANAGE = "pricing.contract.manage"
QUOTE_READ = "pricing.quote.read"
# Sell below cost × (1 + the tenant's minimum margin). Checked by the services that set prices.
OVERRIDE = "pricing.override"
