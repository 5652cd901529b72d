"""Row locks a document takes on the records it depends on while it is written."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from entrepot.db.uow import UnitOfWork


def hold_row(uow: UnitOfWork, model: Any, row_id: Any) -> None:
    """Hold the row (FOR KEY SHARE) until the transaction ends: a change that locks it FOR UPDATE waits
    for this transaction, and one that committed first is what this transaction reads after the hold.
    PostgreSQL only: SQLite serialises writers from BEGIN IMMEDIATE, and no statement is sent there."""
    if uow.session.get_bind().dialect.name != "postgresql":
        return
    uow.session.execute(select(model.id).where(model.id == row_id).with_for_update(read=True, key_share=True))
