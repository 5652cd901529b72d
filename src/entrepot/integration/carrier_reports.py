"""Carrier tracking updates received on an inbound connector (docs/integrating.md, "Carrier delivery
reports"): the protocol only. What a delivery changes is sales's (`deliver_by_tracking`), called by the
worker's reaction.

    {"type": "tracking.delivered", "tracking_number": "1Z999AA10123456784",
     "delivered_at": "2026-11-29T10:00:00Z", "carrier": "UPS"}

`type` and `tracking_number` are required; `delivered_at` (ISO 8601 with an offset) is optional, and
`carrier` narrows the match.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

DELIVERED = "tracking.delivered"


@dataclass(frozen=True)
class DeliveryReport:
    tracking_number: str
    delivered_at: datetime | None
    carrier: str | None


def is_delivery_report(payload: dict[str, Any]) -> bool:
    return payload.get("type") == DELIVERED


def delivery_report(payload: dict[str, Any]) -> DeliveryReport | str:
    """The report a delivery payload carries, or what is wrong with it."""
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
    return DeliveryReport(tracking_number.strip(), delivered_at, (carrier or "").strip() or None)
