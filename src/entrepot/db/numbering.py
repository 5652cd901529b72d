"""Gapless per-tenant document numbers (SO-000001, INV-000001, …)."""

from __future__ import annotations

from sqlalchemy import bindparam, update

from entrepot.db.infrastructure import DocumentSequence
from entrepot.db.insert_if_missing import insert_if_missing
from entrepot.db.prepared import Prepared
from entrepot.db.uow import UnitOfWork
from entrepot.kernel.ids import new_id


def next_number(uow: UnitOfWork, sequence: str, prefix: str | None = None, width: int = 6) -> str:
    """Take the next number of `sequence` in the current transaction.

    The UPDATE … RETURNING locks the sequence row until commit or rollback, so
    concurrent callers queue on it and a rolled-back number is handed out again:
    no gaps and no duplicates among committed documents. The row is created on
    first use (insert-if-missing, then the same UPDATE), so the usual case is
    one statement.
    """
    tenant_id = uow.tenant_id
    taken = _TAKE.execute(uow, {"t": tenant_id, "sequence": sequence})
    if not taken:
        insert_if_missing(uow.connection(), _sequences, {
            "id": new_id(), "tenant_id": tenant_id, "name": sequence,
            "prefix": prefix if prefix is not None else sequence, "last_value": 0}, key=["tenant_id", "name"])
        taken = _TAKE.execute(uow, {"t": tenant_id, "sequence": sequence})
    last_value, prefix_text = taken[0]
    return f"{prefix_text}-{last_value:0{width}d}"


_sequences = DocumentSequence.__table__
# Built once: every document number goes through it.
_TAKE = Prepared(
    update(_sequences)
    .where(_sequences.c.tenant_id == bindparam("t"), _sequences.c.name == bindparam("sequence"))
    .values(last_value=_sequences.c.last_value + 1)
    .returning(_sequences.c.last_value, _sequences.c.prefix)
)
