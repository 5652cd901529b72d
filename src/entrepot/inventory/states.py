"""Lifecycles of inventory documents: transfers and cycle counts."""

from __future__ import annotations

from enum import StrEnum

from entrepot.kernel.states import machine


class TransferStatus(StrEnum):
    REQUESTED = "requested"  # stock reserved at the source (the rest backordered), not shipped yet
    IN_TRANSIT = "in_transit"
    RECEIVED = "received"
    CANCELLED = "cancelled"


class CountStatus(StrEnum):
    OPEN = "open"
    POSTED = "posted"
    CANCELLED = "cancelled"


TRANSFER = machine(
    "transfer",
    "status",
    [
        ("ship", {TransferStatus.REQUESTED}, TransferStatus.IN_TRANSIT),
        ("cancel", {TransferStatus.REQUESTED}, TransferStatus.CANCELLED),
        ("receive", {TransferStatus.IN_TRANSIT}, TransferStatus.RECEIVED),
    ],
)

STOCK_COUNT = machine(
    "stock count",
    "status",
    [
        ("post", {CountStatus.OPEN}, CountStatus.POSTED),
        ("cancel", {CountStatus.OPEN}, CountStatus.CANCELLED),
    ],
)
