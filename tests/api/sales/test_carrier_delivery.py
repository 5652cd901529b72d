"""Shipments delivered from a carrier's tracking update: a signed connector callback, the worker's
reaction to inbound_message.received.v1, sales's deliver_by_tracking (real API, worker, database)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from entrepot.db.uow import platform_uow
from entrepot.integration.consumers import read_position
from entrepot.integration.feed import Position
from entrepot.integration.models import OutboxEvent
from entrepot.worker import reactions
from entrepot.worker.runtime import REACTIONS, Worker
from tests.factories.sales import act, create_order, order_desk

RECEIVED = "inbound_message.received.v1"


@pytest.fixture
def worker(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Worker, list[BaseException]]]:
    """The worker, with the registered carrier reaction watched: a reaction that raises is retried
    and then skipped, which a test could not tell from an ignored message otherwise."""
    assert reactions.deliver_on_carrier_report in reactions.reactions_for(RECEIVED)
    errors: list[BaseException] = []

    def watched(uow, event) -> None:  # type: ignore[no-untyped-def]
        try:
            reactions.deliver_on_carrier_report(uow, event)
        except Exception as exc:
            errors.append(exc)
            raise

    monkeypatch.setitem(reactions.REACTIONS, RECEIVED, [watched])
    w = Worker(url=db_url, scheduler_enabled=False)
    yield w, errors
    w.release()


def _carrier(api: Any, name: str = "parcel-co") -> tuple[str, str]:
    r = api.put(f"/inbound-connectors/{name}")
    assert r.status_code == 200, r.text
    return name, r.json()["secret"]


def _report(api: Any, connector: tuple[str, str], body: dict[str, Any], message_id: str | None = None) -> Any:
    """POST a Standard Webhooks-signed callback, as the carrier's connector does."""
    name, secret = connector
    message_id = message_id or f"msg_{uuid.uuid4().hex}"
    payload = json.dumps(body)
    now = datetime.now(UTC)
    return api.post(f"/inbound/{name}", content=payload.encode(), headers={
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, now, payload),
        "content-type": "application/json",
    })


def _react_through(worker: tuple[Worker, list[BaseException]], api: Any, inbound_id: str,
                   timeout: float = 30.0) -> None:
    """Run the worker's reaction step until its cursor has passed the message's event (on PostgreSQL
    the feed holds events back while older transactions are in flight)."""
    w, errors = worker
    with api.tenant.uow(readonly=True) as uow:
        row = uow.session.scalar(select(OutboxEvent).where(
            OutboxEvent.type == RECEIVED, OutboxEvent.subject.endswith(f"/{inbound_id}")))
        assert row is not None
        target = Position.of(row)
    deadline = time.monotonic() + timeout
    while True:
        w.react()
        assert not errors, errors
        with platform_uow(readonly=True, url=w.url) as uow:
            position = read_position(uow.session, REACTIONS)
        if position is not None and position >= target:
            return
        assert time.monotonic() < deadline, "the worker did not react to the message in time"
        time.sleep(0.02)


def _shipped(api: Any, tracking_number: str, carrier: str | None = "UPS") -> dict[str, Any]:
    desk = order_desk(api, stock=5)
    order = create_order(api, desk, 2)
    act(api, f"/sales-orders/{order['id']}/confirm")
    shipment = act(api, "/shipments", 201, {"sales_order_id": order["id"]})
    return act(api, f"/shipments/{shipment['id']}/ship", json={"carrier": carrier,
                                                               "tracking_number": tracking_number})


def _delivered_events(api: Any, shipment: dict[str, Any]) -> list[dict[str, Any]]:
    """The shipment's shipment.delivered.v1 payloads, read from the outbox (committed by the time
    the reaction's cursor moved past the message: no waiting for the feed, even to see none)."""
    with api.tenant.uow(readonly=True) as uow:
        return list(uow.session.scalars(select(OutboxEvent.data).where(
            OutboxEvent.type == "shipment.delivered.v1", OutboxEvent.subject == f"shipment/{shipment['id']}")
            .order_by(OutboxEvent.seq)))


def _delivered_at(api: Any, shipment: dict[str, Any]) -> tuple[str, datetime | None]:
    body = api.get(f"/shipments/{shipment['id']}").json()
    at = body["delivered_at"]
    return body["status"], datetime.fromisoformat(at.replace("Z", "+00:00")) if at else None


