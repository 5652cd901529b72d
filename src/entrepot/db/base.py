"""Declarative base and the mixins every table is built from.

A model becomes tenant-owned by inheriting `TenantOwned`: the session then
filters it by the current tenant, sets `tenant_id` on insert, and on
PostgreSQL `entrepot init` puts a row-level security policy on its table.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, ForeignKey, Integer, MetaData, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

from entrepot.db.types import Exact, JsonDocument, UtcDateTime
from entrepot.kernel import clock
from entrepot.kernel.ids import new_id

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        uuid.UUID: Uuid(),
        Decimal: Exact(),
        datetime: UtcDateTime(),
        date: Date(),
        dict[str, Any]: JsonDocument,
        list[Any]: JsonDocument,
        str: String(255),
    }


class HasId:
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)


class Timestamps:
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    updated_at: Mapped[datetime] = mapped_column(default=clock.now, onupdate=clock.now)


class Versioned:
    """Optimistic concurrency: `version` backs the ETag and If-Match checks."""

    version: Mapped[int] = mapped_column(Integer, default=1, nullable=False)

    @declared_attr.directive
    def __mapper_args__(cls) -> dict[str, Any]:
        return {"version_id_col": cls.version}  # type: ignore[attr-defined]


class TenantOwned:
    """Marker + column: rows belong to one tenant, and only that tenant sees them."""

    @declared_attr
    def tenant_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(ForeignKey("tenants.id"), nullable=False)


def tenant_owned_tables() -> list[str]:
    return sorted(
        m.local_table.name  # type: ignore[union-attr]
        for m in Base.registry.mappers
        if issubclass(m.class_, TenantOwned)
    )
