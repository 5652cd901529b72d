"""Quotes: priced by the pricing engine, sent, accepted into an order, or expired by the scheduler."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import flag_modified

from entrepot.billing.tax import TaxableLine, calculate_tax
from entrepot.db.numbering import next_number
from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.audit import audit
from entrepot.integration.outbox import record_event
from entrepot.kernel import clock
from entrepot.kernel.errors import FieldError, InvalidTransition, NotFound, ValidationFailed, invalid
from entrepot.kernel.ids import new_id
from entrepot.kernel.money import format_amount
from entrepot.kernel.text import stripped_or_none
from entrepot.sales import events, ports
from entrepot.sales.models import Quote, QuoteLine, SalesOrder
from entrepot.sales.service import (
    OrderLineInput,
    _customer_for_order,
    create_sales_order,
    price_lines,
    resolve_ship_to,
)
from entrepot.sales.states import QUOTE, QuoteStatus, quote_actions

DEFAULT_VALIDITY_DAYS = 30


def create_quote(uow: UnitOfWork, *, customer_id: uuid.UUID, lines: Sequence[OrderLineInput],
                 valid_until: date | None = None, channel: str | None = None,
                 customer_po: str | None = None) -> Quote:
    customer = _customer_for_order(uow, customer_id)
    today = clock.today()
    _check_validity(valid_until, today)
    quote = Quote(id=new_id(), number=next_number(uow, "QT"), customer_id=customer.id, status=QuoteStatus.draft,
                  currency=customer.currency, valid_until=valid_until or today + timedelta(days=DEFAULT_VALIDITY_DAYS),
                  channel=channel, customer_po=stripped_or_none(customer_po))
    _price(uow, quote, customer, lines, today)
    uow.session.add(quote)
    audit(uow, "quote.create", "quote", quote.id, after={"number": quote.number, "total": quote.total})
    record_event(uow, events.QuoteCreated(quote_id=str(quote.id), number=quote.number, customer_id=str(customer.id),
                                          total=format_amount(quote.total, quote.currency)),
                 subject=f"quote/{quote.id}")
    return quote


def _check_validity(valid_until: date | None, today: date) -> None:
    if valid_until is not None and valid_until < today:
        raise invalid("valid_until", "must not be in the past", "future")


def _price(uow: UnitOfWork, quote: Quote, customer: Any, lines: Sequence[OrderLineInput], on: date) -> None:
    """The quote's lines priced by the pricing engine (or given, under the margin guard) and taxed at the
    customer's default ship-to; they replace any it had."""
    where = resolve_ship_to(uow, customer, None)
    priced = price_lines(uow, customer, lines, channel=quote.channel, on=on, ship_to=where)
    tax = calculate_tax(uow, currency=customer.currency, country=where.country, region=where.region,
                        lines=[TaxableLine(i, getattr(p.product, "tax_class", None) or "standard",
                                           p.quantity * p.unit_price) for i, p in enumerate(priced)],
                        on=on, exempt=bool(getattr(customer, "tax_exempt", False)))
    quote.subtotal, quote.tax_total, quote.total = tax.net_total, tax.tax_total, tax.net_total + tax.tax_total
    quote.lines = [QuoteLine(line_no=n + 1, product_id=p.product.id, sku=p.product.sku, description=p.product.name,
                             quantity=p.quantity, unit_price=p.unit_price, price_source=p.source, line_total=lt.net,
                             tax_amount=lt.tax)
                   for n, (p, lt) in enumerate(zip(priced, tax.lines, strict=True))]


QUOTE_FIELDS = ("lines", "valid_until", "customer_po")


def update_quote(uow: UnitOfWork, quote_id: uuid.UUID, changes: Mapping[str, Any]) -> Quote:
    """Change a draft quote: its lines (all of them, priced again today), validity date or customer PO.
    Once sent, the customer has it as it was: a changed offer is a new quote."""
    quote = get_quote(uow, quote_id, for_update=True)
    if quote.status != QuoteStatus.draft:
        raise InvalidTransition("quote", quote.status, "update", quote_actions(quote.status, quote.valid_until,
                                                                               clock.today()))
    unknown_fields = sorted(set(changes) - set(QUOTE_FIELDS))
    if unknown_fields:
        raise ValidationFailed([FieldError(f, "is not a field of a quote that can change", "unknown_field")
                                for f in unknown_fields])
    today = clock.today()
    before = {"total": quote.total, "valid_until": quote.valid_until, "customer_po": quote.customer_po}
    if "valid_until" in changes:
        _check_validity(changes["valid_until"], today)
        quote.valid_until = changes["valid_until"] or today + timedelta(days=DEFAULT_VALIDITY_DAYS)
    if "customer_po" in changes:
        quote.customer_po = stripped_or_none(changes["customer_po"])
    changed = []
    if changes.get("lines"):
        customer = ports.get_customer(uow, quote.customer_id)
        ports.ensure_can_order(customer)  # priced again for a customer who may still order
        _price(uow, quote, customer, changes["lines"], today)
        # new lines are a new version even at the same total (If-Match follows `version`)
        quote.updated_at = clock.now()
        flag_modified(quote, "updated_at")
        changed.append("lines")
    uow.session.flush()
    after = {"total": quote.total, "valid_until": quote.valid_until, "customer_po": quote.customer_po}
    changed = sorted({*changed, *(k for k in after if after[k] != before[k])})
    if changed:
        audit(uow, "quote.update", "quote", quote.id, before={k: before[k] for k in changed if k in before},
              after={k: after[k] for k in changed if k in after})
        record_event(uow, events.QuoteUpdated(quote_id=str(quote.id), number=quote.number,
                                              customer_id=str(quote.customer_id),
                                              total=format_amount(quote.total, quote.currency),
                                              changes=changed), subject=f"quote/{quote.id}")
    return quote


