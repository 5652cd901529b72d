"""New tenants get their virtual stock locations (customers, suppliers, adjustments)."""

from __future__ import annotations

from entrepot.db.uow import UnitOfWork
from entrepot.identity.models import Tenant
from entrepot.identity.services.tenants import on_tenant_created
from entrepot.inventory.services.warehouses import ensure_virtual_locations


def provision_inventory(uow: UnitOfWork, tenant: Tenant) -> None:
    ensure_virtual_locations(uow)


on_tenant_created(provision_inventory)
