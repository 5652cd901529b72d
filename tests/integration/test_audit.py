"""The audit trail is hash-chained per tenant; tampering is detected."""

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import event, select, text, update
from sqlalchemy.engine import Engine

from entrepot.db.engine import get_engine
from entrepot.identity.models import AuditEntry
from entrepot.identity.services import audit as chain
from entrepot.identity.services.api_keys import create_api_key, revoke_api_key
from entrepot.identity.services.audit import audit, verify_chain


def test_writes_are_audited_with_actor_and_diff(tenant):
    with tenant.uow() as uow:
        key = create_api_key(uow, role="viewer").api_key
        uow.commit()
    with tenant.uow() as uow:
        revoke_api_key(uow, str(key.id))
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        entries = uow.session.scalars(select(AuditEntry).order_by(AuditEntry.seq)).all()
        report = verify_chain(uow)
    actions = [e.action for e in entries]
    assert actions[-2:] == ["api_key.create", "api_key.revoke"]
    assert "tenant.create" in actions
    revoke = entries[-1]
    assert set(revoke.after) == {"revoked_at"}
    assert revoke.before == {"revoked_at": None}
    assert revoke.actor == "system"
    assert report.ok and report.entries == len(entries)


def test_tampering_with_an_entry_is_reported_at_that_entry(tenant):
    # given a chain of four entries
    with tenant.uow() as uow:
        for _ in range(3):
            create_api_key(uow)
        uow.commit()
    # when someone with database access edits entry 2 directly
    with get_engine(tenant.url).begin() as conn:
        conn.execute(update(AuditEntry).where(AuditEntry.tenant_id == tenant.id, AuditEntry.seq == 2)
                     .values(actor="user:someone-else"))
    # then verification names entry 2
    with tenant.uow(readonly=True) as uow:
        report = verify_chain(uow)
    assert not report.ok
    assert report.broken_at == 2


def test_deleting_the_last_entry_is_reported(tenant):
    with tenant.uow() as uow:
        create_api_key(uow)
        uow.commit()
    with get_engine(tenant.url).begin() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE tenant_id = :t AND seq = 2"),
                     {"t": tenant.id.hex if tenant.url.startswith("sqlite") else tenant.id})
    with tenant.uow(readonly=True) as uow:
        report = verify_chain(uow)
    assert report.broken_at == 2


def test_a_rolled_back_savepoint_takes_its_audit_entries_with_it(tenant):
    # given a unit of work that audits, then audits inside a savepoint that rolls back
    with tenant.uow() as uow:
        audit(uow, "thing.kept", "thing", None, after={"n": 1})
        savepoint = uow.session.begin_nested()
        audit(uow, "thing.dropped", "thing", None, after={"n": 2})
        savepoint.rollback()
        with uow.session.begin_nested():
            audit(uow, "thing.kept_too", "thing", None, after={"n": 3})
        # when it commits
        uow.commit()

    # then only the entries outside the rolled-back savepoint are on the trail
    with tenant.uow(readonly=True) as uow:
        actions = [e.action for e in uow.session.scalars(select(AuditEntry).order_by(AuditEntry.seq))]
    assert "thing.dropped" not in actions
    assert actions[-2:] == ["thing.kept", "thing.kept_too"]


def test_the_text_hashed_at_commit_is_the_text_verification_recomputes():
    # given entries as services record them, with what JSON must escape or convert
    at = datetime(2026, 3, 1, 12, 30, 0, 5, tzinfo=UTC)
    entries = [
        {"action": "sales.order.confirm", "entity_type": "sales_order", "entity_id": "0190-ab", "seq": 7,
         "actor": "user:5", "request_id": "req-1", "at": at,
         "before": {"state": "draft", "lines": [{"qty": "1.0000", "note": None}]},
         "after": {"state": "confirmed", "z": 1, "a": [True, 2.5, "Ünïcode \"quoted\"\n"]}},
        {"action": "x", "entity_type": "y", "entity_id": None, "seq": 1, "actor": "system", "request_id": None,
         "at": at, "before": None, "after": {"odd": Decimal("1.5"), "nested": {"b": 1, "a": {}}}},
    ]
    for entry in entries:
        # when the commit hook builds the hashed text from the parts
        built = chain._canonical_of(entry, chain._json_of(entry["before"]), chain._json_of(entry["after"]))
        # then it is the text the verifier makes from the fields it reads back
        fields = {k: entry[k] for k in ("seq", "actor", "action", "entity_type", "entity_id", "before", "after",
                                        "request_id")} | {"at": at.isoformat()}
        assert built == chain._canonical(fields)


def test_stored_before_and_after_read_back_as_recorded(tenant):
    # given an audit entry with nested, unicode and null values
    after = {"name": "Ünïcode \"quoted\"", "lines": [{"qty": "1.0000", "lot": None}], "flag": True}
    with tenant.uow() as uow:
        audit(uow, "thing.change", "thing", "T-1", before={"name": "old", "lines": []}, after=after)
        audit(uow, "thing.create", "thing", "T-2", after={"name": "new"})
        uow.commit()
    # then it reads back as recorded (the diff keeps what changed), and the chain verifies
    with tenant.uow(readonly=True) as uow:
        change, create = uow.session.scalars(
            select(AuditEntry).where(AuditEntry.entity_type == "thing").order_by(AuditEntry.seq)).all()
        report = verify_chain(uow)
    assert change.after == after and change.before == {"name": "old", "lines": [], "flag": None}
    assert create.before is None and create.after == {"name": "new"}
    assert report.ok


