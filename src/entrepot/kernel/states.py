"""Declared state machines.

A document's lifecycle is one table: action -> (from states, to state, guard).
`StateMachine.apply` is the only code that assigns a document's state field;
it raises `InvalidTransition` naming the allowed actions, and returns the
transition so the caller can record its event.

`allowed_actions` are what an API caller can do next, each the name of a route
(`release_hold` is `POST /<collection>/{id}/release-hold`). A row the service
takes by itself, as the consequence of another step (a credit hold on confirm,
a shipment moving its order, the scheduler's expiry), is marked `SYSTEM`: it
moves the state like any other but is never listed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from entrepot.kernel.errors import InvalidTransition

S = TypeVar("S", bound=StrEnum)

SYSTEM = "system"  # a row's fourth element: taken by the service itself, never in allowed_actions


@dataclass(frozen=True)
class Transition(Generic[S]):
    action: str
    sources: frozenset[S]
    target: S
    guard: Callable[[Any], str | None] | None = None  # returns a reason to refuse, or None
    system: bool = False  # taken by the service as a consequence of another step, not by a caller


@dataclass
class StateMachine(Generic[S]):
    document: str
    state_attr: str
    transitions: list[Transition[S]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_action: dict[str, list[Transition[S]]] = {}
        for t in self.transitions:
            self._by_action.setdefault(t.action, []).append(t)
        # per state, worked out once: every document answer lists them, and transitions are fixed
        self._allowed: dict[S, tuple[str, ...]] = {}

    @property
    def actions(self) -> list[str]:
        return sorted(self._by_action)

    def states(self) -> list[S]:
        seen: dict[S, None] = {}
        for t in self.transitions:
            for s in sorted(t.sources):
                seen[s] = None
            seen[t.target] = None
        return list(seen)

    def allowed_actions(self, state: S) -> list[str]:
        """What a caller can do from `state`: the actions of its rows that are not `SYSTEM`."""
        allowed = self._allowed.get(state)
        if allowed is None:
            allowed = self._allowed[state] = tuple(sorted(
                a for a, ts in self._by_action.items() if any(state in t.sources and not t.system for t in ts)))
        return list(allowed)

    def transition_for(self, state: S, action: str) -> Transition[S] | None:
        for t in self._by_action.get(action, []):
            if state in t.sources:
                return t
        return None

    def apply(self, doc: Any, action: str) -> Transition[S]:
        state = getattr(doc, self.state_attr)
        t = self.transition_for(state, action)
        if t is None:
            raise InvalidTransition(self.document, str(state), action, self.allowed_actions(state))
        if t.guard is not None:
            reason = t.guard(doc)
            if reason:
                raise InvalidTransition(
                    self.document, str(state), f"{action} ({reason})", self.allowed_actions(state)
                )
        setattr(doc, self.state_attr, t.target)
        return t

    def mermaid(self) -> str:
        """The table as a Mermaid state diagram, for docs/ (generated, never hand-written)."""
        lines = ["stateDiagram-v2"]
        for t in self.transitions:
            for s in sorted(t.sources):
                lines.append(f"    {s} --> {t.target}: {t.action}" + (" (system)" if t.system else ""))
        return "\n".join(lines) + "\n"


Row = tuple[str, Iterable[S], S] | tuple[str, Iterable[S], S, str]


def machine(document: str, state_attr: str, rows: Iterable[Row[S]]) -> StateMachine[S]:
    """Build a machine from plain (action, from-states, to-state) rows; a fourth element `SYSTEM`
    marks a row the service takes by itself (left out of `allowed_actions`)."""
    transitions: list[Transition[S]] = []
    for action, src, dst, *flags in rows:
        if any(f != SYSTEM for f in flags):
            raise ValueError(f"{document} {action}: unknown row flags {flags}")
        transitions.append(Transition(action, frozenset(src), dst, system=SYSTEM in flags))
    return StateMachine(document, state_attr, transitions)
