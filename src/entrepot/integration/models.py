from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from entrepot.db.base import Base, TenantOwned


class OutboxEvent(TenantOwned, Base):
    """One canonical event, written in the transaction of the change it describes.

    Insert-only. `seq` orders events globally (the `/events` cursor); `txid` is
    the PostgreSQL transaction that wrote it, so readers can hold back events of
    transactions still in flight and never skip one that commits later with a
    smaller `seq`.
    """

    __tablename__ = "outbox_events"
    __table_args__ = (
        Index("ix_outbox_events_tenant_id_seq", "tenant_id", "seq"),
        Index("ix_outbox_events_tenant_id_subject_seq", "tenant_id", "subject", "seq"),
        Index("ix_outbox_events_tenant_id_type_seq", "tenant_id", "type", "seq"),
    )
    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    id: Mapped[uuid.UUID] = mapped_column(Uuid, unique=True)
    type: Mapped[str] = mapped_column(String(120))
    source: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(200))
    time: Mapped[datetime]
    data: Mapped[dict[str, Any]]
    txid: Mapped[int | None] = mapped_column(BigInteger)