def _audited_commit(tenant, n: int) -> list[str]:
    """Commit one audited change; the statements sent on the tenant's chain head."""
    sent: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        sent.append(statement)

    event.listen(Engine, "before_cursor_execute", record)
    try:
        with tenant.uow() as uow:
            audit(uow, "thing.change", "thing", f"T-{n}", after={"n": n})
            uow.commit()
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    return [s for s in sent if "audit_chain_heads" in s]


def _verified_things(tenant) -> list[str]:
    """The chain verifies; the audited things' ids in chain order."""
    with tenant.uow(readonly=True) as uow:
        assert verify_chain(uow).ok
        return [e.entity_id for e in uow.session.scalars(
            select(AuditEntry).where(AuditEntry.entity_type == "thing").order_by(AuditEntry.seq))]


def test_the_chain_stays_whole_when_another_process_moved_its_head(tenant):
    # given a tenant's chain this process has appended to
    _audited_commit(tenant, 1)
    head_statements = _audited_commit(tenant, 2)
    if tenant.url.startswith("sqlite"):
        # on SQLite the head this process committed is advanced in one statement
        assert len(head_statements) == 1
    # when another writer appends behind this process's back (its entries and head are its own)
    with tenant.uow() as uow:
        remembered = dict(chain._committed_heads)
        audit(uow, "thing.change", "thing", "elsewhere", after={"n": 3})
        uow.commit()
    chain._committed_heads.update(remembered)  # this process still believes the older head
    _audited_commit(tenant, 4)
    # then the next append still chains from the real head
    assert _verified_things(tenant) == ["T-1", "T-2", "elsewhere", "T-4"]


def test_a_rolled_back_unit_of_work_leaves_the_head_this_process_knows(tenant):
    _audited_commit(tenant, 1)
    # given a unit of work that audits and then rolls back
    with tenant.uow() as uow:
        audit(uow, "thing.change", "thing", "rolled-back", after={"n": 2})
        uow.session.flush()
        # (the commit hook writes its entries, then the transaction is abandoned)
        chain._write_pending(uow)
    # when the next one commits
    _audited_commit(tenant, 3)
    # then the chain has no gap and verifies
    assert _verified_things(tenant) == ["T-1", "T-3"]


def test_an_append_that_waited_for_another_writer_chains_after_it(pg_url):
    # given a tenant whose head this process knows, and a writer holding the head's lock
    import threading

    from tests.conftest import make_tenant

    tenant = make_tenant(pg_url)
    _audited_commit(tenant, 1)
    holder = tenant.uow().__enter__()
    audit(holder, "thing.change", "thing", "T-held", after={"n": 2})
    chain._write_pending(holder)  # moved the head from the known one; locked until it commits
    # when another transaction appends from the same known head (it waits for the lock)
    done = threading.Event()
    threading.Thread(target=lambda: (_audited_commit(tenant, 3), done.set()), daemon=True).start()
    assert not done.wait(0.5)
    holder.commit()
    holder.__exit__(None, None, None)
    assert done.wait(10)
    # then the waiting append chained after the holder's entry, and the chain verifies
    assert _verified_things(tenant) == ["T-1", "T-held", "T-3"]


def test_what_was_done_to_the_end_of_the_chain_is_said_as_it_was(tenant):
    from entrepot.identity.models import AuditChainHead

    tid = tenant.id.hex if tenant.url.startswith("sqlite") else tenant.id
    with tenant.uow() as uow:
        for _ in range(3):
            create_api_key(uow)
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        last = uow.session.scalar(select(AuditEntry.seq).order_by(AuditEntry.seq.desc()).limit(1))
    # when the last entry is rewritten with a hash recomputed to match (only the chain head knows)
    with tenant.uow(readonly=True) as uow:
        entry = uow.session.scalar(select(AuditEntry).where(AuditEntry.seq == last))
        entry.actor = "user:someone-else"
        forged = chain._entry_hash(entry.prev_hash, chain._hashed_fields(entry))
    with get_engine(tenant.url).begin() as conn:
        conn.execute(text("UPDATE audit_entries SET actor = 'user:someone-else', hash = :h "
                          "WHERE tenant_id = :t AND seq = :s"), {"h": forged, "t": tid, "s": last})
    with tenant.uow(readonly=True) as uow:
        replaced = verify_chain(uow)
    # then it is named, not an entry after it
    assert (replaced.broken_at, replaced.reason) == (last, "the last entry does not match the chain head"), replaced
    # and when the last two entries are deleted, the report names them as removed
    with get_engine(tenant.url).begin() as conn:
        conn.execute(text("DELETE FROM audit_entries WHERE tenant_id = :t AND seq >= :s"), {"t": tid, "s": last - 1})
    with tenant.uow(readonly=True) as uow:
        removed = verify_chain(uow)
        assert uow.session.scalar(select(AuditChainHead.last_seq)) == last
    assert (removed.broken_at, removed.reason) == (last - 1, f"entries {last - 1} to {last} were removed"), removed
