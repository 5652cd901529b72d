"""Ledger permissions. The built-in `finance` role grants `ledger.*` and `finance.*`."""

from __future__ import annotations

ACCOUNT_READ = "ledger.account.read"
ACCOUNT_MANAGE = "ledger.account.manage"
ENTRY_READ = "ledger.entry.read"
ENTRY_CREATE = "ledger.entry.create"
ENTRY_REVERSE = "ledger.entry.reverse"
PERIOD_READ = "ledger.period.read"
PERIOD_MANAGE = "ledger.period.manage"
PERIOD_CLOSE = "ledger.period.close"
# Reopening a closed period rewrites history others have reported on: a separate grant.
PERIOD_REOPEN = "finance.period.reopen"
RATE_READ = "ledger.exchange_rate.read"
RATE_MANAGE = "ledger.exchange_rate.manage"
REPORT_READ = "ledger.report.read"
REVALUE = "ledger.revaluation.create"
