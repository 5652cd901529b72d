from enum import StrEnum

import pytest

from entrepot.kernel.errors import InvalidTransition
from entrepot.kernel.states import machine


class Door(StrEnum):
    open = "open"
    closed = "closed"
    locked = "locked"


DOOR = machine("door", "state", [
    ("close", [Door.open], Door.closed),
    ("open", [Door.closed], Door.open),
    ("lock", [Door.closed], Door.locked),
    ("unlock", [Door.locked], Door.closed),
])


class Thing:
    def __init__(self, state):
        self.state = state


def test_apply_moves_the_state_and_returns_the_transition():
    thing = Thing(Door.open)
    t = DOOR.apply(thing, "close")
    assert thing.state == Door.closed
    assert t.target == Door.closed


def test_a_forbidden_action_names_the_allowed_ones():
    thing = Thing(Door.locked)
    with pytest.raises(InvalidTransition) as info:
        DOOR.apply(thing, "open")
    assert info.value.allowed_actions == ["unlock"]
    assert info.value.status == 409
    assert thing.state == Door.locked


def test_mermaid_lists_every_transition():
    text = DOOR.mermaid()
    assert "closed --> locked: lock" in text
    assert text.count("-->") == 4
