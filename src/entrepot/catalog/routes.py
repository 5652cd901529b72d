"""Catalog HTTP API: products, categories, units, channel listings."""

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
from entrepot.catalog import imports, service
from entrepot.catalog import permissions as perms
from entrepot.catalog.models import Category, ChannelListing, Product, ProductStatus
from entrepot.catalog.rules import compact_gtin
from entrepot.catalog.schemas import (
    CategoryCreate,
    CategoryRead,
    CategoryUpdate,
    ChannelListingCreate,
    ChannelListingRead,
    ProductCreate,
    ProductRead,
    ProductStatusChange,
    ProductUpdate,
    UnitConversionRead,
    UnitConversionSet,
    UnitCreate,
    UnitRead,
    changes_of,
)
from entrepot.db.uow import UnitOfWork
from entrepot.kernel.context import Actor
from entrepot.kernel.text import stripped_or_none

router = APIRouter(tags=["catalog"])
Limit = Annotated[int, Query(ge=1, le=200)]


@router.post("/products", response_model=ProductRead, status_code=201, summary="Add a product")
def create_product(body: ProductCreate, response: Response,
                   uow: Annotated[UnitOfWork, Requires(perms.PRODUCT_CREATE)]) -> ProductRead:
    product = service.create_product(uow, body.model_dump(exclude_unset=False))
    uow.commit()
    set_etag(response, product)
    response.headers["Location"] = f"/api/v1/products/{product.id}"
    return ProductRead.model_validate(product)


