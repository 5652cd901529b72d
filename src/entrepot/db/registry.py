"""Finds every domain's models so metadata (and Alembic) sees all tables."""

from __future__ import annotations

import importlib
import pkgutil

import entrepot

_loaded = False


def import_domain_modules(part: str) -> None:
    """Import `entrepot.<package>.<part>` for every package that has one."""
    for module in pkgutil.iter_modules(entrepot.__path__):
        if not module.ispkg:
            continue
        name = f"entrepot.{module.name}.{part}"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def load_all_models() -> None:
    global _loaded
    if _loaded:
        return
    importlib.import_module("entrepot.db.infrastructure")
    # models: the tables; provisioning: set-up steps for a new tenant
    # (chart of accounts, default locations) registered with identity.
    import_domain_modules("models")
    import_domain_modules("provisioning")
    _loaded = True
