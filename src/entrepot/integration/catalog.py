"""The event-type catalogue: every domain's `events.py`, loaded once, with its schemas."""

from __future__ import annotations

from typing import Any

from entrepot.db.registry import import_domain_modules
from entrepot.kernel.events import description, registered_types, schema_for

_loaded = False


def load_event_types() -> None:
    """Import every `entrepot.<domain>.events` so the registry is complete."""
    global _loaded
    if _loaded:
        return
    import_domain_modules("events")
    _loaded = True


def known_event_types() -> list[str]:
    load_event_types()
    return list(registered_types())


def describe(name: str) -> dict[str, Any]:
    return {"type": name, "description": description(name), "schema": schema_for(name)}
