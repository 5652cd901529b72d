"""Product, customer and supplier status machines: every (state, action) pair, and the docs match the code."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from entrepot.catalog.states import PRODUCT_STATUS
from entrepot.kernel.errors import InvalidTransition
from entrepot.parties.states import CUSTOMER_STATUS, SUPPLIER_STATUS

MACHINES = [PRODUCT_STATUS, CUSTOMER_STATUS, SUPPLIER_STATUS]
DOC = Path(__file__).resolve().parents[3] / "docs" / "master-data.md"
PAIRS = [(m, s, a) for m in MACHINES for s in m.states() for a in m.actions]


@pytest.mark.parametrize("machine,state,action", PAIRS, ids=[f"{m.document}:{s}:{a}" for m, s, a in PAIRS])
def test_every_state_action_pair(machine, state, action):
    doc = SimpleNamespace(status=state)
    allowed = machine.transition_for(state, action)
    if allowed is None:
        with pytest.raises(InvalidTransition) as info:
            machine.apply(doc, action)
        assert info.value.allowed_actions == machine.allowed_actions(state)
        assert doc.status == state
    else:
        machine.apply(doc, action)
        assert doc.status == allowed.target


@pytest.mark.parametrize("machine", MACHINES, ids=[m.document for m in MACHINES])
def test_docs_show_the_diagram_of_the_code(machine):
    assert machine.mermaid().strip() in DOC.read_text(), f"docs/master-data.md: {machine.document} diagram drifted"
