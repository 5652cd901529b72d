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
from typing import Any

import structlog
from sqlalchemy import select

from entrepot.db.uow import UnitOfWork
from entrepot.integration import carrier_reports
from entrepot.integration.models import InboundMessage
from entrepot.sales import service as sales

Reaction = Callable[[UnitOfWork, dict[str, Any]], None]

log = structlog.get_logger("entrepot.worker.reactions")


def deliver_on_carrier_report(uow: UnitOfWork, event: dict[str, Any]) -> None:
    """A connector callback that is a carrier's delivery report (integration/carrier_reports.py) marks
    the shipments delivered, at the carrier's time or else when the callback was received. The rules
    (which shipments, idempotence, the event) are sales's `deliver_by_tracking`. Other updates and
    tracking numbers no shipped shipment has are ignored (info); a malformed report too (warning), as
    retrying it would not make it well-formed."""
    message = uow.session.scalar(select(InboundMessage).where(
        InboundMessage.id == uuid.UUID(event["data"]["inbound_message_id"])))
    if message is None:
        log.warning("inbound_message_missing", event_id=event["id"])
        return
    about = {"connector": message.connector, "message_id": message.message_id}
    payload = message.payload
    if not carrier_reports.is_delivery_report(payload):
        log.info("inbound_message_ignored", reason="not a delivery report", type=str(payload.get("type"))[:100],
                 **about)
        return
    report = carrier_reports.delivery_report(payload)
    if isinstance(report, str):
        log.warning("carrier_report_ignored", reason=report, **about)
        return
    outcome = sales.deliver_by_tracking(uow, report.tracking_number,
                                        delivered_at=report.delivered_at or message.received_at,
                                        carrier=report.carrier, connector=message.connector)
    if outcome.delivered:
        log.info("shipments_delivered", tracking_number=report.tracking_number,
                 shipments=[s.number for s in outcome.delivered], **about)
    elif outcome.already_delivered:
        log.info("carrier_report_ignored", reason="already delivered", tracking_number=report.tracking_number,
                 shipments=[s.number for s in outcome.already_delivered], **about)
    else:
        log.info("carrier_report_ignored", reason="no shipped shipment has this tracking number",
                 tracking_number=report.tracking_number, carrier=report.carrier, **about)


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
