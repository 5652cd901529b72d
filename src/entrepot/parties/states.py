"""Customer and supplier account status: who may be sold to / bought from."""

from __future__ import annotations

from entrepot.kernel.states import StateMachine, machine
from entrepot.parties.models import CustomerStatus as C
from entrepot.parties.models import SupplierStatus as S

CUSTOMER_STATUS = machine(
    "customer",
    "status",
    [
        ("hold", {C.ACTIVE}, C.ON_HOLD),  # credit or dispute hold: no new orders confirmed
        ("release", {C.ON_HOLD}, C.ACTIVE),
        ("block", {C.ACTIVE, C.ON_HOLD}, C.BLOCKED),
        ("unblock", {C.BLOCKED}, C.ACTIVE),
    ],
)

SUPPLIER_STATUS = machine(
    "supplier",
    "status",
    [
        ("block", {S.ACTIVE}, S.BLOCKED),
        ("unblock", {S.BLOCKED}, S.ACTIVE),
    ],
)


def action_to(sm: StateMachine, current: str, target: str) -> str | None:  # type: ignore[type-arg]
    """The action moving `current` to `target`; None when already there. When no direct
    transition exists, an action towards the target is returned so `apply` names the allowed ones."""
    if current == target:
        return None
    for action in sm.allowed_actions(current):
        t = sm.transition_for(current, action)
        if t is not None and t.target == target:
            return action
    for t in sm.transitions:
        if t.target == target:
            return t.action
    return None
