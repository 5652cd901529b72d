"""Lifecycles of inventory documents: transfers and cycle counts."""

from __future__ import annotations

from enum import StrEnum

from entrepot.kernel.states import machine


class TransferStatus(StrEnum):
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"


class CountStatus(StrEnum):
    OPEN = "open"
    POSTED = "posted"
    CANCELLED = "cancelled"


TRANSFER = machine(
    "transfer",
    "status",
    [("receive", {TransferStatus.IN_TRANSIT}, TransferStatus.RECEIVED)],
)

STOCK_COUNT = machine(
    "stock count",
    "status",
    [
        ("post", {CountStatus.OPEN}, CountStatus.POSTED),
        ("cancel", {CountStatus.OPEN}, CountStatus.CANCELLED),
    ],
)
