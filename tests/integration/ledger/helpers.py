"""Small readers the ledger tests share: balances by account code and role."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from entrepot.db.uow import UnitOfWork
from entrepot.ledger.chart import Role
from entrepot.ledger.services import accounts as chart
from entrepot.ledger.services.reports import account_balances


def balances(uow: UnitOfWork, as_of: date | None = None) -> dict[str, Decimal]:
    """Debit-positive balance per account code (accounts without lines are absent)."""
    return {b.code: b.balance for b in account_balances(uow, as_of=as_of) if b.balance}


def role_balance(uow: UnitOfWork, role: Role, as_of: date | None = None) -> Decimal:
    code = chart.account_for_role(uow, role).code
    return balances(uow, as_of).get(code, Decimal(0))
