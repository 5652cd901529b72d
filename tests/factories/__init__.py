"""Test factories, one module per domain.

`@factory("product_id")` registers how to create, through the API of a given
tenant, the record a path parameter names; the route-table tests use them to
prove another tenant's record is a 404 on every route. `EXAMPLE_BODIES` holds
a valid body for routes whose body is required, so those tests reach the
lookup instead of stopping at validation.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

FACTORIES: dict[str, Callable[[Any], str]] = {}
EXAMPLE_BODIES: dict[tuple[str, str], Callable[[Any], dict[str, Any]]] = {}
# Path parameters that name something other than a tenant's record.
NOT_TENANT_RECORDS: set[str] = {"event_type", "connector"}


def factory(param: str) -> Callable[[Callable[[Any], str]], Callable[[Any], str]]:
    def register(fn: Callable[[Any], str]) -> Callable[[Any], str]:
        FACTORIES[param] = fn
        return fn

    return register


def example_body(method: str, path: str) -> Callable[[Callable[[Any], dict[str, Any]]], Any]:
    def register(fn: Callable[[Any], dict[str, Any]]) -> Any:
        EXAMPLE_BODIES[(method.upper(), path)] = fn
        return fn

    return register


def load_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")
