"""The audit trail is hash-chained per tenant; tampering is detected."""

from sqlalchemy import select, text, update

from entrepot.db.engine import get_engine
from entrepot.identity.models import AuditEntry
from entrepot.identity.services.api_keys import create_api_key, revoke_api_key
from entrepot.identity.services.audit import verify_chain


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
    from entrepot.db.audit_trail import audit

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
