"""Unit of work: one database transaction per business action.

Entry points open it; services receive it and never commit themselves. It
rolls back unless `commit()` is called. Audit entries are buffered and
written at commit, after everything else, so the per-tenant audit chain lock
is the last lock taken and is held for the shortest time. Outbox events are
buffered too (`pending_events`, filled by integration/outbox.py) and written in
one statement at commit, before the audit chain; a savepoint that rolls back
takes the events and audit entries recorded inside it with it.
"""

from __future__ import annotations

import contextlib
import uuid
import weakref
from collections.abc import Callable, Iterator
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
# Writes a list of pending outbox rows (set by the outbox, which the db layer cannot import).
_events_writer: list[Callable[[UnitOfWork, list[dict[str, Any]]], None]] = []


def on_before_commit(hook: Callable[[UnitOfWork], None], *, last: bool = False) -> None:
    """Run `hook` inside the transaction just before COMMIT. `last` hooks run after all the
    others whatever the import order: the audit chain, whose per-tenant lock must be the
    last lock a transaction takes."""
    hooks = _last_hooks if last else _before_commit_hooks
    if hook not in hooks:
        hooks.append(hook)


def set_events_writer(writer: Callable[[UnitOfWork, list[dict[str, Any]]], None]) -> None:
    """The function that writes a unit of work's `pending_events` (the outbox's). It runs at
    commit after the `on_before_commit` hooks (they may record events) and before the `last`
    ones, and whenever `write_events` is asked for (before a read of the outbox)."""
    _events_writer[:] = [writer]


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
        # Outbox rows recorded in this transaction (see integration/outbox.py), and how many of
        # them are written: the rest wait for commit. Written rows are kept until commit, as a
        # savepoint that rolls back after they were written takes them out of the database
        # while those recorded before it must still go in.
        self.pending_events: list[dict[str, Any]] = []
        self.events_written = 0
        self.after_commit: list[Callable[[], None]] = []
        self.committed = False
        self.session: Session
        self._memo: dict[Any, Any] = {}
        self._connection: Connection | None = None
        # (len(pending_audit), len(pending_events), events_written) when each savepoint began (see
        # _savepoint_*); weak, so savepoints that were released simply drop out. Made with the first
        # savepoint.
        self._audit_marks: weakref.WeakKeyDictionary[SessionTransaction, tuple[int, int, int]] | None = None

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

    def forget(self, key: Any) -> None:
        """Drop a memoised value: this transaction has just changed what it was computed from."""
        self._memo.pop(key, None)

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

    def write_events(self) -> None:
        """Write the pending outbox events now (at commit, or before a read of the outbox in
        this transaction, which must see them)."""
        rows, written = self.pending_events, self.events_written
        if len(rows) > written:
            _events_writer[0](self, rows[written:] if written else rows)
            self.events_written = len(rows)

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        """A SAVEPOINT around the block: if it raises, what it wrote rolls back alone (with the audit
        entries and events it recorded, see `_savepoint_rolled_back`) and the transaction goes on."""
        nested = self.session.begin_nested()
        # SQLAlchemy emits SAVEPOINT lazily, when the session next asks for its connection; prepared
        # statements run on `connection()`, which does not ask, so without this their writes would land
        # before the SAVEPOINT and outlive its rollback.
        self.session.connection()
        try:
            yield
        except BaseException:
            if nested.is_active:
                nested.rollback()
            raise
        nested.commit()

    def commit(self) -> None:
        for hook in _before_commit_hooks:
            hook(self)
        self.write_events()
        for hook in _last_hooks:
            hook(self)
        self.session.commit()
        self._connection = None
        self.pending_events.clear()
        self.events_written = 0
        self.committed = True
        for callback in self.after_commit:
            callback()

    def rollback(self) -> None:
        self.session.rollback()
        self._connection = None
        self.pending_audit.clear()
        self.pending_events.clear()
        self.events_written = 0
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
# too: its audit entries, its outbox events, and memoised reads, which may have seen
# its writes. A rollback of the whole transaction takes every pending event.
@event.listens_for(Session, "after_transaction_create")
def _savepoint_begun(session: Session, transaction: SessionTransaction) -> None:
    uow = session.info.get("uow")
    if uow is not None and transaction.nested:
        if uow._audit_marks is None:
            uow._audit_marks = weakref.WeakKeyDictionary()
        uow._audit_marks[transaction] = (len(uow.pending_audit), len(uow.pending_events), uow.events_written)


@event.listens_for(Session, "after_soft_rollback")
def _savepoint_rolled_back(session: Session, previous: SessionTransaction) -> None:
    uow = session.info.get("uow")
    if uow is None:
        return
    if not previous.nested:
        # The events' rows would have gone with the transaction (audit entries, written by
        # the unit of work's commit only, are left as they were).
        uow.pending_events.clear()
        uow.events_written = 0
        return
    mark = uow._audit_marks.pop(previous, None) if uow._audit_marks is not None else None
    if mark is not None:
        del uow.pending_audit[mark[0]:]
        # Rows written inside the savepoint went with it: pending again if recorded before it.
        del uow.pending_events[mark[1]:]
        uow.events_written = mark[2]
    uow._memo.clear()
