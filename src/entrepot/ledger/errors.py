"""The ledger's refusals, each with a stable code. Every one is raised before a row is written."""

from __future__ import annotations

from entrepot.kernel.errors import Conflict, FieldError, ValidationFailed


class PeriodClosed(Conflict):
    code = "period_closed"
    title = "Period closed"


class EntryAlreadyReversed(Conflict):
    code = "entry_already_reversed"
    title = "Entry already reversed"


class AccountRoleMissing(Conflict):
    code = "account_role_missing"
    title = "No account for a posting role"


class UnbalancedEntry(ValidationFailed):
    code = "unbalanced_entry"


class ControlAccountRefused(ValidationFailed):
    code = "control_account"


class ArchivedAccount(ValidationFailed):
    code = "archived_account"


class NoExchangeRate(ValidationFailed):
    code = "no_exchange_rate"

    def __init__(self, currency: str, on: object, field: str = "currency") -> None:
        super().__init__(
            FieldError(field, f"no exchange rate for {currency} on or before {on}", "exchange_rate")
        )


class PostedEntryImmutable(Conflict):
    code = "posted_entry_immutable"
    title = "Posted entries cannot change"
