"""Pricing HTTP API: price lists and tiers, contract prices, and price quotes ("why this price")."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from entrepot.api.csv_routes import add_csv_routes
from entrepot.api.deps import Requires
from entrepot.api.etag import check_if_match, set_etag
from entrepot.api.pagination import Page, paginate
from entrepot.catalog.rules import STORAGE_LIMIT
from entrepot.db.uow import UnitOfWork
from entrepot.kernel import clock
from entrepot.kernel.errors import FieldError, ValidationFailed, invalid
from entrepot.kernel.money import InvalidAmount, round_money, to_decimal
from entrepot.pricing import imports, service
from entrepot.pricing import permissions as perms
from entrepot.pricing.engine import PriceResolution
from entrepot.pricing.models import ContractPrice, PriceList, PriceListEntry, PriceListKind
from entrepot.pricing.schemas import (
    ContractPriceCreate,
    ContractPriceRead,
    EntriesAdd,
    EntryRead,
    PriceListCreate,
    PriceListRead,
    PriceListUpdate,
    QuoteBatchRead,
    QuoteRead,
    QuoteRequest,
)

router = APIRouter(tags=["pricing"])
Limit = Annotated[int, Query(ge=1, le=200)]


def _quote(r: PriceResolution, field: str, why_not: str | None) -> QuoteRead:
    total = r.unit_price * r.quantity
    if abs(total) >= STORAGE_LIMIT:  # no order line could hold it
        raise invalid(field, f"the line total would be {STORAGE_LIMIT:,} or more", "max")
    return QuoteRead(product_id=r.product_id, quantity=r.quantity, unit_price=r.unit_price, currency=r.currency,
                     line_total=round_money(total, r.currency), rule=r.rule, explanation=r.explanation,
                     sellable=why_not is None, not_sellable_reason=why_not)


@router.get("/prices/quote", response_model=QuoteRead,
            summary="The unit price for a customer, product and quantity, and why")
def quote_price(
    uow: Annotated[UnitOfWork, Requires(perms.QUOTE_READ)],
    customer_id: uuid.UUID,
    product_id: uuid.UUID,
    quantity: str = "1",
    date: dt.date | None = None,
    channel: str | None = None,
    ship_to_country: str | None = None,
    ship_to_region: str | None = None,
) -> QuoteRead:
    try:
        qty = to_decimal(quantity)
    except InvalidAmount as exc:
        raise invalid("quantity", str(exc), "decimal") from exc
    if qty <= 0:
        raise invalid("quantity", "must be greater than 0", "positive")
    try:
        resolution = service.resolve_prices(uow, customer_id=customer_id, lines=[(product_id, qty)],
                                            on=date, channel=channel,
                                            ship_to=service.quote_ship_to(ship_to_country, ship_to_region))[0]
    except ValidationFailed as exc:
        # One line here: name the query parameter, not "lines[0].…".
        exc.errors = [FieldError(e.field.removeprefix("lines[0]."), e.message, e.rule) for e in exc.errors]
        exc.detail = exc.detail.replace("lines[0].", "")
        raise
    why_not = service.why_not_sellable(uow, customer_id=customer_id, product_ids=[product_id], channel=channel)
    return _quote(resolution, "quantity", why_not[product_id])


@router.post("/prices/quote", response_model=QuoteBatchRead,
             summary="Price many lines for one customer at once (read-only; nothing is stored)")
def quote_prices(body: QuoteRequest, uow: Annotated[UnitOfWork, Requires(perms.QUOTE_READ)]) -> QuoteBatchRead:
    on = body.date or clock.today()
    resolutions = service.resolve_prices(uow, customer_id=body.customer_id,
                                         lines=[(ln.product_id, ln.quantity) for ln in body.lines],  # type: ignore[misc]
                                         on=on, channel=body.channel,
                                         ship_to=service.quote_ship_to(body.ship_to_country, body.ship_to_region))
    why_not = service.why_not_sellable(uow, customer_id=body.customer_id,
                                       product_ids=[r.product_id for r in resolutions], channel=body.channel)
    return QuoteBatchRead(customer_id=body.customer_id, date=on,
                          lines=[_quote(r, f"lines[{i}].quantity", why_not[r.product_id])
                                 for i, r in enumerate(resolutions)])


@router.post("/price-lists", response_model=PriceListRead, status_code=201,
             summary="Create a price list or promotion (optionally with its entries)")
def create_price_list(body: PriceListCreate, response: Response,
                      uow: Annotated[UnitOfWork, Requires(perms.PRICE_LIST_MANAGE)]) -> PriceListRead:
    price_list = service.create_price_list(uow, body.model_dump())
    uow.commit()
    set_etag(response, price_list)
    return PriceListRead.model_validate(price_list)


@router.get("/price-lists", response_model=Page[PriceListRead])
def list_price_lists(
    uow: Annotated[UnitOfWork, Requires(perms.PRICE_LIST_READ)],
    q: Annotated[str | None, Query(description="search in code and name")] = None,
    kind: PriceListKind | None = None,
    currency: str | None = None,
    customer_id: uuid.UUID | None = None,
    include_archived: bool = False,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[PriceListRead]:
    query = service.price_list_query(q=q, kind=kind, currency=currency, customer_id=customer_id,
                                     include_archived=include_archived)
    rows, next_cursor = paginate(uow, query, PriceList.id, cursor=cursor, limit=limit)
    return Page(items=[PriceListRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/price-lists/{price_list_id}", response_model=PriceListRead)
def read_price_list(price_list_id: uuid.UUID, response: Response,
                    uow: Annotated[UnitOfWork, Requires(perms.PRICE_LIST_READ)]) -> PriceListRead:
    price_list = service.get_price_list(uow, price_list_id)
    set_etag(response, price_list)
    return PriceListRead.model_validate(price_list)


@router.patch("/price-lists/{price_list_id}", response_model=PriceListRead)
def update_price_list(price_list_id: uuid.UUID, body: PriceListUpdate, request: Request, response: Response,
                      uow: Annotated[UnitOfWork, Requires(perms.PRICE_LIST_MANAGE)]) -> PriceListRead:
    price_list = service.get_price_list(uow, price_list_id)
    check_if_match(request, price_list)
    price_list = service.update_price_list(uow, price_list_id, body.model_dump(exclude_unset=True),
                                           price_list=price_list)
    uow.commit()
    set_etag(response, price_list)
    return PriceListRead.model_validate(price_list)


@router.post("/price-lists/{price_list_id}/archive", response_model=PriceListRead)
def archive_price_list(price_list_id: uuid.UUID, response: Response,
                       uow: Annotated[UnitOfWork, Requires(perms.PRICE_LIST_MANAGE)]) -> PriceListRead:
    price_list = service.archive_price_list(uow, price_list_id)
    uow.commit()
    set_etag(response, price_list)
    return PriceListRead.model_validate(price_list)


@router.get("/price-lists/{price_list_id}/entries", response_model=Page[EntryRead])
def list_price_list_entries(price_list_id: uuid.UUID,
                            uow: Annotated[UnitOfWork, Requires(perms.PRICE_LIST_READ)],
                            cursor: str | None = None, limit: Limit = 50) -> Page[EntryRead]:
    rows, next_cursor = paginate(uow, service.price_list_entries_query(uow, price_list_id), PriceListEntry.id,
                                 cursor=cursor, limit=limit)
    return Page(items=[EntryRead.model_validate(e) for e in rows], next_cursor=next_cursor)


@router.post("/price-lists/{price_list_id}/entries", response_model=list[EntryRead], status_code=201,
             summary="Add entries / quantity tiers (overlapping tiers: 422)")
def add_price_list_entries(price_list_id: uuid.UUID, body: EntriesAdd,
                           uow: Annotated[UnitOfWork, Requires(perms.PRICE_LIST_MANAGE)]) -> list[EntryRead]:
    entries = service.add_price_list_entries(
        uow, price_list_id, [e.model_dump(exclude_unset=True) for e in body.entries], replace=body.replace)
    uow.commit()
    return [EntryRead.model_validate(e) for e in entries]


@router.delete("/price-lists/{price_list_id}/entries/{price_list_entry_id}", status_code=204)
def remove_price_list_entry(price_list_id: uuid.UUID, price_list_entry_id: uuid.UUID,
                            uow: Annotated[UnitOfWork, Requires(perms.PRICE_LIST_MANAGE)]) -> Response:
    service.remove_price_list_entry(uow, price_list_id, price_list_entry_id)
    uow.commit()
    return Response(status_code=204)


@router.post("/contract-prices", response_model=ContractPriceRead, status_code=201,
             summary="A customer's negotiated price for a product")
def create_contract_price(body: ContractPriceCreate,
                          uow: Annotated[UnitOfWork, Requires(perms.CONTRACT_MANAGE)]) -> ContractPriceRead:
    contract = service.create_contract_price(uow, body.model_dump())
    uow.commit()
    return ContractPriceRead.model_validate(contract)


@router.get("/contract-prices", response_model=Page[ContractPriceRead])
def list_contract_prices(
    uow: Annotated[UnitOfWork, Requires(perms.CONTRACT_READ)],
    customer_id: uuid.UUID | None = None,
    product_id: uuid.UUID | None = None,
    include_archived: bool = False,
    cursor: str | None = None,
    limit: Limit = 50,
) -> Page[ContractPriceRead]:
    query = service.contract_price_query(customer_id=customer_id, product_id=product_id,
                                         include_archived=include_archived)
    rows, next_cursor = paginate(uow, query, ContractPrice.id, cursor=cursor, limit=limit)
    return Page(items=[ContractPriceRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/contract-prices/{contract_price_id}", response_model=ContractPriceRead)
def read_contract_price(contract_price_id: uuid.UUID,
                        uow: Annotated[UnitOfWork, Requires(perms.CONTRACT_READ)]) -> ContractPriceRead:
    return ContractPriceRead.model_validate(service.get_contract_price(uow, contract_price_id))


@router.post("/contract-prices/{contract_price_id}/archive", response_model=ContractPriceRead)
def archive_contract_price(contract_price_id: uuid.UUID,
                           uow: Annotated[UnitOfWork, Requires(perms.CONTRACT_MANAGE)]) -> ContractPriceRead:
    contract = service.archive_contract_price(uow, contract_price_id)
    uow.commit()
    return ContractPriceRead.model_validate(contract)


add_csv_routes(router, "price-lists", run_import=imports.import_price_lists, run_export=imports.export_price_lists,
               import_permission=perms.PRICE_LIST_MANAGE, read_permission=perms.PRICE_LIST_READ,
               import_summary="Import price lists from a CSV upload (one row per entry; all or nothing)",
               export_summary="Price lists as CSV")


@router.get("/customers/{customer_id}/price-lists", response_model=Page[PriceListRead],
            summary="The price lists and promotions that apply to a customer (on a date, in a channel)")
def customer_price_lists(customer_id: uuid.UUID, uow: Annotated[UnitOfWork, Requires(perms.PRICE_LIST_READ)],
                         date: dt.date | None = None, channel: str | None = None) -> Page[PriceListRead]:
    return Page(items=[PriceListRead.model_validate(pl)
                       for pl in service.price_lists_for_customer(uow, customer_id, on=date, channel=channel)])
