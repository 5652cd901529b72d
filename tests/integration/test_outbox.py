"""record_event: an event exists exactly when its change committed."""

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text

from entrepot.identity.services.api_keys import create_api_key
from entrepot.integration.models import OutboxEvent
from entrepot.integration.outbox import envelope, record_event, record_events, source_for
from entrepot.kernel import clock
from entrepot.kernel.events import EventData
from tests.conftest import make_tenant


def _count(tenant, type_):
    with tenant.uow(readonly=True) as uow:
        return uow.session.scalar(select(func.count()).where(OutboxEvent.type == type_))


def test_a_rolled_back_change_leaves_no_event(tenant):
    with tenant.uow() as uow:
        create_api_key(uow)
        # no commit
    assert _count(tenant, "api_key.created.v1") == 0


def test_a_committed_change_has_its_event_as_a_cloudevent(tenant):
    with tenant.uow() as uow:
        key = create_api_key(uow).api_key
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        row = uow.session.scalar(select(OutboxEvent).where(OutboxEvent.type == "api_key.created.v1"))
        event = envelope(row)
    assert event["specversion"] == "1.0"
    assert event["subject"] == f"api_key/{key.id}"
    assert event["tenantid"] == str(tenant.id)
    assert event["data"]["api_key_id"] == str(key.id)
    assert "key_hash" not in event["data"]
    assert set(event) >= {"id", "source", "type", "time", "subject", "datacontenttype", "dataschema"}


def _posted(n):
    from entrepot.ledger.events import JournalEntryPosted

    return [JournalEntryPosted(entry_id=str(uuid.uuid4()), journal="SAL", number=f"SAL-{i:06d}", date="2026-03-01",
                               source_type="invoice", source_id=str(uuid.uuid4()), currency="USD",
                               functional_currency="USD", total=f"{i}.50") for i in range(n)]


