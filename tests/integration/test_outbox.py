"""record_event: an event exists exactly when its change committed."""

from sqlalchemy import func, select

from entrepot.identity.services.api_keys import create_api_key
from entrepot.integration.models import OutboxEvent
from entrepot.integration.outbox import envelope


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