def get_quote(uow: UnitOfWork, quote_id: uuid.UUID, *, for_update: bool = False) -> Quote:
    query = select(Quote).where(Quote.id == quote_id).options(selectinload(Quote.lines))
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    quote = uow.session.scalar(query)
    if quote is None:
        raise NotFound("quote", quote_id)
    return quote


def _step(uow: UnitOfWork, quote: Quote, action: str, **said: Any) -> None:
    before = quote.status
    QUOTE.apply(quote, action)
    audit(uow, f"quote.{action}", "quote", quote.id, before={"status": before},
          after={"status": quote.status, **said})


def send_quote(uow: UnitOfWork, quote_id: uuid.UUID) -> Quote:
    """Send a draft quote: an offer the customer can take up, so only to a customer who may order
    (one put on hold or blocked since the quote was drafted is refused, as a new quote would be)."""
    quote = get_quote(uow, quote_id, for_update=True)
    if quote.status == QuoteStatus.draft:
        ports.ensure_can_order(ports.get_customer(uow, quote.customer_id))
    _step(uow, quote, "send")
    record_event(uow, events.QuoteSent(quote_id=str(quote.id), number=quote.number, customer_id=str(quote.customer_id),
                                       valid_until=quote.valid_until.isoformat()), subject=f"quote/{quote.id}")
    return quote


DECLINE_REASON_MAX = 500


def decline_quote(uow: UnitOfWork, quote_id: uuid.UUID, reason: str | None = None) -> Quote:
    """The customer declined the quote; `reason` (optional) keeps why — price, lead time, a competitor —
    for the sales manager's lost-quote review."""
    reason = stripped_or_none(reason)
    if reason is not None and len(reason) > DECLINE_REASON_MAX:
        raise invalid("reason", f"at most {DECLINE_REASON_MAX} characters", "max_length")
    quote = get_quote(uow, quote_id, for_update=True)
    _step(uow, quote, "decline", **({"decline_reason": reason} if reason else {}))
    quote.decline_reason = reason
    record_event(uow, events.QuoteDeclined(quote_id=str(quote.id), number=quote.number,
                                           customer_id=str(quote.customer_id), reason=reason),
                 subject=f"quote/{quote.id}")
    return quote


def accept_quote(uow: UnitOfWork, quote_id: uuid.UUID, **order_fields: Any) -> SalesOrder:
    """Convert the quote into a draft order at the quoted prices (agreed, so no margin re-check)."""
    quote = get_quote(uow, quote_id, for_update=True)
    if quote.valid_until < clock.today() and quote.status in (QuoteStatus.draft, QuoteStatus.sent):
        # the scheduler expires it soon (a SYSTEM row): what a caller can still do is all but accept
        raise InvalidTransition("quote", quote.status, "accept (the quote expired on "
                                f"{quote.valid_until.isoformat()})",
                                quote_actions(quote.status, quote.valid_until, clock.today()))
    _step(uow, quote, "accept")
    order = create_sales_order(
        uow, customer_id=quote.customer_id, channel=quote.channel, customer_po=quote.customer_po, quote_id=quote.id,
        fixed_prices=True,
        # each line keeps where its price came from: the quote, and the rule that priced it there
        lines=[OrderLineInput(ln.product_id, ln.quantity, ln.unit_price,
                              f"quote {quote.number}: {ln.price_source}"[:300]) for ln in quote.lines],
        **order_fields,
    )
    quote.sales_order_id = order.id
    record_event(uow, events.QuoteAccepted(quote_id=str(quote.id), number=quote.number, sales_order_id=str(order.id)),
                 subject=f"quote/{quote.id}")
    return order


def expire_quotes(uow: UnitOfWork, *, on: date | None = None) -> int:
    """Scheduled: quotes past their validity date become `expired`. Returns how many."""
    on = on or clock.today()
    count = 0
    for quote in uow.session.scalars(select(Quote).where(
            Quote.status.in_((QuoteStatus.draft, QuoteStatus.sent)), Quote.valid_until < on).with_for_update()):
        _step(uow, quote, "expire")
        record_event(uow, events.QuoteExpired(quote_id=str(quote.id), number=quote.number),
                     subject=f"quote/{quote.id}")
        count += 1
    return count


__all__ = ["accept_quote", "create_quote", "decline_quote", "expire_all_quotes", "expire_quotes", "get_quote",
           "send_quote"]


def expire_all_quotes() -> int:
    """Scheduler entry point (no arguments): expire quotes in every active tenant."""
    from entrepot.identity.services.tenants import in_each_active_tenant

    return in_each_active_tenant(expire_quotes, "quote expiry")
