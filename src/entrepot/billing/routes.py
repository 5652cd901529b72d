"""Billing HTTP: invoices, credit notes, payments, aging, tax rates. Thin: parse, call, commit, render."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from entrepot.api.deps import Requires
from entrepot.api.pagination import FromDate, Page, ToDate, paginate, within
from entrepot.api.responses import model_json
from entrepot.billing import permissions as perms
from entrepot.billing import service
from entrepot.billing.models import CreditNote, Invoice, Payment, TaxRate
from entrepot.billing.schemas import (
    CreditNoteCreate,
    CreditNoteRead,
    InvoiceRead,
    PaymentApply,
    PaymentCreate,
    PaymentRead,
    RefundCreate,
    TaxRateCreate,
    TaxRateRead,
)
from entrepot.billing.states import CreditNoteStatus, InvoiceStatus
from entrepot.db.uow import UnitOfWork
from entrepot.kernel.money import round_money
from entrepot.kernel.text import stripped_or_none

router = APIRouter(tags=["billing"])


@router.get("/invoices", response_model=Page[InvoiceRead])
def list_invoices(
    uow: Annotated[UnitOfWork, Requires(perms.INVOICE_READ)],
    customer_id: uuid.UUID | None = None,
    status: InvoiceStatus | None = None,
    sales_order_id: uuid.UUID | None = None,
    number: str | None = None,
    overdue: Annotated[bool | None, Query(description="Only invoices with an amount due past their due date")] = None,
    from_: FromDate = None,
    to: ToDate = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[InvoiceRead]:
    query = service.list_invoices(uow, customer_id=customer_id, status=status, sales_order_id=sales_order_id,
                                  number=number, overdue=bool(overdue))
    query = within(query, Invoice.issued_on, from_, to)
    rows, next_cursor = paginate(uow, query.options(selectinload(Invoice.lines)), Invoice.id, cursor=cursor,
                                 limit=limit)
    return Page(items=[InvoiceRead.of(r) for r in rows], next_cursor=next_cursor)


@router.get("/invoices/{invoice_id}", response_model=InvoiceRead)
def read_invoice(invoice_id: uuid.UUID, uow: Annotated[UnitOfWork, Requires(perms.INVOICE_READ)]) -> InvoiceRead:
    return InvoiceRead.of(service.get_invoice(uow, invoice_id))


@router.post("/invoices/{invoice_id}/credit-notes", response_model=CreditNoteRead, status_code=201,
             summary="Credit an invoice in full (no lines) or by line")
def create_credit_note(invoice_id: uuid.UUID, uow: Annotated[UnitOfWork, Requires(perms.CREDIT_NOTE_CREATE)],
                       body: Annotated[CreditNoteCreate | None, Body()] = None) -> Response:
    body = body or CreditNoteCreate()  # no body: the invoice in full
    lines = None if body.lines is None else [service.CreditLineInput(ln.invoice_line_id, ln.quantity)
                                             for ln in body.lines]
    note = service.issue_credit_note(uow, invoice_id=invoice_id, lines=lines, reason=body.reason)
    uow.commit()
    return model_json(CreditNoteRead.of(note), 201)


@router.get("/credit-notes", response_model=Page[CreditNoteRead])
def list_credit_notes(
    uow: Annotated[UnitOfWork, Requires(perms.CREDIT_NOTE_READ)],
    customer_id: uuid.UUID | None = None,
    invoice_id: uuid.UUID | None = None,
    status: CreditNoteStatus | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[CreditNoteRead]:
    query = service.list_credit_notes(customer_id=customer_id, invoice_id=invoice_id, status=status)
    rows, next_cursor = paginate(uow, query, CreditNote.id, cursor=cursor, limit=limit)
    return Page(items=[CreditNoteRead.of(r) for r in rows], next_cursor=next_cursor)


@router.get("/credit-notes/{credit_note_id}", response_model=CreditNoteRead)
def read_credit_note(credit_note_id: uuid.UUID,
                     uow: Annotated[UnitOfWork, Requires(perms.CREDIT_NOTE_READ)]) -> CreditNoteRead:
    return CreditNoteRead.of(service.get_credit_note(uow, credit_note_id))


@router.post("/credit-notes/{credit_note_id}/apply", response_model=CreditNoteRead,
             summary="Apply a credit note's remaining credit to other invoices")
def apply_credit_note(credit_note_id: uuid.UUID, body: PaymentApply,
                      uow: Annotated[UnitOfWork, Requires(perms.CREDIT_NOTE_CREATE)]) -> Response:
    note = service.apply_credit_note(uow, credit_note_id=credit_note_id, allocations=[
        service.AllocationInput(a.invoice_id, a.amount) for a in body.allocations])
    uow.commit()
    return model_json(CreditNoteRead.of(note))


@router.post("/credit-notes/{credit_note_id}/refund", response_model=CreditNoteRead,
             summary="Pay a credit note's remaining credit back")
def refund_credit_note(credit_note_id: uuid.UUID, body: RefundCreate,
                       uow: Annotated[UnitOfWork, Requires(perms.PAYMENT_REFUND)]) -> Response:
    note = service.refund_credit_note(uow, credit_note_id=credit_note_id, amount=body.amount)
    uow.commit()
    return model_json(CreditNoteRead.of(note))


@router.post("/payments", response_model=PaymentRead, status_code=201,
             summary="Record a receipt and allocate it; the rest is customer credit")
def create_payment(body: PaymentCreate, uow: Annotated[UnitOfWork, Requires(perms.PAYMENT_CREATE)]) -> Response:
    payment = service.record_payment(
        uow, customer_id=body.customer_id, amount=body.amount, currency=body.currency,
        allocations=[service.AllocationInput(a.invoice_id, a.amount) for a in body.allocations],
        received_on=body.received_on, method=body.method, reference=body.reference,
    )
    uow.commit()
    return model_json(PaymentRead.of(payment), 201)


@router.get("/payments", response_model=Page[PaymentRead])
def list_payments(
    uow: Annotated[UnitOfWork, Requires(perms.PAYMENT_READ)],
    customer_id: uuid.UUID | None = None,
    unapplied: bool | None = Query(default=None, description="Only payments with customer credit left"),
    reference: Annotated[str | None, Query(description="The payer's reference, as on the bank statement")] = None,
    from_: FromDate = None,
    to: ToDate = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[PaymentRead]:
    query = select(Payment).options(selectinload(Payment.allocations))
    if customer_id:
        query = query.where(Payment.customer_id == customer_id)
    if unapplied:
        query = query.where(Payment.unapplied > 0)
    if paid_as := stripped_or_none(reference):
        query = query.where(Payment.reference == paid_as)
    query = within(query, Payment.received_on, from_, to)
    rows, next_cursor = paginate(uow, query, Payment.id, cursor=cursor, limit=limit)
    return Page(items=[PaymentRead.of(r) for r in rows], next_cursor=next_cursor)


@router.get("/payments/{payment_id}", response_model=PaymentRead)
def read_payment(payment_id: uuid.UUID, uow: Annotated[UnitOfWork, Requires(perms.PAYMENT_READ)]) -> PaymentRead:
    return PaymentRead.of(service.get_payment(uow, payment_id))


@router.post("/payments/{payment_id}/apply", response_model=PaymentRead,
             summary="Apply unapplied customer credit to invoices")
def apply_payment(payment_id: uuid.UUID, body: PaymentApply,
                  uow: Annotated[UnitOfWork, Requires(perms.PAYMENT_CREATE)]) -> Response:
    payment = service.apply_customer_credit(
        uow, payment_id=payment_id, allocations=[service.AllocationInput(a.invoice_id, a.amount)
                                                 for a in body.allocations])
    uow.commit()
    return model_json(PaymentRead.of(payment))


@router.post("/payments/{payment_id}/refund", response_model=PaymentRead,
             summary="Pay unapplied customer credit back")
def refund_payment(payment_id: uuid.UUID, body: RefundCreate,
                   uow: Annotated[UnitOfWork, Requires(perms.PAYMENT_REFUND)]) -> Response:
    payment = service.refund_payment(uow, payment_id=payment_id, amount=body.amount)
    uow.commit()
    return model_json(PaymentRead.of(payment))


@router.get("/receivables/aging", summary="Open receivables by customer and days past due")
def receivables_aging(uow: Annotated[UnitOfWork, Requires(perms.INVOICE_READ)],
                      on: date | None = None) -> dict[str, Any]:
    report = service.aging(uow, on=on)
    customers = {cid: {"currency": row["currency"],
                       **{k: str(round_money(row[k], row["currency"])) for k in service.AGING_BUCKETS}}
                 for cid, row in report["customers"].items()}
    totals = {cur: str(round_money(amount, cur)) for cur, amount in report["totals"].items()}
    # one currency: its total; none: "0"; several: no single figure (the service's `total` is None)
    total = None if len(totals) > 1 else next(iter(totals.values()), "0")
    return {"on": report["on"].isoformat(), "total": total, "totals": totals, "customers": customers}


@router.get("/tax-rates", response_model=Page[TaxRateRead])
def list_tax_rates(
    uow: Annotated[UnitOfWork, Requires(perms.TAX_RATE_READ)],
    country: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[TaxRateRead]:
    query = select(TaxRate)
    if country:
        query = query.where(TaxRate.country == country.strip().upper())  # as typed: de is DE
    rows, next_cursor = paginate(uow, query, TaxRate.id, cursor=cursor, limit=limit)
    return Page(items=[TaxRateRead.of(r) for r in rows], next_cursor=next_cursor)


@router.post("/tax-rates", response_model=TaxRateRead, status_code=201)
def create_tax_rate(body: TaxRateCreate, uow: Annotated[UnitOfWork, Requires(perms.TAX_RATE_MANAGE)]) -> Response:
    rate = service.create_tax_rate(uow, **body.model_dump())
    uow.commit()
    return model_json(TaxRateRead.of(rate), 201)
