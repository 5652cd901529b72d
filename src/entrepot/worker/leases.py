"""Database leases: one holder at a time per name; an expired lease (crashed holder) is free."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, update

from entrepot.db.infrastructure import Lease
from entrepot.db.insert_if_missing import insert_if_missing
from entrepot.db.uow import platform_uow
from entrepot.kernel import clock

RELEASED = datetime(1970, 1, 1, tzinfo=UTC)


def acquire(name: str, holder: str, ttl: timedelta, *, url: str | None = None) -> bool:
    """Take or renew the lease; False while another live holder has it."""
    now = clock.now()
    with platform_uow(url=url) as uow:
        insert_if_missing(uow.session, Lease, {"name": name, "holder": holder, "expires_at": now + ttl},
                          key=["name"])
        result = uow.session.execute(
            update(Lease).where(Lease.name == name, or_(Lease.holder == holder, Lease.expires_at < now))
            .values(holder=holder, expires_at=now + ttl).execution_options(synchronize_session=False))
        uow.commit()
        return (result.rowcount or 0) == 1


def release(name: str, holder: str, *, url: str | None = None) -> None:
    with platform_uow(url=url) as uow:
        # expire it at the epoch, not "now": a clock moved back (tests) must not revive it
        uow.session.execute(update(Lease).where(Lease.name == name, Lease.holder == holder)
                            .values(holder="", expires_at=RELEASED).execution_options(synchronize_session=False))
        uow.commit()
