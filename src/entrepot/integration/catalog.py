"""The event-type catalogue: every domain's `events.py`, loaded once, with its schemas."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import entrepot
from entrepot.kernel.events import description, registered_types, schema_for

_loaded = False


def load_event_types() -> None:
    """Import every `entrepot.<domain>.events` so the registry is complete."""
    global _loaded
    if _loaded:
        return
    for module in pkgutil.iter_modules(entrepot.__path__):
        if not module.ispkg:
            continue
        name = f"entrepot.{module.name}.events"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
    _loaded = True


def known_event_types() -> list[str]:
    load_event_types()
    return list(registered_types())


def describe(name: str) -> dict[str, Any]:
    return {"type": name, "description": description(name), "schema": schema_for(name)}
