"""Inventory tables: warehouses and locations, the stock ledger (immutable moves),
balances, reservations, open demands (backorders), lots/serials, valuation,
replenishment rules, transfers and counts.

The ledger is `StockMove`: nothing else changes a quantity. `StockBalance`
is a cache of the moves (on hand) and of the open reservations (reserved),
kept in the same transaction; `entrepot inventory check` recomputes it.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Index, Integer, PrimaryKeyConstraint, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from entrepot.db.base import Base, HasId, TenantOwned, Timestamps, Versioned
from entrepot.kernel import clock
from entrepot.kernel.ids import new_id

ZERO = Decimal("0")


class LocationKind(StrEnum):
    RECEIVING = "receiving"
    STOCK = "stock"
    SHIPPING = "shipping"
    IN_TRANSIT = "in_transit"
    SCRAP = "scrap"
    # Virtual: outside the company's stock; they have no balances.
    CUSTOMER = "customer"
    SUPPLIER = "supplier"
    ADJUSTMENT = "adjustment"


INTERNAL_KINDS = frozenset({LocationKind.RECEIVING, LocationKind.STOCK, LocationKind.SHIPPING,
                            LocationKind.IN_TRANSIT})
# Scrap is inside a warehouse but holds no value: stock moved there leaves the valuation.
WAREHOUSE_KINDS = (LocationKind.RECEIVING, LocationKind.STOCK, LocationKind.SHIPPING,
                   LocationKind.IN_TRANSIT, LocationKind.SCRAP)
VIRTUAL_KINDS = (LocationKind.CUSTOMER, LocationKind.SUPPLIER, LocationKind.ADJUSTMENT)

# The reason code of stock brought onto the books (go-live, a warehouse taken over): valued against
# opening balance equity, not the period's inventory adjustments (which would show it as profit).
OPENING_BALANCE = "opening_balance"


class MoveKind(StrEnum):
    ADJUSTMENT = "adjustment"
    RECEIPT = "receipt"
    ISSUE = "issue"
    RETURN = "return"
    TRANSFER_OUT = "transfer_out"
    TRANSFER_IN = "transfer_in"
    SCRAP = "scrap"
    COUNT = "count"


class Warehouse(TenantOwned, HasId, Timestamps, Versioned, Base):
    __tablename__ = "inventory_warehouses"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)
    code: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(200))
    address_line1: Mapped[str] = mapped_column(String(200), default="")
    address_line2: Mapped[str] = mapped_column(String(200), default="")
    city: Mapped[str] = mapped_column(String(100), default="")
    postal_code: Mapped[str] = mapped_column(String(20), default="")
    region: Mapped[str] = mapped_column(String(100), default="")
    country: Mapped[str | None] = mapped_column(String(2))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Lower number = allocated from first.
    priority: Mapped[int] = mapped_column(Integer, default=100)


class Location(TenantOwned, HasId, Timestamps, Base):
    __tablename__ = "inventory_locations"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        Index("ix_inventory_locations_tenant_id_warehouse_id_kind", "tenant_id", "warehouse_id", "kind"),
    )
    code: Mapped[str] = mapped_column(String(80))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20))
    warehouse_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("inventory_warehouses.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Set while a cycle count is open: no count may start on it twice.
    count_locked: Mapped[bool] = mapped_column(Boolean, default=False)


class Lot(TenantOwned, HasId, Timestamps, Base):
    __tablename__ = "inventory_lots"
    __table_args__ = (UniqueConstraint("tenant_id", "product_id", "code"),)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id"))
    code: Mapped[str] = mapped_column(String(64))
    expiry_date: Mapped[date | None]
    # The expiry date lot.expiring.v1 was last emitted for: each lot is announced once, and again
    # only if its expiry date is corrected.
    expiry_warned_for: Mapped[date | None]


class SerialNumber(TenantOwned, HasId, Timestamps, Base):
    __tablename__ = "inventory_serials"
    __table_args__ = (
        UniqueConstraint("tenant_id", "product_id", "serial"),
        Index("ix_inventory_serials_tenant_id_location_id", "tenant_id", "location_id"),
    )
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id"))
    serial: Mapped[str] = mapped_column(String(100))
    lot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("inventory_lots.id"))
    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inventory_locations.id"))


class StockMove(TenantOwned, HasId, Base):
    """One immutable line of the stock ledger: `quantity` (> 0) from one location to another.

    `value` is the move's cost in the functional currency (rounded to its minor
    unit): exactly what was posted to the inventory account for it."""

    __tablename__ = "inventory_stock_moves"
    __table_args__ = (
        Index("ix_inventory_stock_moves_tenant_id_product_id_effective_date", "tenant_id", "product_id",
              "effective_date"),
        Index("ix_inventory_stock_moves_tenant_id_lot_id", "tenant_id", "lot_id"),
        Index("ix_inventory_stock_moves_tenant_id_demand_id", "tenant_id", "demand_id"),
    )
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id"))
    lot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("inventory_lots.id"))
    from_location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inventory_locations.id"))
    to_location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inventory_locations.id"))
    from_warehouse_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("inventory_warehouses.id"))
    to_warehouse_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("inventory_warehouses.id"))
    quantity: Mapped[Decimal]
    unit_cost: Mapped[Decimal] = mapped_column(default=ZERO)
    value: Mapped[Decimal] = mapped_column(default=ZERO)
    kind: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(200))
    reference: Mapped[str] = mapped_column(String(120), default="")
    demand_type: Mapped[str | None] = mapped_column(String(40))
    demand_id: Mapped[uuid.UUID | None]
    serials: Mapped[list[Any] | None]
    effective_date: Mapped[date]
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
    actor: Mapped[str] = mapped_column(String(200), default="system")


class StockBalance(TenantOwned, HasId, Base):
    """On hand and reserved per product × location × lot (`lot_key` is "" without a lot,
    so the unique key works on both backends, where NULLs are never equal)."""

    __tablename__ = "inventory_stock_balances"
    __table_args__ = (
        UniqueConstraint("tenant_id", "product_id", "location_id", "lot_key"),
        Index("ix_inventory_stock_balances_tenant_id_product_id_warehouse_id", "tenant_id", "product_id",
              "warehouse_id"),
    )
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id"))
    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inventory_locations.id"))
    warehouse_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inventory_warehouses.id"))
    location_kind: Mapped[str] = mapped_column(String(20))
    lot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("inventory_lots.id"))
    lot_key: Mapped[str] = mapped_column(String(36), default="")
    on_hand: Mapped[Decimal] = mapped_column(default=ZERO)
    reserved: Mapped[Decimal] = mapped_column(default=ZERO)

    @property
    def available(self) -> Decimal:
        return self.on_hand - self.reserved


class StockDemand(TenantOwned, Timestamps, Base):
    """A demand line (sales order line, transfer line…) that stock is promised to.

    `backordered` is what is still owed; open backorders are filled oldest
    promise first (`promised_at`) when stock arrives.

    Keyed by the line it stands for, (tenant, `demand_type`, `demand_id`), the key every reader
    looks it up by; on SQLite the table is that key's b-tree (WITHOUT ROWID). `id` names the row
    (audit entries quote it) but has no index: an allocation writes a row per line, and each
    b-tree a row goes into is pages written at commit (3 b-trees before, 1 now)."""

    __tablename__ = "inventory_stock_demands"
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "demand_type", "demand_id"),
        # Open backorders of a product, the only lookup by product (`fill_backorders`, which must say
        # `backordered > 0` literally for the index to serve it), in the order they are filled (with
        # it, SQLite's planner prefers this index to the primary key's tenant prefix). Partial: a line
        # allocated in full, the usual case, writes no entry here.
        Index("ix_inventory_stock_demands_tenant_id_product_id_status", "tenant_id", "product_id", "status",
              "promised_at", "id", sqlite_where=text("backordered > 0"), postgresql_where=text("backordered > 0")),
        {"sqlite_with_rowid": False},
    )
    id: Mapped[uuid.UUID] = mapped_column(default=new_id)
    demand_type: Mapped[str] = mapped_column(String(40))
    demand_id: Mapped[uuid.UUID]
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id"))
    warehouse_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("inventory_warehouses.id"))
    ship_to_country: Mapped[str | None] = mapped_column(String(2))
    requested: Mapped[Decimal]
    backordered: Mapped[Decimal] = mapped_column(default=ZERO)
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | closed
    promised_at: Mapped[datetime] = mapped_column(default=clock.now)


class Reservation(TenantOwned, Timestamps, Base):
    """Units of one balance promised to one demand; `quantity` is what is still open.

    Keyed by its demand line, then its own id: every reader finds reservations by their line, and
    every writer knows the line of the reservation it changes. On SQLite the table is that key's
    b-tree (WITHOUT ROWID): one b-tree written per reservation instead of three (table, id, line)."""

    __tablename__ = "inventory_reservations"
    # No index on balance_id: nothing looks reservations up by balance (the ledger check reads them all)
    # and balances are never deleted, so it would only cost a write per reservation.
    __table_args__ = (
        PrimaryKeyConstraint("tenant_id", "demand_type", "demand_id", "id"),
        {"sqlite_with_rowid": False},
    )
    id: Mapped[uuid.UUID] = mapped_column(default=new_id)
    demand_type: Mapped[str] = mapped_column(String(40))
    demand_id: Mapped[uuid.UUID]
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id"))
    balance_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inventory_stock_balances.id"))
    warehouse_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inventory_warehouses.id"))
    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inventory_locations.id"))
    lot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("inventory_lots.id"))
    quantity: Mapped[Decimal]
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | closed


class ItemCost(TenantOwned, HasId, Timestamps, Base):
    """Moving-average valuation per product × warehouse: `value` is the posted
    inventory value of `quantity` units (all valued locations of the warehouse)."""

    __tablename__ = "inventory_item_costs"
    __table_args__ = (UniqueConstraint("tenant_id", "product_id", "warehouse_id"),)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id"))
    warehouse_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inventory_warehouses.id"))
    quantity: Mapped[Decimal] = mapped_column(default=ZERO)
    value: Mapped[Decimal] = mapped_column(default=ZERO)
    # The last average, used when stock is at or below zero (negative stock allowed).
    unit_cost: Mapped[Decimal] = mapped_column(default=ZERO)


class CostLayer(TenantOwned, HasId, Base):
    """FIFO valuation (tenant setting `valuation_method` = `fifo`): what is left of one inflow into a
    warehouse's valuation. Outflows take from the oldest layer first (by `effective_date`, then the
    order they came in); a layer taken to nothing is deleted. While the warehouse holds stock, the
    layers' quantities and values add up to its `ItemCost` exactly."""

    __tablename__ = "inventory_cost_layers"
    __table_args__ = (Index("ix_inventory_cost_layers_fifo", "tenant_id", "product_id", "warehouse_id",
                            "effective_date", "id"),)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id"))
    warehouse_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inventory_warehouses.id"))
    effective_date: Mapped[date]
    quantity: Mapped[Decimal]  # still in the layer (> 0)
    value: Mapped[Decimal]  # its remaining value


