"""New tenants get the journals and the general distribution chart of accounts."""

from __future__ import annotations

from entrepot.db.uow import UnitOfWork
from entrepot.identity.models import Tenant
from entrepot.identity.services.tenants import on_tenant_created
from entrepot.ledger.services.accounts import load_template


def load_chart(uow: UnitOfWork, tenant: Tenant) -> None:
    load_template(uow)


on_tenant_created(load_chart)
