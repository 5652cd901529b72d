"""Product status lifecycle: sellable (active), run-out (discontinued), or blocked."""

from __future__ import annotations

from entrepot.catalog.models import ProductStatus as S
from entrepot.kernel.states import machine

PRODUCT_STATUS = machine(
    "product",
    "status",
    [
        ("discontinue", {S.ACTIVE}, S.DISCONTINUED),
        ("block", {S.ACTIVE, S.DISCONTINUED}, S.BLOCKED),
        ("reactivate", {S.DISCONTINUED, S.BLOCKED}, S.ACTIVE),
    ],
)


def action_to(current: S, target: S) -> str | None:
    """The action that moves a product from `current` to `target` (None when already there)."""
    if current == target:
        return None
    for action in PRODUCT_STATUS.allowed_actions(current):
        t = PRODUCT_STATUS.transition_for(current, action)
        if t is not None and t.target == target:
            return action
    # No direct transition: let apply() raise InvalidTransition naming the allowed actions.
    return {S.ACTIVE: "reactivate", S.DISCONTINUED: "discontinue", S.BLOCKED: "block"}[target]
