"""Unit of work: one database transaction per business action.

Entry points open it; services receive it and never commit themselves. It
rolls back unless `commit()` is called. Audit entries are buffered and
written at commit, after everything else, so the per-tenant audit chain lock
is the last lock taken and is held for the shortest time.
"""

from __future__ import annotations

import uuid
import weakref
from collections.abc import Callable
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.orm import Session, SessionTransaction

from entrepot.db.engine import platform_session, tenant_session
from entrepot.kernel.context import Actor, system_actor

# Hooks run inside the transaction just before COMMIT (the ledger numbers its entries,
# the audit writer chains its entries); kept as a list so the db layer needs no domain import.
_before_commit_hooks: list[Callable[[UnitOfWork], None]] = []
_last_hooks: list[Callable[[UnitOfWork], None]] = []


def on_before_commit(hook: Callable[[UnitOfWork], None], *, last: bool = False) -> None:
    """Run `hook` inside the transaction just before COMMIT. `last` hooks run after all the
    others whatever the import order: the audit chain, whose per-tenant lock must be the
    last lock a transaction takes."""
    hooks = _last_hooks if last else _before_commit_hooks
    if hook not in hooks:
        hooks.append(hook)


class UnitOfWork:
    def __init__(
        self,
        actor: Actor,
        *,
        readonly: bool = False,
        url: str | None = None,
        platform: bool = False,
    ) -> None:
        self.actor = actor
        self.readonly = readonly
        self._url = url
        self._platform = platform or actor.tenant_id is None
        self.pending_audit: list[dict[str, Any]] = []
        self.after_commit: list[Callable[[], None]] = []
        self.committed = False
        self.session: Session
        self._memo: dict[Any, Any] = {}
        self._connection: Connection | None = None
        # pending_audit's length when each savepoint began (see _savepoint_*); weak, so
        # savepoints that were released simply drop out. Made with the first savepoint.
        self._audit_marks: weakref.WeakKeyDictionary[SessionTransaction, int] | None = None

    @property
    def tenant_id(self) -> uuid.UUID:
        if self.actor.tenant_id is None:
            raise RuntimeError("this unit of work has no tenant")
        return self.actor.tenant_id

    def memo(self, key: Any, compute: Callable[[], Any]) -> Any:
        """A value computed once per unit of work (the tenant's settings, an account
        id by role...): the steps of one business action ask for the same reference
        data many times, and within one transaction it cannot change under them."""
        try:
            return self._memo[key]
        except KeyError:
            value = self._memo[key] = compute()
            return value

    def connection(self) -> Connection:
        """The connection of the current transaction (begun on first use), for Core and
        prepared statements. Asking the session each time costs more than many statements."""
        conn = self._connection
        if conn is None or conn.closed or not conn.in_transaction():
            conn = self._connection = self.session.connection()
        return conn

    def __enter__(self) -> UnitOfWork:
        if self._platform:
            self.session = platform_session(readonly=self.readonly, url=self._url)
        else:
            self.session = tenant_session(self.tenant_id, readonly=self.readonly, url=self._url)
        self.session.info["uow"] = self
        return self

    def commit(self) -> None:
        for hook in _before_commit_hooks:
            hook(self)
        for hook in _last_hooks:
            hook(self)
        self.session.commit()
        self._connection = None
        self.committed = True
        for callback in self.after_commit:
            callback()

    def rollback(self) -> None:
        self.session.rollback()
        self._connection = None
        self.pending_audit.clear()
        self._memo.clear()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if not self.committed and not self.readonly:
                self.session.rollback()
        finally:
            # close() ends a read-only transaction without expiring what it loaded,
            # so results can be used after the block.
            self._connection = None
            self.session.close()


def tenant_uow(tenant_id: uuid.UUID, *, readonly: bool = False, url: str | None = None) -> UnitOfWork:
    """A unit of work acting as the system inside one tenant (CLI, worker, tests)."""
    return UnitOfWork(system_actor(tenant_id), readonly=readonly, url=url)


def platform_uow(*, readonly: bool = False, url: str | None = None) -> UnitOfWork:
    return UnitOfWork(system_actor(None), readonly=readonly, url=url, platform=True)


# A savepoint that rolls back (a refused stock operation, a retried serialisation
# failure) takes its rows with it; what the unit of work recorded inside it must go
# too: its audit entries, and memoised reads, which may have seen its writes.
@event.listens_for(Session, "after_transaction_create")
def _savepoint_begun(session: Session, transaction: SessionTransaction) -> None:
    uow = session.info.get("uow")
    if uow is not None and transaction.nested:
        if uow._audit_marks is None:
            uow._audit_marks = weakref.WeakKeyDictionary()
        uow._audit_marks[transaction] = len(uow.pending_audit)


@event.listens_for(Session, "after_soft_rollback")
def _savepoint_rolled_back(session: Session, previous: SessionTransaction) -> None:
    uow = session.info.get("uow")
    if uow is None or not previous.nested:
        return
    mark = uow._audit_marks.pop(previous, None) if uow._audit_marks is not None else None
    if mark is not None:
        del uow.pending_audit[mark:]
    uow._memo.clear()
