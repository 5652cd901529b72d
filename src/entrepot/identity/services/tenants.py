"""Tenant provisioning."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import structlog
from sqlalchemy import bindparam, select
from sqlalchemy.orm.util import identity_key

from entrepot.db.prepared import Prepared
from entrepot.db.uow import UnitOfWork
from entrepot.identity.events import TenantCreated
from entrepot.identity.models import Tenant
from entrepot.identity.services.audit import audit, snapshot
from entrepot.integration.outbox import record_event
from entrepot.kernel.cancellation import stop_if_called_off
from entrepot.kernel.context import system_actor
from entrepot.kernel.errors import Conflict, NotFound, invalid
from entrepot.kernel.money import is_currency

log = structlog.get_logger("entrepot.tenants")

SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
NAME_MAX = 200
TEMPLATE_MAX = 63

# Other domains add set-up steps for a new tenant (chart of accounts, default
# warehouse locations, …) here; platform templates extend them later.
_provisioners: list[Callable[[UnitOfWork, Tenant], None]] = []


def on_tenant_created(step: Callable[[UnitOfWork, Tenant], None]) -> None:
    if step not in _provisioners:
        _provisioners.append(step)


@dataclass(frozen=True)
class TenantCreate:
    slug: str
    name: str
    parent_slug: str | None = None
    template: str | None = None
    currency: str = "USD"


def create_tenant(platform: UnitOfWork, data: TenantCreate) -> Tenant:
    """Create a tenant (under a parent for dealers/resellers), in the platform
    unit of work; then its own set-up runs as that tenant in the same transaction."""
    # fullmatch: `$` would also match before a final newline, and "acme\n" is not a slug
    if not SLUG.fullmatch(data.slug):
        raise invalid("slug", "lowercase letters, digits and hyphens, 1-63 characters", "pattern")
    if not data.name.strip():
        raise invalid("name", "must not be empty", "required")
    # the columns' lengths, checked here: PostgreSQL would refuse the row with a traceback,
    # SQLite would keep it whole
    if len(data.name.strip()) > NAME_MAX:
        raise invalid("name", f"at most {NAME_MAX} characters", "length")
    if data.template is not None and not 0 < len(data.template) <= TEMPLATE_MAX:
        raise invalid("template", f"1 to {TEMPLATE_MAX} characters", "length")
    if not is_currency(data.currency):
        raise invalid("currency", f"{data.currency!r} is not an ISO 4217 currency", "currency")
    from entrepot.db.registry import load_all_models

    load_all_models()  # so every domain's provisioning step is registered
    session = platform.session
    if session.scalar(select(Tenant.id).where(Tenant.slug == data.slug)) is not None:
        raise Conflict(f"tenant {data.slug} already exists")
    parent_id = None
    if data.parent_slug:
        parent = session.scalar(select(Tenant).where(Tenant.slug == data.parent_slug))
        if parent is None:
            raise NotFound("tenant", data.parent_slug)
        parent_id = parent.id
    tenant = Tenant(
        slug=data.slug,
        name=data.name.strip(),
        parent_id=parent_id,
        template=data.template,
        currency=data.currency,
        settings={},
    )
    session.add(tenant)
    session.flush()
    # The rest happens as the new tenant, still in this one transaction.
    session.info["tenant_id"] = tenant.id
    platform.actor = system_actor(tenant.id, platform.actor.request_id)
    for step in _provisioners:
        step(platform, tenant)
    audit(platform, "tenant.create", "tenant", tenant.id, after=snapshot(tenant))
    record_event(
        platform,
        TenantCreated(
            tenant_id=str(tenant.id),
            slug=tenant.slug,
            name=tenant.name,
            parent_id=str(parent_id) if parent_id else None,
            template=data.template,
        ),
        subject=f"tenant/{tenant.id}",
    )
    return tenant


def get_tenant_by_slug(platform: UnitOfWork, slug: str) -> Tenant:
    tenant = platform.session.scalar(select(Tenant).where(Tenant.slug == slug))
    if tenant is None:
        raise NotFound("tenant", slug)
    return tenant


def list_tenants(platform: UnitOfWork) -> list[Tenant]:
    return list(platform.session.scalars(select(Tenant).order_by(Tenant.created_at)))


def get_tenant(uow: UnitOfWork, tenant_id: uuid.UUID) -> Tenant:
    tenant = uow.session.get(Tenant, tenant_id)
    if tenant is None:
        raise NotFound("tenant", tenant_id)
    return tenant


TENANT_FACTS_MEMO = "identity.tenant_facts"


class TenantFacts(NamedTuple):
    settings: dict[str, Any]
    currency: str


_FACTS = Prepared(select(Tenant.settings, Tenant.currency).where(Tenant.id == bindparam("tenant")))


def tenant_facts(uow: UnitOfWork) -> TenantFacts:
    """The tenant's settings and functional currency, read once per unit of work.

    Nearly every business action asks (tax rounding, allocation policy, negative
    stock, invoice grouping, minimum margin): one two-column read on the session's
    connection, not the ORM object. A tenant row the unit of work already holds
    (maybe changed and not yet flushed) is used as it is."""

    def read() -> TenantFacts:
        tenant = uow.session.identity_map.get(identity_key(Tenant, uow.tenant_id))
        if tenant is not None:
            return TenantFacts(dict(tenant.settings or {}), tenant.currency)
        [(settings, currency)] = _FACTS.execute(uow, {"tenant": uow.tenant_id})
        return TenantFacts(dict(settings or {}), currency)

    return uow.memo(TENANT_FACTS_MEMO, read)  # type: ignore[no-any-return]


def in_each_active_tenant(action: Callable[[UnitOfWork], int], what: str, *, url: str | None = None) -> int:
    """Run `action(uow)` in every active tenant, each in its own committed unit of work acting as the system,
    and add up what it returns: the body of a scheduled job. One tenant's failure does not hold up the
    others; the failures are raised together at the end (the scheduler records them as the job's error)."""
    from entrepot.db.uow import platform_uow, tenant_uow

    with platform_uow(readonly=True, url=url) as platform:
        tenant_ids = list(platform.session.scalars(select(Tenant.id).where(Tenant.status == "active")))
    total = 0
    failed: list[str] = []
    for tenant_id in tenant_ids:
        stop_if_called_off(what)  # the job's lease went to another worker: leave the rest to it
        try:
            with tenant_uow(tenant_id, url=url) as uow:
                total += action(uow)
                uow.commit()
        except Exception as exc:  # reported below, with the others; its traceback logged here, once
            log.exception("tenant_step_failed", step=what, tenant_id=str(tenant_id))
            failed.append(f"{tenant_id}: {type(exc).__name__}: {exc}")
    if failed:
        raise RuntimeError(f"{what} failed for {len(failed)} tenant(s): " + "; ".join(failed)[:1500])
    return total

