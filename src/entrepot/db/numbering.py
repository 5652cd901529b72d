"""Gapless per-tenant document numbers (SO-000001, INV-000001, …)."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite

from entrepot.db.infrastructure import DocumentSequence
from entrepot.db.uow import UnitOfWork
from entrepot.kernel.ids import new_id


def next_number(uow: UnitOfWork, sequence: str, prefix: str | None = None, width: int = 6) -> str:
    """Take the next number of `sequence` in the current transaction.

    The UPDATE … RETURNING locks the sequence row until commit or rollback, so
    concurrent callers queue on it and a rolled-back number is handed out again:
    no gaps and no duplicates among committed documents.
    """
    session = uow.session
    tenant_id = uow.tenant_id
    prefix = prefix if prefix is not None else sequence
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert(DocumentSequence)
        .values(id=new_id(), tenant_id=tenant_id, name=sequence, prefix=prefix, last_value=0)
        .on_conflict_do_nothing(index_elements=["tenant_id", "name"])
    )
    value = session.execute(
        update(DocumentSequence)
        .where(DocumentSequence.tenant_id == tenant_id, DocumentSequence.name == sequence)
        .values(last_value=DocumentSequence.last_value + 1)
        .returning(DocumentSequence.last_value, DocumentSequence.prefix)
        .execution_options(synchronize_session=False)
    ).one()
    return f"{value.prefix}-{value.last_value:0{width}d}"


def peek_last(uow: UnitOfWork, sequence: str) -> int:
    row = uow.session.scalar(
        select(DocumentSequence.last_value).where(DocumentSequence.name == sequence)
    )
    return int(row or 0)
