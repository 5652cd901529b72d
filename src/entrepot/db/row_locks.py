"""Row locks a document takes on the records it depends on while it is written."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select, text

from entrepot.db.uow import UnitOfWork


def hold_row(uow: UnitOfWork, model: Any, row_id: Any) -> None:
    """Hold the row (FOR KEY SHARE) until the transaction ends: a change that locks it FOR UPDATE waits
    for this transaction, and one that committed first is what this transaction reads after the hold.
    PostgreSQL only: SQLite serialises writers from BEGIN IMMEDIATE, and no statement is sent there."""
    if uow.session.get_bind().dialect.name != "postgresql":
        return
    uow.session.execute(select(model.id).where(model.id == row_id).with_for_update(read=True, key_share=True))


def hold_tenant_key(uow: UnitOfWork, name: str) -> None:
    """Serialise one kind of write within the tenant until the transaction ends (a transaction-scoped
    advisory lock keyed on the tenant and `name`), where the rule checked has no row to lock: a value
    that must be unique but is not yet anywhere (a barcode). PostgreSQL only, as `hold_row`."""
    if uow.session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(uow.tenant_id.bytes + name.encode(), digest_size=8).digest()
    uow.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": int.from_bytes(digest, "big", signed=True)})