def test_a_carriers_delivery_report_delivers_the_shipped_shipment_at_the_carriers_time(api, worker):
    # given a shipped shipment with its tracking number, and the carrier's connector
    shipment = _shipped(api, "1Z999AA10123456784")
    connector = _carrier(api)
    # when the carrier reports it delivered (its own time, another offset) and the worker reacts
    r = _report(api, connector, {"type": "tracking.delivered", "tracking_number": "1Z999AA10123456784",
                                 "delivered_at": "2026-11-29T11:00:00+01:00", "carrier": "ups"})
    assert r.status_code == 202, r.text
    _react_through(worker, api, r.json()["id"])
    # then the shipment is delivered at the carrier's time, with one event saying the carrier reported it
    assert _delivered_at(api, shipment) == ("delivered", datetime(2026, 11, 29, 10, 0, tzinfo=UTC))
    assert _delivered_events(api, shipment) == [{"shipment_id": shipment["id"], "number": shipment["number"],
                                 "sales_order_id": shipment["sales_order_id"],
                                 "delivered_at": "2026-11-29T10:00:00+00:00", "reported_by": "carrier",
                                                 "connector": "parcel-co"}]


def test_a_repeated_or_later_report_changes_nothing(api, worker):
    # given a shipment a carrier report has delivered
    shipment = _shipped(api, "JD0001")
    connector = _carrier(api)
    body = {"type": "tracking.delivered", "tracking_number": "JD0001", "delivered_at": "2026-11-29T10:00:00Z"}
    first = _report(api, connector, body, message_id="msg_first")
    _react_through(worker, api, first.json()["id"])
    assert _delivered_events(api, shipment)
    # when the same callback is sent again, and the carrier sends a second report later
    again = _report(api, connector, body, message_id="msg_first")
    later = _report(api, connector, {**body, "delivered_at": "2026-11-30T08:00:00Z"}, message_id="msg_later")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert later.status_code == 202, later.text
    _react_through(worker, api, later.json()["id"])
    # then the shipment keeps its first delivery time, and there is still one delivered event
    assert _delivered_at(api, shipment) == ("delivered", datetime(2026, 11, 29, 10, 0, tzinfo=UTC))
    assert len(_delivered_events(api, shipment)) == 1


def test_unknown_tracking_numbers_other_updates_and_bad_reports_are_ignored(api, worker):
    # given a shipped shipment of carrier UPS
    shipment = _shipped(api, "1ZKNOWN")
    connector = _carrier(api)
    # when reports arrive that do not deliver it: an unknown number, another carrier, an update
    # that is not a delivery, a delivery time without a zone, and a body that is no tracking update
    ids = [_report(api, connector, body).json()["id"] for body in (
        {"type": "tracking.delivered", "tracking_number": "1ZUNKNOWN"},
        {"type": "tracking.delivered", "tracking_number": "1ZKNOWN", "carrier": "FedEx"},
        {"type": "tracking.in_transit", "tracking_number": "1ZKNOWN"},
        {"type": "tracking.delivered", "tracking_number": "1ZKNOWN", "delivered_at": "2026-11-29T10:00:00"},
        {"tracking": "1ZKNOWN", "status": "delivered"},
    )]
    _react_through(worker, api, ids[-1])
    # then the reaction passed them all without failing, and the shipment is still shipped
    assert _delivered_at(api, shipment) == ("shipped", None)
    assert _delivered_events(api, shipment) == []


def test_a_report_without_a_time_delivers_at_receipt_and_by_hand_says_hand(api, worker):
    # given two shipped shipments, one without a carrier recorded
    by_carrier = _shipped(api, "NOTIME1", carrier=None)
    by_hand = _shipped(api, "HAND1")
    connector = _carrier(api, "carrier-x")
    # when the carrier reports the first without a time, and someone delivers the second by hand
    r = _report(api, connector, {"type": "tracking.delivered", "tracking_number": "NOTIME1", "carrier": "DHL"})
    _react_through(worker, api, r.json()["id"])
    act(api, f"/shipments/{by_hand['id']}/deliver")
    # then the first is delivered at about when the callback came in, reported by the carrier
    status, at = _delivered_at(api, by_carrier)
    assert status == "delivered" and at is not None and abs((datetime.now(UTC) - at).total_seconds()) < 120
    assert _delivered_events(api, by_carrier)[0]["reported_by"] == "carrier"
    # and the second's event says it was set by hand
    [data] = _delivered_events(api, by_hand)
    assert (data["reported_by"], data["connector"]) == ("hand", None)
