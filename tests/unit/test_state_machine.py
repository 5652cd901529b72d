from enum import StrEnum

import pytest

from entrepot.kernel.errors import InvalidTransition
from entrepot.kernel.states import SYSTEM, machine


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


def test_the_refusal_reads_as_english_whatever_the_document():
    assert str(InvalidTransition("door", "locked", "open", ["unlock"])) == (
        "cannot open a door in state locked; allowed: unlock")
    assert str(InvalidTransition("invoice", "paid", "pay", [])) == "cannot pay an invoice in state paid; allowed: none"


def test_mermaid_lists_every_transition():
    text = DOOR.mermaid()
    assert "closed --> locked: lock" in text
    assert text.count("-->") == 4


def test_a_system_row_moves_the_state_but_is_never_offered():
    # given a machine where the alarm locks the door by itself
    door = machine("door", "state", [
        ("close", [Door.open], Door.closed),
        ("lock", [Door.closed], Door.locked, SYSTEM),
        ("unlock", [Door.locked], Door.closed),
    ])
    thing = Thing(Door.closed)
    # then a caller is not offered it, in the list or in a refusal
    assert door.allowed_actions(Door.closed) == []
    with pytest.raises(InvalidTransition) as info:
        door.apply(thing, "unlock")
    assert info.value.allowed_actions == []
    # and the service still takes it, the diagram showing whose step it is
    door.apply(thing, "lock")
    assert thing.state == Door.locked
    assert "closed --> locked: lock (system)" in door.mermaid()


def test_an_unknown_row_flag_is_refused():
    with pytest.raises(ValueError):
        machine("door", "state", [("lock", [Door.closed], Door.locked, "sytem")])