class ReorderRule(TenantOwned, HasId, Timestamps, Versioned, Base):
    __tablename__ = "inventory_reorder_rules"
    __table_args__ = (UniqueConstraint("tenant_id", "product_id", "warehouse_id"),)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id"))
    warehouse_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inventory_warehouses.id"))
    reorder_point: Mapped[Decimal] = mapped_column(default=ZERO)
    order_up_to: Mapped[Decimal] = mapped_column(default=ZERO)
    safety_stock: Mapped[Decimal] = mapped_column(default=ZERO)


class Transfer(TenantOwned, HasId, Timestamps, Versioned, Base):
    """Stock sent from one warehouse to another through the destination's in-transit location."""

    __tablename__ = "inventory_transfers"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)
    number: Mapped[str] = mapped_column(String(40))
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id"))
    lot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("inventory_lots.id"))
    from_warehouse_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inventory_warehouses.id"))
    to_warehouse_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inventory_warehouses.id"))
    quantity: Mapped[Decimal]
    status: Mapped[str] = mapped_column(String(20), default="in_transit")
    shipped_at: Mapped[datetime | None]
    received_at: Mapped[datetime | None]


class StockCount(TenantOwned, HasId, Timestamps, Versioned, Base):
    """A cycle count of one location: expected vs counted per product, variances posted."""

    __tablename__ = "inventory_stock_counts"
    __table_args__ = (UniqueConstraint("tenant_id", "number"),)
    number: Mapped[str] = mapped_column(String(40))
    warehouse_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inventory_warehouses.id"))
    location_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inventory_locations.id"))
    counter: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | posted
    lines: Mapped[list[Any]] = mapped_column(default=list)
    posted_at: Mapped[datetime | None]


class ValuationCorrection(TenantOwned, HasId, Base):
    """A back-dated move re-costed the outflows after it: one row (and one ledger entry) per
    category, instead of reposting every later move. `amount` adds to what those outflows
    were posted at (positive: they cost more)."""

    __tablename__ = "inventory_valuation_corrections"
    __table_args__ = (Index("ix_inventory_valuation_corrections_product_warehouse", "tenant_id",
                            "product_id", "warehouse_id"),)
    product_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_products.id"))
    warehouse_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inventory_warehouses.id"))
    category: Mapped[str] = mapped_column(String(20))  # cogs | adjustment | opening
    amount: Mapped[Decimal]
    trigger_move_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("inventory_stock_moves.id"))
    moves_replayed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=clock.now)
