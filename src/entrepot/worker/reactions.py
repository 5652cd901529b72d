"""Who reacts to what, in one place: event type → in-process reactions.

A reaction is `fn(uow, event)` where `event` is the CloudEvents dict and
`uow` a unit of work of the event's tenant, acting as the system. The worker
commits it after the reaction returns. Delivery is at least once: a reaction
must be idempotent (dedupe by `event["id"]` when it matters). Domains add
their reactions here, e.g.

    REACTIONS["sales_order.confirmed.v1"] = [reserve_stock_for_order]
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select

from entrepot.db.uow import UnitOfWork
from entrepot.integration.models import InboundMessage
from entrepot.sales import service as sales

Reaction = Callable[[UnitOfWork, dict[str, Any]], None]

log = structlog.get_logger("entrepot.worker.reactions")

# --- carrier tracking updates (docs/integrating.md, "Carrier delivery reports") ---------------------

CARRIER_DELIVERED = "tracking.delivered"


def deliver_on_carrier_report(uow: UnitOfWork, event: dict[str, Any]) -> None:
    """A connector callback that is a carrier's delivery report marks the shipments delivered.

    The callback's JSON body (stored as the inbound message's payload):

        {"type": "tracking.delivered", "tracking_number": "1Z999AA10123456784",
         "delivered_at": "2026-11-29T10:00:00Z", "carrier": "UPS"}

    `type` and `tracking_number` are required; `delivered_at` (ISO 8601 with an offset) defaults
    to when the callback was received; `carrier` is optional and narrows the match. The rules
    (which shipments, idempotence, the event) are sales's `deliver_by_tracking`. Other types and
    tracking numbers no shipped shipment has are ignored (info); a malformed report too (warning),
    as retrying it would not make it well-formed.
    """
    message = uow.session.scalar(select(InboundMessage).where(
        InboundMessage.id == uuid.UUID(event["data"]["inbound_message_id"])))
    if message is None:
        log.warning("inbound_message_missing", event_id=event["id"])
        return
    about = {"connector": message.connector, "message_id": message.message_id}
    payload = message.payload
    if payload.get("type") != CARRIER_DELIVERED:
        log.info("inbound_message_ignored", reason="not a delivery report", type=str(payload.get("type"))[:100],
                 **about)
        return
    report = _delivery_report(payload)
    if isinstance(report, str):
        log.warning("carrier_report_ignored", reason=report, **about)
        return
    tracking_number, delivered_at, carrier = report
    outcome = sales.deliver_by_tracking(uow, tracking_number, delivered_at=delivered_at or message.received_at,
                                        carrier=carrier, connector=message.connector)
    if outcome.delivered:
        log.info("shipments_delivered", tracking_number=tracking_number,
                 shipments=[s.number for s in outcome.delivered], **about)
    elif outcome.already_delivered:
        log.info("carrier_report_ignored", reason="already delivered", tracking_number=tracking_number,
                 shipments=[s.number for s in outcome.already_delivered], **about)
    else:
        log.info("carrier_report_ignored", reason="no shipped shipment has this tracking number",
                 tracking_number=tracking_number, carrier=carrier, **about)


def _delivery_report(payload: dict[str, Any]) -> tuple[str, datetime | None, str | None] | str:
    """(tracking number, delivered at, carrier) of a delivery report, or what is wrong with it."""
    tracking_number = payload.get("tracking_number")
    if not isinstance(tracking_number, str) or not tracking_number.strip():
        return "tracking_number missing"
    carrier = payload.get("carrier")
    if carrier is not None and not isinstance(carrier, str):
        return "carrier is not a string"
    raw = payload.get("delivered_at")
    delivered_at = None
    if raw is not None:
        try:
            delivered_at = datetime.fromisoformat(raw) if isinstance(raw, str) else None
        except ValueError:
            delivered_at = None
        if delivered_at is None or delivered_at.utcoffset() is None:
            return "delivered_at is not an ISO 8601 time with an offset"
    return tracking_number.strip(), delivered_at, (carrier or "").strip() or None


REACTIONS: dict[str, list[Reaction]] = {
    "inbound_message.received.v1": [deliver_on_carrier_report],
}


def reacts_to(event_type: str) -> Callable[[Reaction], Reaction]:
    """Decorator form of adding to REACTIONS (used by tests and plug-ins)."""

    def register(fn: Reaction) -> Reaction:
        REACTIONS.setdefault(event_type, [])
        if fn not in REACTIONS[event_type]:
            REACTIONS[event_type].append(fn)
        return fn

    return register


def reactions_for(event_type: str) -> list[Reaction]:
    return list(REACTIONS.get(event_type, ()))


def reacting_types() -> list[str]:
    """Event types that have at least one reaction."""
    return sorted(kind for kind, fns in REACTIONS.items() if fns)
