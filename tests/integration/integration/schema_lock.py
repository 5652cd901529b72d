"""The published event schemas, locked: a payload that changes without a new version fails.

    .venv/bin/python -m tests.integration.integration.schema_lock --write

rewrites event_schemas.lock.json from the code (do it when you add a type, or
before the first release when a pre-release payload changes on purpose).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from entrepot.integration.catalog import known_event_types
from entrepot.kernel.events import schema_for

LOCK = Path(__file__).with_name("event_schemas.lock.json")


def current() -> dict[str, Any]:
    return {name: schema_for(name) for name in known_event_types()
            if not name.startswith(("test_", "bench_"))}


def locked() -> dict[str, Any]:
    return json.loads(LOCK.read_text()) if LOCK.exists() else {}


if __name__ == "__main__":
    if "--write" in sys.argv:
        LOCK.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n")
        print(f"wrote {LOCK} ({len(current())} types)")
