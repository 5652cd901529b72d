"""Account roles, journals, and the general distribution chart-of-accounts template.

A role names what an account is *for* in the posting rules (`posting.RULES`);
codes and names are the tenant's to change. Tenant templates add more charts later.
"""

from __future__ import annotations

from enum import StrEnum


class AccountType(StrEnum):
    asset = "asset"
    liability = "liability"
    equity = "equity"
    income = "income"
    expense = "expense"


# Debit-normal types; the others are credit-normal.
DEBIT_NORMAL = frozenset({AccountType.asset, AccountType.expense})
PROFIT_AND_LOSS = frozenset({AccountType.income, AccountType.expense})


class Role(StrEnum):
    receivable = "receivable"
    payable = "payable"
    inventory = "inventory"
    cogs = "cogs"
    revenue = "revenue"
    deferred_revenue = "deferred_revenue"
    tax_payable = "tax_payable"
    tax_receivable = "tax_receivable"
    cash = "cash"
    grni = "goods_received_not_invoiced"
    fx_gain_loss = "fx_gain_loss"
    rounding = "rounding"
    sales_discounts = "sales_discounts"
    purchase_discounts = "purchase_discounts"
    inventory_adjustment = "inventory_adjustment"
    price_variance = "purchase_price_variance"
    retained_earnings = "retained_earnings"
    opening_balance = "opening_balance_equity"


# Touched only by their subledgers (billing, purchasing, inventory); manual entries are refused.
CONTROL_ROLES = frozenset({Role.receivable, Role.payable, Role.inventory})


class JournalCode(StrEnum):
    sales = "sales"
    purchases = "purchases"
    cash = "cash"
    inventory = "inventory"
    general = "general"


# code, name, number prefix (entry numbers are gapless per journal: SAL-000001, …)
JOURNALS: tuple[tuple[JournalCode, str, str], ...] = (
    (JournalCode.sales, "Sales", "SAL"),
    (JournalCode.purchases, "Purchases", "PUR"),
    (JournalCode.cash, "Cash and bank", "CSH"),
    (JournalCode.inventory, "Inventory", "STK"),
    (JournalCode.general, "General", "GEN"),
)

A, L, E, INC, X = (AccountType.asset, AccountType.liability, AccountType.equity, AccountType.income,
                 AccountType.expense)

# The general distribution template: code, name, type, role.
DISTRIBUTION_CHART: tuple[tuple[str, str, AccountType, Role | None], ...] = (
    ("1000", "Cash and bank", A, Role.cash),
    ("1100", "Accounts receivable", A, Role.receivable),
    ("1200", "Inventory", A, Role.inventory),
    ("1300", "Sales tax receivable (input tax)", A, Role.tax_receivable),
    ("1400", "Prepaid expenses", A, None),
    ("1500", "Equipment and vehicles", A, None),
    ("1510", "Accumulated depreciation", A, None),
    ("2000", "Accounts payable", L, Role.payable),
    ("2100", "Goods received not invoiced", L, Role.grni),
    ("2200", "Sales tax payable", L, Role.tax_payable),
    ("2300", "Deferred revenue", L, Role.deferred_revenue),
    ("2400", "Accrued liabilities", L, None),
    ("2500", "Bank loans", L, None),
    ("3000", "Owner's capital", E, None),
    ("3100", "Retained earnings", E, Role.retained_earnings),
    ("3900", "Opening balance equity", E, Role.opening_balance),
    ("4000", "Sales revenue", INC, Role.revenue),
    ("4100", "Service and subscription revenue", INC, None),
    ("4500", "Sales discounts", INC, Role.sales_discounts),
    ("4600", "Purchase discounts", INC, Role.purchase_discounts),
    ("4900", "Other income", INC, None),
    ("5000", "Cost of goods sold", X, Role.cogs),
    ("5100", "Inventory adjustments", X, Role.inventory_adjustment),
    ("5200", "Purchase price variance", X, Role.price_variance),
    ("5300", "Freight and carriage", X, None),
    ("6000", "Salaries and wages", X, None),
    ("6100", "Rent", X, None),
    ("6200", "Utilities", X, None),
    ("6300", "Office and administration", X, None),
    ("6400", "Bank charges", X, None),
    ("6900", "Depreciation", X, None),
    ("7000", "Foreign exchange gains and losses", X, Role.fx_gain_loss),
    ("7100", "Rounding differences", X, Role.rounding),
)
