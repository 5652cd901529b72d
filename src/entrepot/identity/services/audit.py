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
import uuid
from dataclasses import dataclass
from datetime import datetime
from json.encoder import encode_basestring_ascii
from typing import Any

from sqlalchemy import bindparam, select, update

from entrepot.db.audit_trail import audit, diff, snapshot
from entrepot.db.insert_if_missing import insert_if_missing
from entrepot.db.prepared import Prepared, PreparedRows, json_text
from entrepot.db.uow import UnitOfWork, on_before_commit
from entrepot.identity.models import AuditChainHead, AuditEntry
from entrepot.kernel import clock
from entrepot.kernel.ids import new_id

__all__ = ["ChainReport", "audit", "diff", "snapshot", "verify_chain"]

GENESIS = "0" * 64


def _entry_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    return _hash(prev_hash, _canonical(fields))


def _canonical(fields: dict[str, Any]) -> str:
    """The text an entry's hash covers: its fields as compact JSON, keys sorted."""
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)


def _hash(prev_hash: str, canonical: str) -> str:
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


_as_json = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str).encode
_as_json_text = encode_basestring_ascii


def _json_of(value: Any) -> str:
    """`value` as `_canonical` writes it (strings, the usual case, without the encoder's set-up)."""
    kind = type(value)
    if kind is str:
        return _as_json_text(value)
    if kind is int:
        return int.__repr__(value)
    return "null" if value is None else _as_json(value)


def _canonical_of(entry: dict[str, Any], before: str, after: str) -> str:
    """`_canonical` of the entry's hashed fields (those `_hashed_fields` reads back), put
    together from the parts, with `before` and `after` given already serialised (they are
    stored as this same text): each is written once."""
    return (
        f'{{"action":{_json_of(entry["action"])},"actor":{_json_of(entry["actor"])},"after":{after},'
        f'"at":{_json_of(entry["at"].isoformat())},"before":{before},'
        f'"entity_id":{_json_of(entry["entity_id"])},"entity_type":{_json_of(entry["entity_type"])},'
        f'"request_id":{_json_of(entry["request_id"])},"seq":{_json_of(entry["seq"])}}}'
    )


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
# `before` and `after` go in as the JSON text the hash covers (compact, keys sorted): the
# same data as `json.dumps` of the dict would store, serialised once.
_APPEND = Prepared(AuditEntry.__table__.insert().values(before=json_text("before"), after=json_text("after")),
                   columns=_APPEND_COLUMNS)
# A transaction's entries (several when it changed several records) in one multi-row INSERT on
# PostgreSQL; on SQLite one executemany, cheaper there (see PreparedRows).
_APPEND_ROWS = PreparedRows(
    AuditEntry.__table__, _APPEND_COLUMNS, single=_APPEND,
    bind=lambda column, name: json_text(name) if column in ("before", "after")
    else bindparam(name, type_=AuditEntry.__table__.c[column].type))
_CLAIM_P = Prepared(_CLAIM)
_SEAL_P = Prepared(_SEAL)
# The head this process committed last is known: the chain moves from it in one statement that
# checks it is still the head (else nothing changes and the entries are chained from the claimed
# head instead: claim, seal, three statements). On SQLite one process usually writes alone. On
# PostgreSQL (READ COMMITTED) an UPDATE that waited for another writer's lock re-checks its
# WHERE on the row that writer committed, so a stale head never matches; as several processes
# or threads often write one tenant there, a miss makes the next commits of that tenant claim
# directly for a while instead of trying first (a miss costs one statement more).
_ADVANCE_P = Prepared(
    update(_heads)
    .where(_heads.c.tenant_id == bindparam("t"), _heads.c.last_seq == bindparam("s"),
           _heads.c.last_hash == bindparam("p"))
    .values(last_seq=bindparam("n"), last_hash=bindparam("h"))
    .returning(_heads.c.last_seq)
)
_committed_heads: dict[tuple[Any, uuid.UUID], tuple[int, str]] = {}  # (engine, tenant) -> (last_seq, last_hash)
_HEADS_KEPT = 10_000
_claim_next: dict[tuple[Any, uuid.UUID], int] = {}  # (engine, tenant) -> commits left that claim directly
_CLAIMS_AFTER_A_MISS = 32


def _write_pending(uow: UnitOfWork) -> None:
    if not uow.pending_audit:
        return
    session = uow.session
    tenant_id = uow.tenant_id
    # Flush the business changes first: their row locks are taken before the chain
    # lock, in every transaction, so the two kinds of lock never wait on each other.
    session.flush()
    count = len(uow.pending_audit)
    at = clock.now()
    conn = uow.connection()
    known = (conn.engine, tenant_id)
    head = _committed_heads.get(known)
    left = _claim_next.get(known) if _claim_next else None
    if head is not None and left:
        _claim_next[known] = left - 1
        head = None
    if head is not None:
        rows, last_hash = _chain(uow, head[0], head[1], at)
        advanced = _ADVANCE_P.execute(uow, {"t": tenant_id, "s": head[0], "p": head[1], "n": head[0] + count,
                                            "h": last_hash})
        if not advanced and conn.dialect.name == "postgresql":
            if len(_claim_next) >= _HEADS_KEPT:
                _claim_next.clear()
            _claim_next[known] = _CLAIMS_AFTER_A_MISS
    if head is None or not advanced:
        claimed = _CLAIM_P.execute(uow, {"t": tenant_id, "n": count})
        if not claimed:
            insert_if_missing(conn, _heads, {"id": new_id(), "tenant_id": tenant_id, "last_seq": 0,
                                             "last_hash": GENESIS}, key=["tenant_id"])
            claimed = _CLAIM_P.execute(uow, {"t": tenant_id, "n": count})
        last_seq, prev = claimed[0]
        rows, last_hash = _chain(uow, last_seq - count, prev, at)
        _SEAL_P.execute(uow, {"t": tenant_id, "h": last_hash})
    _APPEND_ROWS.execute(uow, rows)
    uow.pending_audit.clear()
    new_head = (rows[-1]["seq"], last_hash)

    def remember() -> None:
        if len(_committed_heads) >= _HEADS_KEPT:
            _committed_heads.clear()
        _committed_heads[known] = new_head

    uow.after_commit.append(remember)


def _chain(uow: UnitOfWork, seq: int, prev: str, at: datetime) -> tuple[list[dict[str, Any]], str]:
    """The pending entries as rows chained after entry `seq` whose hash is `prev`, and the
    hash of the last one."""
    tenant_id = uow.tenant_id
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
        entry["before"] = before = _json_of(entry["before"])
        entry["after"] = after = _json_of(entry["after"])
        entry["hash"] = prev = _hash(prev, _canonical_of(entry, before, after))
        rows.append(entry)
    return rows, prev


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
    if head is None:
        return ChainReport(count, None, None)
    if head.last_seq > expected_seq:
        removed = f"entries {expected_seq + 1} to {head.last_seq} were" if head.last_seq > expected_seq + 1 \
            else f"entry {head.last_seq}, the last, was"
        return ChainReport(count, expected_seq + 1, f"{removed} removed")
    if head.last_seq < expected_seq:
        return ChainReport(count, head.last_seq + 1, f"entries from {head.last_seq + 1} on were added by hand")
    if head.last_hash != prev:
        return ChainReport(count, expected_seq, "the last entry does not match the chain head")
    return ChainReport(count, None, None)
