"""The chart of accounts and the journals: create, change, archive, look up by role."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select

from entrepot.db.prepared import Prepared
from entrepot.db.uow import UnitOfWork
from entrepot.identity.models import Tenant
from entrepot.identity.services.audit import audit, snapshot
from entrepot.kernel.errors import Conflict, NotFound, invalid
from entrepot.ledger.chart import CONTROL_ROLES, DISTRIBUTION_CHART, JOURNALS, AccountType, JournalCode, Role
from entrepot.ledger.errors import AccountRoleMissing
from entrepot.ledger.models import Account, Journal, JournalLine

CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,19}$")
_CACHE = "ledger.lookups"


def cache(uow: UnitOfWork) -> dict[str, Any]:
    """Lookups that hold for the current transaction (accounts by role, open periods,
    rates), kept in the unit of work's memo. One business action posts several entries,
    often inside savepoints (inventory retries), and must not pay a query per entry for
    them, so the key is the transaction, not the savepoint; a savepoint's rollback empties
    the memo (the unit of work does), so nothing learned inside rolled-back work (a period
    it created) is reused. A new transaction (after a commit) starts empty: a period may
    have been closed in between, and its share lock ended with the old transaction."""
    session = uow.session
    txn = session.get_transaction()
    if txn is None:  # nothing ran yet: begin, so what is learned now is kept with the transaction
        session.connection()
        txn = session.get_transaction()
    return uow.memo((_CACHE, txn), dict)  # type: ignore[no-any-return]


def forget(uow: UnitOfWork) -> None:
    """Drop the accounts by role read in this transaction after the chart changed; until it
    commits, this transaction neither uses nor keeps the accounts known across transactions
    (it sees a chart no other transaction sees yet)."""
    known = cache(uow)
    known.pop("roles", None)
    known[_CHART_CHANGED] = True


@dataclass(frozen=True)
class JournalRef:
    """What posting needs of a journal."""

    id: uuid.UUID
    code: str
    prefix: str


# A tenant's functional currency and its journals are set when it is provisioned and no
# service or route edits them, so they are kept for the life of the process instead of
# being read again by every posting transaction (plain values: no ORM object outlives
# its session). A journal code not found is read again, never remembered as missing.
_currency_of: dict[uuid.UUID, str] = {}
_journals_of: dict[uuid.UUID, dict[str, JournalRef]] = {}


def functional_currency(uow: UnitOfWork) -> str:
    tenant_id = uow.tenant_id
    currency = _currency_of.get(tenant_id)
    if currency is None:
        # One column through the connection: no ORM load, no autoflush of the caller's changes.
        currency = uow.session.connection().execute(select(Tenant.currency).where(Tenant.id == tenant_id)).scalar()
        if currency is None:
            return "USD"
        _currency_of[tenant_id] = currency
    return currency


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


def journal(uow: UnitOfWork, code: JournalCode | str) -> JournalRef:
    tenant_id = uow.tenant_id
    found = _journals_of.get(tenant_id, {}).get(str(code))
    if found is None:  # a tenant has a handful: all of them in one query
        table = Journal.__table__
        rows = uow.session.connection().execute(
            select(table.c.id, table.c.code, table.c.prefix).where(table.c.tenant_id == tenant_id))
        journals = _journals_of[tenant_id] = {row.code: JournalRef(row.id, row.code, row.prefix) for row in rows}
        found = journals.get(str(code))
        if found is None:
            raise NotFound("journal", code)
    return found


def list_journals(uow: UnitOfWork) -> list[Journal]:
    return list(uow.session.scalars(select(Journal).order_by(Journal.code)))


@dataclass(frozen=True)
class AccountRef:
    """What posting needs of an account. Posting reads its rule's accounts as plain rows,
    once per transaction: most of what a posting transaction reads, so no ORM load."""

    id: uuid.UUID
    code: str
    archived: bool


_ACCOUNTS = Account.__table__
# Every active account that has a role, in one prepared statement: a tenant has a score of
# them, and the rules of one transaction (an invoice, its shipment, a payment) need several.
_ROLE_ACCOUNTS = Prepared(select(_ACCOUNTS.c.role, _ACCOUNTS.c.id, _ACCOUNTS.c.code, _ACCOUNTS.c.archived).where(
    _ACCOUNTS.c.tenant_id == bindparam("tenant_id"), _ACCOUNTS.c.role.is_not(None), _ACCOUNTS.c.archived.is_(False)))


# The accounts by role are also kept across transactions, per tenant, under the chart's stamp:
# (number of accounts, sum of their versions), read with the posting period in the statement
# every posting transaction runs anyway (periods.period_state). Accounts are never deleted, a new
# one adds to the count and every change of one bumps its version (Versioned), so each committed
# change of a tenant's chart gives a stamp it never had before: an entry whose stamp is still the
# one read in this transaction describes the chart this transaction sees, in any process. A
# transaction that changed the chart itself (`forget`) neither uses nor keeps them.
CHART_STAMP = "chart_stamp"
_CHART_CHANGED = "chart_changed"
_roles_of: dict[uuid.UUID, tuple[tuple[int, int], dict[str, AccountRef]]] = {}


def chart_stamp_columns(tenant_id: Any) -> tuple[Any, Any]:
    """The stamp's two scalar subqueries, for the period read to select along."""
    return (select(func.count()).where(_ACCOUNTS.c.tenant_id == tenant_id).scalar_subquery(),
            select(func.coalesce(func.sum(_ACCOUNTS.c.version), 0))
            .where(_ACCOUNTS.c.tenant_id == tenant_id).scalar_subquery())


