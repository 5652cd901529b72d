from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, PrimaryKeyConstraint, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from entrepot.db.base import Base, HasId, TenantOwned, Timestamps
from entrepot.kernel import clock
from entrepot.kernel.ids import new_id


class Tenant(HasId, Timestamps, Base):
    """A distributor, or a dealer/reseller under one (`parent_id`)."""

    __tablename__ = "tenants"
    slug: Mapped[str] = mapped_column(String(63), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenants.id"))
    status: Mapped[str] = mapped_column(String(20), default="active")  # active | suspended
    template: Mapped[str | None] = mapped_column(String(63))
    currency: Mapped[str] = mapped_column(String(3), default="USD")  # functional currency
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Role(TenantOwned, HasId, Timestamps, Base):
    """A tenant-defined role: a name and permission patterns (`sales.*`)."""

    __tablename__ = "roles"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    name: Mapped[str] = mapped_column(String(63))
    description: Mapped[str] = mapped_column(String(500), default="")
    permissions: Mapped[list[Any]] = mapped_column(default=list)


class User(TenantOwned, HasId, Timestamps, Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(63), default="viewer")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class ApiKey(TenantOwned, HasId, Base):
    """An API credential. Only a keyed hash of the secret is stored."""

    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_tenant_id_created_at", "tenant_id", "created_at"),)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(32))
    # HMAC-SHA256 of the whole key: unique across tenants, it is how a request is matched.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(63), default="admin")
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    revoked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]  # refused from then on; None: until revoked
    last_used_at: Mapped[datetime | None]


class AuditEntry(TenantOwned, Base):
    """Append-only, hash-chained per tenant: `hash` covers the entry and the previous hash."""

    __tablename__ = "audit_entries"
    # Keyed by its place in the tenant's chain, which every reader orders by (`audit verify`,
    # the audit API). `id` names the entry but no query looks an entry up by it, so it has no
    # index of its own: every business transaction appends here, and each index is one more
    # page written at commit.
    __table_args__ = (PrimaryKeyConstraint("tenant_id", "seq"),)
    id: Mapped[uuid.UUID] = mapped_column(default=new_id)
    seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(100))
    entity_type: Mapped[str] = mapped_column(String(63))
    entity_id: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any] | None]
    request_id: Mapped[str | None] = mapped_column(String(64))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditChainHead(TenantOwned, Base):
    """The tip of a tenant's audit chain; locked while entries are appended."""

    __tablename__ = "audit_chain_heads"
    __table_args__ = (UniqueConstraint("tenant_id"),)
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    last_seq: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
