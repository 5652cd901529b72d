"""Warehouses and their locations."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select

from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.audit import audit, snapshot
from entrepot.integration.outbox import record_event
from entrepot.inventory.events import WarehouseCreated, WarehouseUpdated
from entrepot.inventory.models import VIRTUAL_KINDS, WAREHOUSE_KINDS, Location, LocationKind, Warehouse
from entrepot.inventory.services.core import get_warehouse
from entrepot.kernel.errors import Conflict, FieldError, ValidationFailed

TEXT_FIELDS = {"name": 200, "address_line1": 200, "address_line2": 200, "city": 100, "postal_code": 20,
               "region": 100}
UPDATABLE = {*TEXT_FIELDS, "country", "active", "priority"}
LOCATION_NAMES = {
    LocationKind.RECEIVING: "Receiving",
    LocationKind.STOCK: "Stock",
    LocationKind.SHIPPING: "Shipping",
    LocationKind.IN_TRANSIT: "In transit",
    LocationKind.SCRAP: "Scrap",
    LocationKind.CUSTOMER: "Customers",
    LocationKind.SUPPLIER: "Suppliers",
    LocationKind.ADJUSTMENT: "Inventory adjustments",
}


def _clean(data: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    errors: list[FieldError] = []
    out: dict[str, Any] = {}
    if not partial or "code" in data:
        code = data.get("code")
        if not isinstance(code, str) or not code.strip():
            errors.append(FieldError("code", "must not be empty", "required"))
        elif len(code.strip()) > 32 or "/" in code:
            errors.append(FieldError("code", "at most 32 characters, no '/'", "pattern"))
        else:
            out["code"] = code.strip()
    for name, limit in TEXT_FIELDS.items():
        if name not in data and (partial or name != "name"):
            continue
        value = data.get(name)
        if value is None and name != "name":
            out[name] = ""
            continue
        if not isinstance(value, str) or (name == "name" and not value.strip()):
            errors.append(FieldError(name, "must not be empty" if name == "name" else "must be text", "required"))
        elif len(value) > limit:
            errors.append(FieldError(name, f"at most {limit} characters", "length"))
        else:
            out[name] = value.strip()
    if "country" in data:
        country = data["country"]
        if country is not None and (not isinstance(country, str) or len(country) != 2 or not country.isalpha()):
            errors.append(FieldError("country", "an ISO 3166 two-letter code", "country"))
        else:
            out["country"] = country.upper() if country else None
    if "active" in data:
        if not isinstance(data["active"], bool):
            errors.append(FieldError("active", "must be true or false", "bool"))
        else:
            out["active"] = data["active"]
    if "priority" in data:
        priority = data["priority"]
        if isinstance(priority, bool) or not isinstance(priority, int) or not 0 <= priority <= 1_000_000:
            errors.append(FieldError("priority", "an integer between 0 and 1000000", "range"))
        else:
            out["priority"] = priority
    if errors:
        raise ValidationFailed(errors)
    return out


def ensure_virtual_locations(uow: UnitOfWork) -> None:
    """The tenant's customer, supplier and adjustment locations (stock outside the company)."""
    existing = set(uow.session.scalars(select(Location.kind).where(Location.warehouse_id.is_(None))))
    for kind in VIRTUAL_KINDS:
        if kind not in existing:
            uow.session.add(Location(code=f"VIRTUAL/{kind.upper()}", name=LOCATION_NAMES[kind], kind=kind,
                                     warehouse_id=None))
    uow.session.flush()


def create_warehouse(uow: UnitOfWork, data: Mapping[str, Any]) -> Warehouse:
    values = _clean(data, partial=False)
    if uow.session.scalar(select(Warehouse.id).where(Warehouse.code == values["code"])) is not None:
        raise Conflict(f"a warehouse with code {values['code']} already exists", field="code")
    ensure_virtual_locations(uow)
    warehouse = Warehouse(**values)
    uow.session.add(warehouse)
    uow.session.flush()
    for kind in WAREHOUSE_KINDS:
        uow.session.add(Location(code=f"{warehouse.code}/{kind.upper()}", name=LOCATION_NAMES[kind], kind=kind,
                                 warehouse_id=warehouse.id))
    uow.session.flush()
    audit(uow, "warehouse.create", "warehouse", warehouse.id, after=snapshot(warehouse))
    record_event(uow, WarehouseCreated(warehouse_id=str(warehouse.id), code=warehouse.code, name=warehouse.name),
                 subject=f"warehouse/{warehouse.id}")
    return warehouse


def update_warehouse(uow: UnitOfWork, warehouse: Warehouse, changes: Mapping[str, Any]) -> Warehouse:
    unknown = set(changes) - UPDATABLE
    if unknown:
        raise ValidationFailed([FieldError(f, "cannot be changed", "read_only") for f in sorted(unknown)])
    values = _clean(changes, partial=True)
    before = snapshot(warehouse)
    changed = [k for k, v in values.items() if getattr(warehouse, k) != v]
    for key in changed:
        setattr(warehouse, key, values[key])
    if changed:
        uow.session.flush()
        audit(uow, "warehouse.update", "warehouse", warehouse.id, before=before, after=snapshot(warehouse))
        event = WarehouseUpdated(warehouse_id=str(warehouse.id), code=warehouse.code, changed=sorted(changed))
        record_event(uow, event, subject=f"warehouse/{warehouse.id}")
    return warehouse


def create_location(uow: UnitOfWork, warehouse_id: object, data: Mapping[str, Any]) -> Location:
    """A storage bin in the warehouse: stock can be received, adjusted, counted and allocated there."""
    warehouse = get_warehouse(uow, warehouse_id)
    code, name = data.get("code"), data.get("name")
    errors = []
    if not isinstance(code, str) or not code.strip() or len(code.strip()) > 40 or "/" in code:
        errors.append(FieldError("code", "1-40 characters, no '/'", "pattern"))
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        errors.append(FieldError("name", "1-200 characters", "required"))
    if errors:
        raise ValidationFailed(errors)
    full = f"{warehouse.code}/{code.strip()}"  # type: ignore[union-attr]
    if uow.session.scalar(select(Location.id).where(Location.code == full)) is not None:
        raise Conflict(f"location {full} already exists", field="code")
    location = Location(code=full, name=name.strip(), kind=LocationKind.STOCK,  # type: ignore[union-attr]
                        warehouse_id=warehouse.id)
    uow.session.add(location)
    uow.session.flush()
    audit(uow, "location.create", "location", location.id, after=snapshot(location))
    return location


def list_locations(uow: UnitOfWork, warehouse_id: object) -> list[Location]:
    warehouse = get_warehouse(uow, warehouse_id)
    return list(uow.session.scalars(select(Location).where(Location.warehouse_id == warehouse.id)
                                    .order_by(Location.code)))


__all__ = ["create_location", "create_warehouse", "ensure_virtual_locations", "get_warehouse", "list_locations",
           "update_warehouse"]