def role_accounts(uow: UnitOfWork) -> dict[str, AccountRef]:
    """The active account of each role, read once per transaction (plain rows, no ORM load), or
    not at all when this transaction read the chart's stamp and it is the stamp they were read
    under (see above). The mapping is shared: callers only read it."""
    known = cache(uow)
    found: dict[str, AccountRef] | None = known.get("roles")
    if found is None:
        tenant_id = uow.tenant_id
        stamp = None if known.get(_CHART_CHANGED) else known.get(CHART_STAMP)
        held = _roles_of.get(tenant_id)
        if stamp is not None and held is not None and held[0] == stamp:
            found = held[1]
        else:
            # read after the stamp (never before): a change committed in between only makes
            # the next transaction read again
            rows = _ROLE_ACCOUNTS.execute(uow, {"tenant_id": tenant_id})
            found = {role: AccountRef(id_, code, archived) for role, id_, code, archived in rows}
            if stamp is not None:
                _roles_of[tenant_id] = (stamp, found)
        known["roles"] = found
    return found


def posting_account(uow: UnitOfWork, role: Role | str) -> AccountRef:
    found = role_accounts(uow).get(str(role))
    if found is None:
        raise AccountRoleMissing(f"no active account has the role {role}; assign it in the chart of accounts",
                                 role=str(role))
    return found


def account_for_role(uow: UnitOfWork, role: Role | str) -> Account:
    """The role's account as an ORM object (to change it); posting uses `posting_account`."""
    return get_account(uow, posting_account(uow, role).id)


def hold_foreign_balances(uow: UnitOfWork, *, restate: bool = False) -> None:
    """Hold the parties' foreign-currency balances until the transaction ends, by the row of the FX
    gain/loss account: shared (FOR SHARE) to settle against a party's carrying value, exclusive (FOR NO
    KEY UPDATE) to restate them (revaluation). Taken before those balances are read, so the read sees
    what the other committed: a payment and a revaluation at once no longer both work from the carrying
    value before the other (leaving the restatement on a settled balance), nor two revaluations restate
    it twice. Once per transaction and mode."""
    key = "foreign_balances:restate" if restate else "foreign_balances:settle"
    c = cache(uow)
    if key in c:
        return
    uow.session.execute(select(Account.id).where(Account.role == Role.fx_gain_loss.value).order_by(Account.id)
                        .with_for_update(read=not restate, key_share=restate))
    c[key] = True


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


def _check_control_role_move(uow: UnitOfWork, account: Account, role: str | None) -> None:
    """A control account (receivable, payable, inventory) reconciles to its subledger because only
    the subledger posts there. Taking its role from an account with postings would open it to hand
    entries (and drop its history from aging and statements, which read the role's accounts), and
    giving the role to an account with postings would bring in lines no subledger holds: either way
    the control balance would no longer equal its parties' balances. Archive the account instead
    (it keeps the role and its history) and give the role to a new one."""
    if role == account.role:
        return
    moved = sorted(r for r in (account.role, role) if r in {c.value for c in CONTROL_ROLES})
    if not moved:
        return
    if uow.session.scalar(select(JournalLine.line_no).where(JournalLine.account_id == account.id).limit(1)) is None:
        return
    raise Conflict(f"account {account.code} has postings, so the control role {moved[0]} is neither taken from nor "
                   "given to it; archive it and give the role to a new account", role=moved[0])


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
        _check_control_role_move(uow, account, changes["role"])
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
