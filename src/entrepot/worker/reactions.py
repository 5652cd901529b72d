"""Who reacts to what, in one place: event type → in-process reactions.

A reaction is `fn(uow, event)` where `event` is the CloudEvents dict and
`uow` a unit of work of the event's tenant, acting as the system. The worker
commits it after the reaction returns. Delivery is at least once: a reaction
must be idempotent (dedupe by `event["id"]` when it matters). Domains add
their reactions here, e.g.

    REACTIONS["sales_order.confirmed.v1"] = [reserve_stock_for_order]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from entrepot.db.uow import UnitOfWork

Reaction = Callable[[UnitOfWork, dict[str, Any]], None]

REACTIONS: dict[str, list[Reaction]] = {}


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
