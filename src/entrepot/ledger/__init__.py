"""The ledger: chart of accounts, journals, posting rules, periods, exchange rates, reports.

It sits low in the layering: business documents (invoices, shipments, receipts)
post to it through `entrepot.ledger.posting` with ids and amounts; it never
imports the packages that own those documents.
"""
