"""Every (state, action) pair of every sales and billing machine, and the committed diagrams.

Regenerate docs/state-machines.md with:
    .venv/bin/python -m tests.unit.sales.test_states
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import pytest

from entrepot.billing.states import MACHINES as BILLING
from entrepot.billing.states import InvoiceStatus
from entrepot.kernel.errors import InvalidTransition
from entrepot.kernel.states import StateMachine
from entrepot.sales.states import MACHINES as SALES
from entrepot.sales.states import OrderInvoiceStatus, OrderStatus, QuoteStatus, ReturnStatus, ShipmentStatus

DOC = Path(__file__).resolve().parents[3] / "docs" / "state-machines.md"
MACHINES: dict[str, tuple[StateMachine, type[StrEnum]]] = {
    "sales_order": (SALES["sales_order"], OrderStatus),
    "sales_order_invoicing": (SALES["sales_order_invoicing"], OrderInvoiceStatus),
    "shipment": (SALES["shipment"], ShipmentStatus),
    "quote": (SALES["quote"], QuoteStatus),
    "return": (SALES["return"], ReturnStatus),
    "invoice": (BILLING["invoice"], InvoiceStatus),
}

# The expected table, written out by hand: (machine, state, action) -> new state; absent = refused.
EXPECTED = {
    ("sales_order", "draft", "confirm"): "confirmed",
    ("sales_order", "draft", "hold"): "on_hold",
    ("sales_order", "on_hold", "release_hold"): "confirmed",
    ("sales_order", "confirmed", "ship_partially"): "partially_shipped",
    ("sales_order", "partially_shipped", "ship_partially"): "partially_shipped",
    ("sales_order", "confirmed", "ship"): "shipped",
    ("sales_order", "partially_shipped", "ship"): "shipped",
    ("sales_order", "confirmed", "allocate"): "confirmed",
    ("sales_order", "partially_shipped", "allocate"): "partially_shipped",
    ("sales_order", "partially_shipped", "close"): "closed",
    ("sales_order", "shipped", "close_fulfilled"): "closed",
    ("sales_order", "draft", "cancel"): "cancelled",
    ("sales_order", "on_hold", "cancel"): "cancelled",
    ("sales_order", "confirmed", "cancel"): "cancelled",
    ("sales_order_invoicing", "not_invoiced", "invoice_partially"): "partially_invoiced",
    ("sales_order_invoicing", "partially_invoiced", "invoice_partially"): "partially_invoiced",
    ("sales_order_invoicing", "not_invoiced", "invoice"): "invoiced",
    ("sales_order_invoicing", "partially_invoiced", "invoice"): "invoiced",
    ("shipment", "draft", "pick"): "picked",
    ("shipment", "picked", "pack"): "packed",
    ("shipment", "draft", "ship"): "shipped",
    ("shipment", "picked", "ship"): "shipped",
    ("shipment", "packed", "ship"): "shipped",
    ("shipment", "shipped", "deliver"): "delivered",
    ("shipment", "draft", "cancel"): "cancelled",
    ("shipment", "picked", "cancel"): "cancelled",
    ("shipment", "packed", "cancel"): "cancelled",
    ("quote", "draft", "send"): "sent",
    ("quote", "draft", "accept"): "accepted",
    ("quote", "sent", "accept"): "accepted",
    ("quote", "sent", "decline"): "declined",
    ("quote", "draft", "expire"): "expired",
    ("quote", "sent", "expire"): "expired",
    ("return", "authorised", "receive"): "received",
    ("return", "received", "credit"): "credited",
    ("return", "authorised", "cancel"): "cancelled",
    ("invoice", "posted", "pay_partially"): "partially_paid",
    ("invoice", "partially_paid", "pay_partially"): "partially_paid",
    ("invoice", "posted", "pay"): "paid",
    ("invoice", "partially_paid", "pay"): "paid",
    ("invoice", "posted", "credit"): "credited",
    ("invoice", "partially_paid", "credit"): "credited",
}

# Taken by the service as the consequence of another step, never offered to a caller (SYSTEM rows).
SYSTEM_ONLY = {
    ("sales_order", "hold"), ("sales_order", "ship_partially"), ("sales_order", "ship"),
    ("sales_order", "close_fulfilled"),
    ("sales_order_invoicing", "invoice_partially"), ("sales_order_invoicing", "invoice"),
    ("quote", "expire"),
    ("invoice", "pay_partially"), ("invoice", "pay"), ("invoice", "credit"),
}


def offered(name: str, state: str) -> list[str]:
    """What a caller may do from `state`: the expected table without the system-only actions."""
    return sorted(a for (n, s, a) in EXPECTED if n == name and s == state and (n, a) not in SYSTEM_ONLY)


PAIRS = [(name, state.value, action) for name, (m, enum) in MACHINES.items() for state in enum for action in m.actions]


class Doc:
    def __init__(self, attr: str, state: str) -> None:
        setattr(self, attr, state)


@pytest.mark.parametrize("name,state,action", PAIRS, ids=[f"{n}:{s}:{a}" for n, s, a in PAIRS])
def test_every_state_and_action(name, state, action):
    machine, enum = MACHINES[name]
    doc = Doc(machine.state_attr, enum(state))
    expected = EXPECTED.get((name, state, action))
    if expected is None:
        # a refused action is a 409 naming what the state allows, and changes nothing
        with pytest.raises(InvalidTransition) as info:
            machine.apply(doc, action)
        assert info.value.status == 409
        assert info.value.allowed_actions == offered(name, state)
        assert getattr(doc, machine.state_attr) == state
    else:
        machine.apply(doc, action)
        assert getattr(doc, machine.state_attr) == expected


@pytest.mark.parametrize("name,state", sorted({(n, s) for n, s, _ in PAIRS}))
def test_allowed_actions_leave_out_system_transitions(name, state):
    machine, enum = MACHINES[name]
    assert machine.allowed_actions(enum(state)) == offered(name, state)


def test_a_shipped_order_offers_nothing_and_a_partially_shipped_one_offers_close():
    # shipped closes by itself once invoiced; POST /sales-orders/{id}/close is the short close
    assert SALES["sales_order"].allowed_actions(OrderStatus.shipped) == []
    assert SALES["sales_order"].allowed_actions(OrderStatus.partially_shipped) == ["allocate", "close"]


def test_terminal_states_allow_nothing():
    assert SALES["sales_order"].allowed_actions(OrderStatus.cancelled) == []
    assert SALES["sales_order"].allowed_actions(OrderStatus.closed) == []
    assert BILLING["invoice"].allowed_actions(InvoiceStatus.paid) == []


def render() -> str:
    parts = ["# State machines\n",
             "Generated from `sales/states.py` and `billing/states.py` by "
             "`.venv/bin/python -m tests.unit.sales.test_states`; a test fails when this file drifts from the code.\n",
             "A transition marked `(system)` is taken by the service as the consequence of another step (a credit "
             "hold, a shipment, an invoice, a payment, the scheduler) and is never in `allowed_actions`; every other "
             "action is a route: `POST /<collection>/{id}/<action>`, `_` written `-`.\n"]
    for name, (machine, _) in MACHINES.items():
        parts.append(f"## {machine.document} (`{name}.{machine.state_attr}`)\n")
        parts.append("```mermaid\n" + machine.mermaid() + "```\n")
    return "\n".join(parts)


def test_committed_diagrams_match_the_code():
    assert DOC.exists(), "run: .venv/bin/python -m tests.unit.sales.test_states"
    assert DOC.read_text() == render(), \
        "docs/state-machines.md drifted; run: .venv/bin/python -m tests.unit.sales.test_states"


if __name__ == "__main__":
    DOC.write_text(render())
    print(f"wrote {DOC}")