def test_a_batch_stores_the_rows_one_call_per_event_stores(tenant):
    # given the same events, recorded as a batch and one by one, at a moment given in another zone
    events = [(data, f"journal_entry/{data.entry_id}") for data in _posted(3)]
    moment = datetime(2026, 3, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    # when
    with clock.frozen_at(moment), tenant.uow() as uow:
        ids = record_events(uow, events)
        ids += [record_event(uow, data, subject=subject) for data, subject in events]
        uow.commit()
    # then the rows are the same, in order, with the ids given back
    with tenant.uow(readonly=True) as uow:
        rows = uow.session.scalars(select(OutboxEvent).where(OutboxEvent.type == "journal_entry.posted.v1")
                                   .order_by(OutboxEvent.seq)).all()
        stored = [(r.type, r.source, r.subject, r.time, r.data) for r in rows]
        assert [str(r.id) for r in rows] == ids
    assert stored[:3] == stored[3:]
    assert stored[0][1] == source_for(tenant.id)
    assert all(time == moment and time.utcoffset() == timedelta(0) for _, _, _, time, _ in stored)
    assert [data for *_, data in stored[:3]] == [json.loads(data.model_dump_json()) for data, _ in events]


def test_ids_and_times_are_stored_in_the_kernel_s_sqlite_form(sqlite_only):
    tenant = make_tenant(sqlite_only)
    (data,) = _posted(1)
    with clock.frozen_at(datetime(2026, 3, 1, 12, 0, 0, 5, tzinfo=UTC)), tenant.uow() as uow:
        event_id = record_event(uow, data, subject="journal_entry/1")
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        raw = uow.session.connection().exec_driver_sql(
            "SELECT id, tenant_id, time FROM outbox_events WHERE subject = 'journal_entry/1'").one()
    assert tuple(raw) == (uuid.UUID(event_id).hex, tenant.id.hex, "2026-03-01 12:00:00.000005")


def test_a_payload_of_no_registered_type_is_refused(tenant):
    class Unregistered(EventData):
        note: str

    with tenant.uow() as uow:
        record_event(uow, _posted(1)[0], subject="journal_entry/1")  # a registered type first
        with pytest.raises(ValueError, match="not a registered event type"):
            record_event(uow, Unregistered(note="x"), subject="nothing/1")


def _subjects(tenant):
    with tenant.uow(readonly=True) as uow:
        return list(uow.session.scalars(select(OutboxEvent.subject).where(OutboxEvent.type == "journal_entry.posted.v1")
                                        .order_by(OutboxEvent.seq)))


def test_a_rolled_back_savepoint_takes_its_events_with_it(tenant):
    # given events recorded before, inside a savepoint that rolls back, and inside one that is kept
    a, b, c, d = _posted(4)
    with tenant.uow() as uow:
        record_event(uow, a, subject="t/kept")
        savepoint = uow.session.begin_nested()
        record_events(uow, [(b, "t/dropped"), (c, "t/dropped")])
        savepoint.rollback()
        with uow.session.begin_nested():
            record_event(uow, d, subject="t/kept_too")
        # when it commits
        uow.commit()
    # then only the events outside the rolled-back savepoint are stored, in recording order
    assert _subjects(tenant) == ["t/kept", "t/kept_too"]


def test_a_read_of_the_outbox_in_the_transaction_sees_its_events(tenant):
    # given events recorded in a unit of work, not yet committed
    a, b, c = _posted(3)
    with tenant.uow() as uow:
        first = record_event(uow, a, subject="t/1")
        # when the same transaction reads the outbox (ORM and text)
        seen = [str(i) for i in uow.session.scalars(select(OutboxEvent.id).where(OutboxEvent.subject == "t/1"))]
        record_event(uow, b, subject="t/2")
        counted = uow.session.scalar(select(func.count()).select_from(OutboxEvent).where(OutboxEvent.subject == "t/2"))
        record_event(uow, c, subject="t/3")
        raw = uow.session.execute(text("SELECT count(*) FROM outbox_events WHERE subject = 't/3'")).scalar()
        uow.commit()
    # then it saw them, and each is stored once
    assert (seen, counted, raw) == ([first], 1, 1)
    assert _subjects(tenant) == ["t/1", "t/2", "t/3"]


def test_a_savepoint_that_rolls_back_after_its_events_were_read_leaves_none_of_them(tenant):
    # given a savepoint whose events were written early (a read of the outbox) and then more recorded
    a, b, c, d = _posted(4)
    with tenant.uow() as uow:
        record_event(uow, a, subject="t/kept")
        savepoint = uow.session.begin_nested()
        record_event(uow, b, subject="t/dropped")
        assert uow.session.scalar(select(func.count()).where(OutboxEvent.subject == "t/dropped")) == 1
        record_event(uow, c, subject="t/dropped")
        # when it rolls back and the transaction goes on
        savepoint.rollback()
        record_event(uow, d, subject="t/kept_too")
        uow.commit()
    # then none of its events are stored, the others are, once each
    assert _subjects(tenant) == ["t/kept", "t/kept_too"]


def test_a_rolled_back_transaction_drops_its_pending_events_even_when_the_session_goes_on(tenant):
    a, b = _posted(2)
    with tenant.uow() as uow:
        record_event(uow, a, subject="t/dropped")
        uow.session.rollback()
        record_event(uow, b, subject="t/kept")
        uow.commit()
    assert _subjects(tenant) == ["t/kept"]


def test_a_bare_session_commit_still_writes_the_events(tenant):
    (a,) = _posted(1)
    with tenant.uow() as uow:
        record_event(uow, a, subject="t/bare")
        uow.session.commit()
        uow.committed = True
    assert _subjects(tenant) == ["t/bare"]


@pytest.mark.parametrize("count", [2, 64, 150])
def test_a_transaction_s_events_go_in_in_recording_order(tenant, count):
    # two rows, as many as one multi-row statement takes on PostgreSQL, more than that
    events = [(data, f"t/{i:03d}") for i, data in enumerate(_posted(count))]
    with tenant.uow() as uow:
        ids = record_events(uow, events)
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        rows = uow.session.execute(select(OutboxEvent.id, OutboxEvent.subject).where(
            OutboxEvent.type == "journal_entry.posted.v1").order_by(OutboxEvent.seq)).all()
    assert [(str(i), s) for i, s in rows] == [(i, s) for i, (_, s) in zip(ids, events, strict=True)]
