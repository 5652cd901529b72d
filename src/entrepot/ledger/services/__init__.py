"""Ledger use cases, one module per concern: accounts, periods, rates, entries, reports."""
