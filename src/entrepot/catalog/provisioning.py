"""Every new tenant starts with the common units of measure."""

from __future__ import annotations

from entrepot.catalog.service import ensure_default_units
from entrepot.db.uow import UnitOfWork
from entrepot.identity.models import Tenant
from entrepot.identity.services.tenants import on_tenant_created


def _provision(uow: UnitOfWork, tenant: Tenant) -> None:
    ensure_default_units(uow)


on_tenant_created(_provision)
