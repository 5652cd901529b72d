"""The audit trail: who changed what, in which tenant, before and after.

Services call `audit(...)` during a unit of work (it lives in `db/audit_trail.py`,
below every domain, and is re-exported here); the entries are appended at commit
time to the tenant's hash chain: each entry's hash covers its content and the
previous entry's hash, so editing or deleting a past entry breaks
every link after it and `verify_chain` names the first broken one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite

from entrepot.db.audit_trail import audit, diff, snapshot
from entrepot.db.prepared import Prepared
from entrepot.db.uow import UnitOfWork, on_before_commit
from entrepot.identity.models import AuditChainHead, AuditEntry
from entrepot.kernel import clock
from entrepot.kernel.ids import new_id

__all__ = ["ChainReport", "audit", "diff", "snapshot", "verify_chain"]

GENESIS = "0" * 64


def _entry_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def _hashed_fields(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "entity_type": entry.entity_type,
        "entity_id": entry.entity_id,
        "before": entry.before,
        "after": entry.after,
        "request_id": entry.request_id,
    }


_heads = AuditChainHead.__table__
# Built once: this runs at the commit of every business action.
# Reserving `count` sequence numbers; the UPDATE locks the tenant's chain head until
# commit, so appends to one tenant's chain are serialised.
_CLAIM = (
    update(_heads)
    .where(_heads.c.tenant_id == bindparam("t"))
    .values(last_seq=_heads.c.last_seq + bindparam("n"))
    .returning(_heads.c.last_seq, _heads.c.last_hash)
)
_SEAL = update(_heads).where(_heads.c.tenant_id == bindparam("t")).values(last_hash=bindparam("h"))
_APPEND_COLUMNS = ("id", "tenant_id", "seq", "at", "actor", "request_id", "prev_hash",
                   "action", "entity_type", "entity_id", "before", "after", "hash")
_APPEND = Prepared(AuditEntry.__table__.insert(), columns=_APPEND_COLUMNS)
_CLAIM_P = Prepared(_CLAIM)
_SEAL_P = Prepared(_SEAL)


def _write_pending(uow: UnitOfWork) -> None:
    if not uow.pending_audit:
        return
    session = uow.session
    tenant_id = uow.tenant_id
    # Flush the business changes first: their row locks are taken before the chain
    # lock, in every transaction, so the two kinds of lock never wait on each other.
    session.flush()
    count = len(uow.pending_audit)
    claimed = _CLAIM_P.execute(uow, {"t": tenant_id, "n": count})
    if not claimed:
        conn = uow.connection()
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(
            insert(_heads)
            .values(id=new_id(), tenant_id=tenant_id, last_seq=0, last_hash=GENESIS)
            .on_conflict_do_nothing(index_elements=["tenant_id"])
        )
        claimed = _CLAIM_P.execute(uow, {"t": tenant_id, "n": count})
    last_seq, prev = claimed[0]
    seq = last_seq - count
    at = clock.now()
    actor, request_id = uow.actor.ref, uow.actor.request_id
    rows = []
    for item in uow.pending_audit:
        seq += 1
        entry = {
            "id": new_id(),
            "tenant_id": tenant_id,
            "seq": seq,
            "at": at,
            "actor": actor,
            "request_id": request_id,
            "prev_hash": prev,
            **item,
        }
        entry["hash"] = prev = _entry_hash(prev, _fields_of(entry))
        rows.append(entry)
    _APPEND.execute_many(uow, rows)
    _SEAL_P.execute(uow, {"t": tenant_id, "h": prev})
    uow.pending_audit.clear()


def _fields_of(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "seq": entry["seq"],
        "at": entry["at"].isoformat(),
        "actor": entry["actor"],
        "action": entry["action"],
        "entity_type": entry["entity_type"],
        "entity_id": entry["entity_id"],
        "before": entry["before"],
        "after": entry["after"],
        "request_id": entry["request_id"],
    }


on_before_commit(_write_pending, last=True)


@dataclass
class ChainReport:
    entries: int
    broken_at: int | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.broken_at is None


def verify_chain(uow: UnitOfWork) -> ChainReport:
    """Recompute the tenant's chain; report the first entry whose link is broken."""
    prev = GENESIS
    expected_seq = 0
    count = 0
    rows = uow.session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).yield_per(1000)
    for entry in rows:
        count += 1
        expected_seq += 1
        if entry.seq != expected_seq:
            return ChainReport(count, expected_seq, f"entry {expected_seq} is missing")
        if entry.prev_hash != prev:
            return ChainReport(count, entry.seq, "previous-hash link does not match")
        if _entry_hash(prev, _hashed_fields(entry)) != entry.hash:
            return ChainReport(count, entry.seq, "content does not match its hash")
        prev = entry.hash
    head = uow.session.scalar(select(AuditChainHead))
    if head is not None and (head.last_seq != expected_seq or head.last_hash != prev):
        return ChainReport(count, expected_seq + 1, "entries after this one were removed")
    return ChainReport(count, None, None)