@router.get("/products", response_model=Page[ProductRead], summary="List or search products")
def list_products(
    uow: Annotated[UnitOfWork, Requires(perms.PRODUCT_READ)],
    q: Annotated[str | None, Query(description="search in sku and name")] = None,
    sku: str | None = None,
    gtin: Annotated[str | None, Query(description="the barcode (GTIN/EAN) scanned")] = None,
    status: ProductStatus | None = None,
    category_id: uuid.UUID | None = None,
    include_archived: bool = False,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[ProductRead]:
    query = service.product_query(q=q, status=status, category_id=category_id, include_archived=include_archived)
    if sku:
        query = query.where(Product.sku == sku)
    if gtin := stripped_or_none(gtin):
        query = query.where(Product.gtin == compact_gtin(gtin))
    rows, next_cursor = paginate(uow, query, Product.id, cursor=cursor, limit=limit)
    return Page(items=[ProductRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/products/{product_id}", response_model=ProductRead)
async def read_product(product_id: uuid.UUID,
                       actor: Annotated[Actor, RequiresActor(perms.PRODUCT_READ)]) -> Response:
    # The API's hottest read: at most one worker-thread hop (none on PostgreSQL), one cached statement, pre-serialised
    # (see entrepot.api.reads).
    return await read_row(actor, Product, product_id, ProductRead, "product")


@router.patch("/products/{product_id}", response_model=ProductRead, summary="Change a product (If-Match)")
def update_product(product_id: uuid.UUID, body: ProductUpdate, request: Request, response: Response,
                   uow: Annotated[UnitOfWork, Requires(perms.PRODUCT_UPDATE)]) -> ProductRead:
    product = service.get_product(uow, product_id)
    check_if_match(request, product)
    product = service.update_product(uow, product_id, changes_of(body), product=product)
    uow.commit()
    set_etag(response, product)
    return ProductRead.model_validate(product)


@router.post("/products/{product_id}/status", response_model=ProductRead,
             summary="Discontinue, block or reactivate a product")
def change_product_status(product_id: uuid.UUID, body: ProductStatusChange, response: Response,
                          uow: Annotated[UnitOfWork, Requires(perms.PRODUCT_UPDATE)]) -> ProductRead:
    product = service.change_product_status(uow, product_id, body.action)
    uow.commit()
    set_etag(response, product)
    return ProductRead.model_validate(product)


@router.post("/products/{product_id}/archive", response_model=ProductRead, summary="Archive a product")
def archive_product(product_id: uuid.UUID, response: Response,
                    uow: Annotated[UnitOfWork, Requires(perms.PRODUCT_ARCHIVE)]) -> ProductRead:
    product = service.archive_product(uow, product_id)
    uow.commit()
    set_etag(response, product)
    return ProductRead.model_validate(product)


@router.get("/products/{product_id}/unit-conversions", response_model=Page[UnitConversionRead])
def list_unit_conversions(product_id: uuid.UUID,
                          uow: Annotated[UnitOfWork, Requires(perms.PRODUCT_READ)]) -> Page[UnitConversionRead]:
    return Page(items=[UnitConversionRead.model_validate(c) for c in service.unit_conversions(uow, product_id)])


@router.put("/products/{product_id}/unit-conversions", response_model=UnitConversionRead,
            summary="Set how many base units one of another unit holds")
def set_unit_conversion(product_id: uuid.UUID, body: UnitConversionSet,
                        uow: Annotated[UnitOfWork, Requires(perms.PRODUCT_UPDATE)]) -> UnitConversionRead:
    conv = service.set_unit_conversion(uow, product_id, unit=body.unit, factor=body.factor)
    uow.commit()
    return UnitConversionRead.model_validate(conv)


@router.post("/categories", response_model=CategoryRead, status_code=201)
def create_category(body: CategoryCreate, response: Response,
                    uow: Annotated[UnitOfWork, Requires(perms.CATEGORY_MANAGE)]) -> CategoryRead:
    category = service.create_category(uow, body.model_dump())
    uow.commit()
    set_etag(response, category)
    return CategoryRead.model_validate(category)


@router.get("/categories", response_model=Page[CategoryRead])
def list_categories(
    uow: Annotated[UnitOfWork, Requires(perms.CATEGORY_READ)],
    parent_id: uuid.UUID | None = None,
    include_archived: bool = False,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[CategoryRead]:
    query = select(Category)
    if parent_id:
        query = query.where(Category.parent_id == parent_id)
    if not include_archived:
        query = query.where(Category.archived_at.is_(None))
    rows, next_cursor = paginate(uow, query, Category.id, cursor=cursor, limit=limit)
    return Page(items=[CategoryRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/categories/{category_id}", response_model=CategoryRead)
async def read_category(category_id: uuid.UUID,
                       actor: Annotated[Actor, RequiresActor(perms.CATEGORY_READ)]) -> Response:
    # at most one worker-thread hop (none on PostgreSQL), one cached statement, pre-serialised (api/reads.py)
    return await read_row(actor, Category, category_id, CategoryRead, "category")


@router.patch("/categories/{category_id}", response_model=CategoryRead)
def update_category(category_id: uuid.UUID, body: CategoryUpdate, request: Request, response: Response,
                    uow: Annotated[UnitOfWork, Requires(perms.CATEGORY_MANAGE)]) -> CategoryRead:
    check_if_match(request, service.get_category(uow, category_id))
    category = service.update_category(uow, category_id, changes_of(body))
    uow.commit()
    set_etag(response, category)
    return CategoryRead.model_validate(category)


@router.post("/categories/{category_id}/archive", response_model=CategoryRead)
def archive_category(category_id: uuid.UUID, response: Response,
                     uow: Annotated[UnitOfWork, Requires(perms.CATEGORY_MANAGE)]) -> CategoryRead:
    category = service.archive_category(uow, category_id)
    uow.commit()
    set_etag(response, category)
    return CategoryRead.model_validate(category)


@router.get("/units", response_model=Page[UnitRead], summary="Units of measure")
def list_units(uow: Annotated[UnitOfWork, Requires(perms.UNIT_READ)]) -> Page[UnitRead]:
    return Page(items=[UnitRead.model_validate(u) for u in service.list_units(uow)])


@router.post("/units", response_model=UnitRead, status_code=201)
def create_unit(body: UnitCreate, uow: Annotated[UnitOfWork, Requires(perms.UNIT_MANAGE)]) -> UnitRead:
    unit = service.create_unit(uow, code=body.code, name=body.name)
    uow.commit()
    return UnitRead.model_validate(unit)


@router.post("/channel-listings", response_model=ChannelListingRead, status_code=201,
             summary="Make a product sellable in a channel (optionally to one customer group)")
def create_channel_listing(body: ChannelListingCreate,
                           uow: Annotated[UnitOfWork, Requires(perms.CHANNEL_MANAGE)]) -> ChannelListingRead:
    listing = service.list_channel_product(uow, channel=body.channel, product_id=body.product_id,
                                           customer_group=body.customer_group)
    uow.commit()
    return ChannelListingRead.model_validate(listing)


@router.get("/channel-listings", response_model=Page[ChannelListingRead])
def list_channel_listings(
    uow: Annotated[UnitOfWork, Requires(perms.CHANNEL_READ)],
    channel: str | None = None,
    product_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[ChannelListingRead]:
    query = select(ChannelListing)
    if channel:
        query = query.where(ChannelListing.channel == channel)
    if product_id:
        query = query.where(ChannelListing.product_id == product_id)
    rows, next_cursor = paginate(uow, query, ChannelListing.id, cursor=cursor, limit=limit)
    return Page(items=[ChannelListingRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.delete("/channel-listings/{channel_listing_id}", status_code=204)
def delete_channel_listing(channel_listing_id: uuid.UUID,
                           uow: Annotated[UnitOfWork, Requires(perms.CHANNEL_MANAGE)]) -> Response:
    service.delist_channel_product(uow, channel_listing_id)
    uow.commit()
    return Response(status_code=204)


add_csv_routes(router, "products", run_import=imports.import_products, run_export=imports.export_products,
               import_permission=perms.PRODUCT_IMPORT, read_permission=perms.PRODUCT_READ,
               import_summary="Import products from a CSV upload (upsert by sku; all or nothing)",
               export_summary="Products as CSV (the import's columns)")
