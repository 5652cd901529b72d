"""Parties HTTP API: customers, suppliers, their addresses, supplier items."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from entrepot.api.csv_routes import add_csv_routes
from entrepot.api.deps import Requires, RequiresActor
from entrepot.api.etag import check_if_match, set_etag
from entrepot.api.pagination import Page, paginate
from entrepot.api.reads import read_row
from entrepot.db.uow import UnitOfWork
from entrepot.kernel.context import Actor
from entrepot.parties import imports, service
from entrepot.parties import permissions as perms
from entrepot.parties.models import Customer, CustomerStatus, Supplier, SupplierItem, SupplierStatus
from entrepot.parties.schemas import (
    AddressCreate,
    AddressRead,
    CustomerCreate,
    CustomerRead,
    CustomerUpdate,
    StatusAction,
    SupplierCreate,
    SupplierItemCreate,
    SupplierItemRead,
    SupplierItemUpdate,
    SupplierRead,
    SupplierUpdate,
)

router = APIRouter(tags=["parties"])
Limit = Annotated[int, Query(ge=1, le=200)]


# ---------------------------------------------------------------- customers


@router.post("/customers", response_model=CustomerRead, status_code=201, summary="Open a customer account")
def create_customer(body: CustomerCreate, response: Response,
                    uow: Annotated[UnitOfWork, Requires(perms.CUSTOMER_CREATE)]) -> CustomerRead:
    customer = service.create_customer(uow, body.model_dump())
    uow.commit()
    set_etag(response, customer)
    response.headers["Location"] = f"/api/v1/customers/{customer.id}"
    return CustomerRead.model_validate(customer)


@router.get("/customers", response_model=Page[CustomerRead], summary="List or search customers")
def list_customers(
    uow: Annotated[UnitOfWork, Requires(perms.CUSTOMER_READ)],
    q: Annotated[str | None, Query(description="search in code and name")] = None,
    code: str | None = None,
    status: CustomerStatus | None = None,
    customer_group: str | None = None,
    currency: Annotated[str | None, Query(description="ISO 4217: the customers buying in it")] = None,
    include_archived: bool = False,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[CustomerRead]:
    query = service.customer_query(q=q, status=status, customer_group=customer_group, currency=currency,
                                   include_archived=include_archived)
    if code:
        query = query.where(Customer.code == code)
    rows, next_cursor = paginate(uow, query, Customer.id, cursor=cursor, limit=limit)
    return Page(items=[CustomerRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/customers/{customer_id}", response_model=CustomerRead)
async def read_customer(customer_id: uuid.UUID,
                       actor: Annotated[Actor, RequiresActor(perms.CUSTOMER_READ)]) -> Response:
    # at most one worker-thread hop (none on PostgreSQL), one cached statement, pre-serialised (api/reads.py)
    return await read_row(actor, Customer, customer_id, CustomerRead, "customer")


@router.patch("/customers/{customer_id}", response_model=CustomerRead, summary="Change a customer (If-Match)")
def update_customer(customer_id: uuid.UUID, body: CustomerUpdate, request: Request, response: Response,
                    uow: Annotated[UnitOfWork, Requires(perms.CUSTOMER_UPDATE)]) -> CustomerRead:
    customer = service.get_customer(uow, customer_id)
    check_if_match(request, customer)
    customer = service.update_customer(uow, customer_id, body.model_dump(exclude_unset=True), customer=customer)
    uow.commit()
    set_etag(response, customer)
    return CustomerRead.model_validate(customer)


@router.post("/customers/{customer_id}/status", response_model=CustomerRead,
             summary="Hold, release, block or unblock a customer")
def change_customer_status(customer_id: uuid.UUID, body: StatusAction, response: Response,
                           uow: Annotated[UnitOfWork, Requires(perms.CUSTOMER_CREDIT)]) -> CustomerRead:
    customer = service.change_customer_status(uow, customer_id, body.action)
    uow.commit()
    set_etag(response, customer)
    return CustomerRead.model_validate(customer)


@router.post("/customers/{customer_id}/archive", response_model=CustomerRead, summary="Archive a customer")
def archive_customer(customer_id: uuid.UUID, response: Response,
                     uow: Annotated[UnitOfWork, Requires(perms.CUSTOMER_ARCHIVE)]) -> CustomerRead:
    customer = service.archive_customer(uow, customer_id)
    uow.commit()
    set_etag(response, customer)
    return CustomerRead.model_validate(customer)


@router.get("/customers/{customer_id}/addresses", response_model=Page[AddressRead])
def list_customer_addresses(customer_id: uuid.UUID,
                            uow: Annotated[UnitOfWork, Requires(perms.CUSTOMER_READ)]) -> Page[AddressRead]:
    return Page(items=[AddressRead.model_validate(a) for a in service.customer_addresses(uow, customer_id)])


@router.post("/customers/{customer_id}/addresses", response_model=AddressRead, status_code=201)
def add_customer_address(customer_id: uuid.UUID, body: AddressCreate,
                         uow: Annotated[UnitOfWork, Requires(perms.CUSTOMER_UPDATE)]) -> AddressRead:
    address = service.add_customer_address(uow, customer_id, body.model_dump())
    uow.commit()
    return AddressRead.model_validate(address)


# ---------------------------------------------------------------- suppliers


@router.post("/suppliers", response_model=SupplierRead, status_code=201, summary="Add a supplier")
def create_supplier(body: SupplierCreate, response: Response,
                    uow: Annotated[UnitOfWork, Requires(perms.SUPPLIER_CREATE)]) -> SupplierRead:
    supplier = service.create_supplier(uow, body.model_dump())
    uow.commit()
    set_etag(response, supplier)
    return SupplierRead.model_validate(supplier)


@router.get("/suppliers", response_model=Page[SupplierRead], summary="List or search suppliers")
def list_suppliers(
    uow: Annotated[UnitOfWork, Requires(perms.SUPPLIER_READ)],
    q: Annotated[str | None, Query(description="search in code and name")] = None,
    code: str | None = None,
    status: SupplierStatus | None = None,
    currency: Annotated[str | None, Query(description="ISO 4217: the suppliers selling in it")] = None,
    include_archived: bool = False,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[SupplierRead]:
    query = service.supplier_query(q=q, status=status, currency=currency, include_archived=include_archived)
    if code:
        query = query.where(Supplier.code == code)
    rows, next_cursor = paginate(uow, query, Supplier.id, cursor=cursor, limit=limit)
    return Page(items=[SupplierRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/suppliers/{supplier_id}", response_model=SupplierRead)
async def read_supplier(supplier_id: uuid.UUID,
                       actor: Annotated[Actor, RequiresActor(perms.SUPPLIER_READ)]) -> Response:
    # at most one worker-thread hop (none on PostgreSQL), one cached statement, pre-serialised (api/reads.py)
    return await read_row(actor, Supplier, supplier_id, SupplierRead, "supplier")


@router.patch("/suppliers/{supplier_id}", response_model=SupplierRead, summary="Change a supplier (If-Match)")
def update_supplier(supplier_id: uuid.UUID, body: SupplierUpdate, request: Request, response: Response,
                    uow: Annotated[UnitOfWork, Requires(perms.SUPPLIER_UPDATE)]) -> SupplierRead:
    supplier = service.get_supplier(uow, supplier_id)
    check_if_match(request, supplier)
    supplier = service.update_supplier(uow, supplier_id, body.model_dump(exclude_unset=True), supplier=supplier)
    uow.commit()
    set_etag(response, supplier)
    return SupplierRead.model_validate(supplier)


@router.post("/suppliers/{supplier_id}/archive", response_model=SupplierRead, summary="Archive a supplier")
def archive_supplier(supplier_id: uuid.UUID, response: Response,
                     uow: Annotated[UnitOfWork, Requires(perms.SUPPLIER_ARCHIVE)]) -> SupplierRead:
    supplier = service.archive_supplier(uow, supplier_id)
    uow.commit()
    set_etag(response, supplier)
    return SupplierRead.model_validate(supplier)


@router.get("/suppliers/{supplier_id}/addresses", response_model=Page[AddressRead])
def list_supplier_addresses(supplier_id: uuid.UUID,
                            uow: Annotated[UnitOfWork, Requires(perms.SUPPLIER_READ)]) -> Page[AddressRead]:
    return Page(items=[AddressRead.model_validate(a) for a in service.supplier_addresses(uow, supplier_id)])


@router.post("/suppliers/{supplier_id}/addresses", response_model=AddressRead, status_code=201)
def add_supplier_address(supplier_id: uuid.UUID, body: AddressCreate,
                         uow: Annotated[UnitOfWork, Requires(perms.SUPPLIER_UPDATE)]) -> AddressRead:
    address = service.add_supplier_address(uow, supplier_id, body.model_dump())
    uow.commit()
    return AddressRead.model_validate(address)


# ---------------------------------------------------------------- supplier items


@router.post("/supplier-items", response_model=SupplierItemRead, status_code=201,
             summary="Record what a supplier sells us (their SKU, cost, lead time)")
def create_supplier_item(body: SupplierItemCreate, response: Response,
                         uow: Annotated[UnitOfWork, Requires(perms.SUPPLIER_UPDATE)]) -> SupplierItemRead:
    item = service.create_supplier_item(uow, body.model_dump())
    uow.commit()
    set_etag(response, item)
    return SupplierItemRead.model_validate(item)


@router.get("/supplier-items", response_model=Page[SupplierItemRead])
def list_supplier_items(
    uow: Annotated[UnitOfWork, Requires(perms.SUPPLIER_READ)],
    supplier_id: uuid.UUID | None = None,
    product_id: uuid.UUID | None = None,
    include_archived: bool = False,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[SupplierItemRead]:
    query = select(SupplierItem)
    if supplier_id:
        query = query.where(SupplierItem.supplier_id == supplier_id)
    if product_id:
        query = query.where(SupplierItem.product_id == product_id)
    if not include_archived:
        query = query.where(SupplierItem.archived_at.is_(None))
    rows, next_cursor = paginate(uow, query, SupplierItem.id, cursor=cursor, limit=limit)
    return Page(items=[SupplierItemRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/supplier-items/{supplier_item_id}", response_model=SupplierItemRead)
async def read_supplier_item(supplier_item_id: uuid.UUID,
                            actor: Annotated[Actor, RequiresActor(perms.SUPPLIER_READ)]) -> Response:
    # at most one worker-thread hop (none on PostgreSQL), one cached statement, pre-serialised (api/reads.py)
    return await read_row(actor, SupplierItem, supplier_item_id, SupplierItemRead, "supplier item")


@router.patch("/supplier-items/{supplier_item_id}", response_model=SupplierItemRead)
def update_supplier_item(supplier_item_id: uuid.UUID, body: SupplierItemUpdate, request: Request,
                         response: Response,
                         uow: Annotated[UnitOfWork, Requires(perms.SUPPLIER_UPDATE)]) -> SupplierItemRead:
    check_if_match(request, service.get_supplier_item(uow, supplier_item_id))
    item = service.update_supplier_item(uow, supplier_item_id, body.model_dump(exclude_unset=True))
    uow.commit()
    set_etag(response, item)
    return SupplierItemRead.model_validate(item)


@router.post("/supplier-items/{supplier_item_id}/archive", response_model=SupplierItemRead)
def archive_supplier_item(supplier_item_id: uuid.UUID, response: Response,
                          uow: Annotated[UnitOfWork, Requires(perms.SUPPLIER_UPDATE)]) -> SupplierItemRead:
    item = service.archive_supplier_item(uow, supplier_item_id)
    uow.commit()
    set_etag(response, item)
    return SupplierItemRead.model_validate(item)


# ---------------------------------------------------------------- CSV import / export

_IMPORTS = {
    "customers": (imports.import_customers, imports.export_customers, perms.CUSTOMER_IMPORT, perms.CUSTOMER_READ),
    "suppliers": (imports.import_suppliers, imports.export_suppliers, perms.SUPPLIER_IMPORT, perms.SUPPLIER_READ),
    "supplier-items": (imports.import_supplier_items, imports.export_supplier_items, perms.SUPPLIER_IMPORT,
                       perms.SUPPLIER_READ),
}


for _kind, (_import, _export, _may_import, _may_read) in _IMPORTS.items():
    add_csv_routes(router, _kind, run_import=_import, run_export=_export, import_permission=_may_import,
                   read_permission=_may_read)
