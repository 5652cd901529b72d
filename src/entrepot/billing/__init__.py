"""Billing: invoices, credit notes, payments and the tax engine."""
