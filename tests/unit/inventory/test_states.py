"""Every (state, action) pair of the inventory machines, and the docs diagrams match the code."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from entrepot.inventory.states import STOCK_COUNT, TRANSFER
from entrepot.kernel.errors import InvalidTransition

DOC = Path(__file__).resolve().parents[3] / "docs" / "inventory.md"
MACHINES = [TRANSFER, STOCK_COUNT]
PAIRS = [(m, s, a) for m in MACHINES for s in m.states() for a in m.actions]


@pytest.mark.parametrize("machine,state,action", PAIRS, ids=[f"{m.document}:{s}:{a}" for m, s, a in PAIRS])
def test_every_state_action_pair(machine, state, action):
    doc = SimpleNamespace(status=state)
    allowed = machine.transition_for(state, action)
    if allowed is None:
        with pytest.raises(InvalidTransition) as err:
            machine.apply(doc, action)
        assert err.value.allowed_actions == machine.allowed_actions(state)
        assert doc.status == state
    else:
        machine.apply(doc, action)
        assert doc.status == allowed.target


def test_docs_diagrams_match_the_code():
    text = DOC.read_text()
    blocks = re.findall(r"```mermaid\n(.*?)```", text, re.S)
    for machine in MACHINES:
        assert machine.mermaid() in blocks, f"docs/inventory.md: diagram of {machine.document} drifted"
