"""The chart of accounts and the journals: create, change, archive, look up by role."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from entrepot.db.uow import UnitOfWork
from entrepot.identity.models import Tenant
from entrepot.identity.services.audit import audit, snapshot
from entrepot.kernel.errors import Conflict, NotFound, invalid
from entrepot.ledger.chart import DISTRIBUTION_CHART, JOURNALS, AccountType, JournalCode, Role
from entrepot.ledger.errors import AccountRoleMissing
from entrepot.ledger.models import Account, Journal

CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,19}$")
_CACHE = "ledger.cache"


def cache(uow: UnitOfWork) -> dict[str, Any]:
    """Lookups that hold for the current transaction (journals, accounts by role, open
    periods, rates). Keyed by the transaction and the savepoint in force, so nothing
    learned inside a rolled-back transaction or savepoint (a period it created) is reused."""
    key = (uow.session.get_transaction(), uow.session.get_nested_transaction())
    held = uow.session.info.get(_CACHE)
    if held is None or held[0] != key:
        held = (key, {})
        uow.session.info[_CACHE] = held
    return held[1]  # type: ignore[no-any-return]


def forget(uow: UnitOfWork) -> None:
    """Drop cached accounts after the chart changed (numbers taken are kept)."""
    c = cache(uow)
    for key in [k for k in c if k.startswith(("role:", "journal:"))]:
        del c[key]


def functional_currency(uow: UnitOfWork) -> str:
    c = cache(uow)
    if "currency" not in c:
        tenant = uow.session.get(Tenant, uow.tenant_id)
        c["currency"] = tenant.currency if tenant is not None else "USD"
    return c["currency"]  # type: ignore[no-any-return]


def load_template(uow: UnitOfWork) -> None:
    """Journals and the distribution chart for a new tenant (idempotent)."""
    session = uow.session
    have_journals = set(session.scalars(select(Journal.code)))
    for code, name, prefix in JOURNALS:
        if code.value not in have_journals:
            session.add(Journal(code=code.value, name=name, prefix=prefix))
    have_accounts = set(session.scalars(select(Account.code)))
    for code, name, type_, role in DISTRIBUTION_CHART:
        if code not in have_accounts:
            session.add(Account(code=code, name=name, type=type_.value, role=role.value if role else None,
                                archived=False))
    session.flush()
    audit(uow, "ledger.chart.load", "ledger_chart", None, after={"template": "distribution",
                                                                 "accounts": len(DISTRIBUTION_CHART)})
    forget(uow)


def journal(uow: UnitOfWork, code: JournalCode | str) -> Journal:
    key = f"journal:{code}"
    c = cache(uow)
    if key not in c:
        found = uow.session.scalar(select(Journal).where(Journal.code == str(code)))
        if found is None:
            raise NotFound("journal", code)
        c[key] = found
    return c[key]  # type: ignore[no-any-return]


def list_journals(uow: UnitOfWork) -> list[Journal]:
    return list(uow.session.scalars(select(Journal).order_by(Journal.code)))


def account_for_role(uow: UnitOfWork, role: Role | str) -> Account:
    key = f"role:{role}"
    c = cache(uow)
    if key not in c:
        found = uow.session.scalars(
            select(Account).where(Account.role == str(role), Account.archived.is_(False))
        ).first()
        if found is None:
            raise AccountRoleMissing(f"no active account has the role {role}; assign it in the chart of accounts",
                                     role=str(role))
        c[key] = found
    return c[key]  # type: ignore[no-any-return]


def get_account(uow: UnitOfWork, account_id: uuid.UUID) -> Account:
    account = uow.session.get(Account, account_id)
    if account is None:
        raise NotFound("account", account_id)
    return account


def account_by_code(uow: UnitOfWork, code: str, field: str = "account_code") -> Account:
    account = uow.session.scalar(select(Account).where(Account.code == code))
    if account is None:
        raise invalid(field, f"no account with code {code!r}", "exists")
    return account


def _check_role(uow: UnitOfWork, role: str | None, account_id: uuid.UUID | None) -> None:
    if role is None:
        return
    if role not in {r.value for r in Role}:
        raise invalid("role", f"unknown role {role!r}; one of {', '.join(r.value for r in Role)}", "choice")
    other = uow.session.scalar(
        select(Account.code).where(Account.role == role, Account.archived.is_(False), Account.id != account_id)
        if account_id else select(Account.code).where(Account.role == role, Account.archived.is_(False))
    )
    if other is not None:
        raise Conflict(f"account {other} already has the role {role}; archive it or clear its role first",
                       role=role)


@dataclass(frozen=True)
class AccountData:
    code: str
    name: str
    type: str
    role: str | None = None


def create_account(uow: UnitOfWork, data: AccountData) -> Account:
    if not CODE.match(data.code):
        raise invalid("code", "letters, digits, '.' and '-', 1-20 characters", "pattern")
    if not data.name.strip():
        raise invalid("name", "must not be empty", "required")
    if data.type not in {t.value for t in AccountType}:
        raise invalid("type", f"one of {', '.join(t.value for t in AccountType)}", "choice")
    if uow.session.scalar(select(Account.id).where(Account.code == data.code)) is not None:
        raise Conflict(f"an account with code {data.code} already exists")
    _check_role(uow, data.role, None)
    account = Account(code=data.code, name=data.name.strip(), type=data.type, role=data.role, archived=False)
    uow.session.add(account)
    uow.session.flush()
    audit(uow, "ledger.account.create", "ledger_account", account.id, after=snapshot(account))
    forget(uow)
    return account


def update_account(uow: UnitOfWork, account: Account, changes: dict[str, Any]) -> Account:
    """Name, role and archived may change; code and type are fixed once lines may exist."""
    before = snapshot(account)
    if "name" in changes:
        name = (changes["name"] or "").strip()
        if not name:
            raise invalid("name", "must not be empty", "required")
        account.name = name
    if "role" in changes:
        _check_role(uow, changes["role"], account.id)
        account.role = changes["role"]
    if "archived" in changes:
        if changes["archived"] is None:
            raise invalid("archived", "must be true or false", "required")
        if not changes["archived"] and account.role:
            _check_role(uow, account.role, account.id)
        account.archived = bool(changes["archived"])
    uow.session.flush()
    audit(uow, "ledger.account.update", "ledger_account", account.id, before=before, after=snapshot(account))
    forget(uow)
    return account
