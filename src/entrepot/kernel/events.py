"""Event types as a contract.

Each event type (`noun.past_tense.vN`) is a Pydantic model registered here; its
JSON Schema is generated from the model and served by the API. Payloads are
validated when recorded, so a service cannot emit an event that breaks its
own published schema.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict

EVENT_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+\.v[0-9]+$")


class EventData(BaseModel):
    """Base class of every event payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)


_REGISTRY: dict[str, type[EventData]] = {}
_DESCRIPTIONS: dict[str, str] = {}

E = TypeVar("E", bound=type[EventData])


def event_type(name: str, description: str = ""):  # type: ignore[no-untyped-def]
    """Class decorator registering a payload model under its versioned type name."""
    if not EVENT_TYPE_PATTERN.match(name):
        raise ValueError(f"event type {name!r} must look like noun.past_tense.vN")

    def register(cls: E) -> E:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"event type {name} registered twice")
        _REGISTRY[name] = cls
        _DESCRIPTIONS[name] = description or (cls.__doc__ or "").strip()
        cls.__event_type__ = name  # type: ignore[attr-defined]
        return cls

    return register


def type_of(data: EventData) -> str:
    name = getattr(type(data), "__event_type__", None)
    if name is None:
        raise ValueError(f"{type(data).__name__} is not a registered event type")
    return name


def registered_types() -> dict[str, type[EventData]]:
    return dict(sorted(_REGISTRY.items()))


def description(name: str) -> str:
    return _DESCRIPTIONS.get(name, "")


def schema_for(name: str) -> dict[str, Any]:
    model = _REGISTRY[name]
    schema = model.model_json_schema(mode="serialization")
    schema["$id"] = f"urn:entrepot:event:{name}"
    schema.setdefault("title", name)
    return schema
