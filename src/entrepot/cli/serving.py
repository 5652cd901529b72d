"""The embedded worker that `entrepot serve` runs beside the API."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def embedded_worker(enabled: bool = True) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    try:
        runtime = importlib.import_module("entrepot.worker.runtime")
    except ModuleNotFoundError as exc:
        if not "entrepot.worker.runtime".startswith(exc.name or "?"):
            raise
        yield None
        return
    worker = runtime.start_background_worker()
    try:
        yield worker
    finally:
        worker.stop()
