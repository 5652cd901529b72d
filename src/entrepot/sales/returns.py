"""Returns (RMA): authorise against shipped lines, receive back (restock or scrap, lot and serial
checked against what was shipped), credit what was received less an optional restocking fee."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Select, func, select
from sqlalchemy.orm import selectinload

from entrepot.billing import service as billing
from entrepot.billing.models import CreditNote, Invoice, InvoiceLine
from entrepot.db.numbering import next_number
from entrepot.db.uow import UnitOfWork
from entrepot.identity.services.audit import audit
from entrepot.integration.outbox import record_event, record_events
from entrepot.kernel.errors import Conflict, FieldError, NotFound, ValidationFailed, invalid, reference
from entrepot.kernel.ids import new_id
from entrepot.kernel.money import ZERO, format_quantity
from entrepot.sales import events, ports
from entrepot.sales.models import ReturnAuthorization, ReturnLine, Shipment, ShipmentLine
from entrepot.sales.service import get_sales_order, note_returned_unbilled
from entrepot.sales.states import RETURN, ReturnStatus, ShipmentStatus


class NothingToCredit(Conflict):
    code = "nothing_to_credit"
    title = "Nothing received to credit"


@dataclass(frozen=True)
class ReturnLineInput:
    sales_order_line_id: uuid.UUID
    quantity: Decimal
    disposition: str = "restock"


@dataclass(frozen=True)
class ReceiptLineInput:
    return_line_id: uuid.UUID
    quantity: Decimal
    lot_code: str | None = None
    serials: Sequence[str] = ()


def _shipped_lines(uow: UnitOfWork, order_line_ids: Sequence[uuid.UUID]) -> list[ShipmentLine]:
    return list(uow.session.scalars(
        select(ShipmentLine).join(Shipment, Shipment.id == ShipmentLine.shipment_id)
        .where(ShipmentLine.sales_order_line_id.in_(order_line_ids),
               Shipment.status.in_((ShipmentStatus.shipped, ShipmentStatus.delivered)))
        .order_by(ShipmentLine.sales_order_line_id, ShipmentLine.id)))


def authorise_return(uow: UnitOfWork, *, sales_order_id: uuid.UUID, lines: Sequence[ReturnLineInput],
                     reason: str = "", restocking_fee_percent: Decimal = ZERO) -> ReturnAuthorization:
    """Authorise a return of shipped quantities (never more than shipped less already authorised)."""
    with reference("sales_order_id"):
        order = get_sales_order(uow, sales_order_id, for_update=True)
    if restocking_fee_percent < 0 or restocking_fee_percent >= 100:
        raise invalid("restocking_fee_percent", "must be between 0 and 100", "range")
    by_id = {ln.id: ln for ln in order.lines}
    pending = dict(uow.session.execute(
        select(ReturnLine.sales_order_line_id, func.sum(ReturnLine.quantity))
        .join(ReturnAuthorization, ReturnAuthorization.id == ReturnLine.return_id)
        .where(ReturnAuthorization.sales_order_id == order.id,
               ReturnAuthorization.status == ReturnStatus.authorised)
        .group_by(ReturnLine.sales_order_line_id)).all())
    shipped = _shipped_lines(uow, list(by_id))
    errors: list[FieldError] = []
    seen: set[uuid.UUID] = set()
    plan = []
    for i, item in enumerate(lines):
        line = by_id.get(item.sales_order_line_id)
        if line is None:
            errors.append(FieldError(f"lines[{i}].sales_order_line_id", "not a line of this order", "exists"))
            continue
        if line.id in seen:
            errors.append(FieldError(f"lines[{i}].sales_order_line_id", "line given twice", "unique"))
            continue
        seen.add(line.id)
        open_qty = line.quantity_shipped - line.quantity_returned - pending.get(line.id, ZERO)
        if item.quantity <= 0:
            errors.append(FieldError(f"lines[{i}].quantity", "must be greater than zero", "positive"))
        elif item.quantity > open_qty:
            errors.append(FieldError(f"lines[{i}].quantity",
                                     f"only {format_quantity(open_qty)} shipped and not yet returned", "max"))
        elif item.disposition not in ("restock", "scrap"):
            errors.append(FieldError(f"lines[{i}].disposition", "restock or scrap", "choice"))
        else:
            from_shipments = [s for s in shipped if s.sales_order_line_id == line.id]
            # the line's cost per unit over all its shipments: shipped twice at two moving-average costs, the
            # units coming back are not known to be the first shipment's, and all of them coming back must
            # take back all the COGS the line posted
            costed = [s for s in from_shipments if s.cost is not None]
            costed_qty = sum((s.quantity for s in costed), ZERO)
            unit_cost = sum((s.cost or ZERO for s in costed), ZERO) / costed_qty if costed_qty else ZERO
            plan.append((line, item, from_shipments[0].warehouse_id if from_shipments else None, unit_cost))
    if errors:
        raise ValidationFailed(errors)
    rma = ReturnAuthorization(id=new_id(), number=next_number(uow, "RMA"), sales_order_id=order.id,
                              customer_id=order.customer_id, status=ReturnStatus.authorised, reason=reason,
                              restocking_fee_percent=restocking_fee_percent)
    for n, (line, item, warehouse_id, unit_cost) in enumerate(plan):
        rma.lines.append(ReturnLine(line_no=n + 1, sales_order_line_id=line.id, product_id=line.product_id,
                                    quantity=item.quantity, quantity_received=ZERO, disposition=item.disposition,
                                    warehouse_id=warehouse_id,
                                    unit_cost=unit_cost.quantize(Decimal("0.0001"))))
    uow.session.add(rma)
    audit(uow, "return.authorise", "return", rma.id, after={"number": rma.number, "order": order.number})
    record_event(uow, events.ReturnAuthorised(return_id=str(rma.id), number=rma.number, sales_order_id=str(order.id)),
                 subject=f"return/{rma.id}")
    return rma


def list_returns(*, customer_id: uuid.UUID | None = None, sales_order_id: uuid.UUID | None = None,
                 status: str | None = None) -> Select[tuple[ReturnAuthorization]]:
    """Returns, filtered; the caller pages them."""
    query = select(ReturnAuthorization).options(selectinload(ReturnAuthorization.lines))
    if customer_id:
        query = query.where(ReturnAuthorization.customer_id == customer_id)
    if sales_order_id:
        query = query.where(ReturnAuthorization.sales_order_id == sales_order_id)
    if status:
        query = query.where(ReturnAuthorization.status == status)
    return query


def get_return(uow: UnitOfWork, return_id: uuid.UUID, *, for_update: bool = False) -> ReturnAuthorization:
    query = select(ReturnAuthorization).where(ReturnAuthorization.id == return_id).options(
        selectinload(ReturnAuthorization.lines))
    if for_update:
        query = query.with_for_update().execution_options(populate_existing=True)
    rma = uow.session.scalar(query)
    if rma is None:
        raise NotFound("return", return_id)
    return rma


def receive_return(uow: UnitOfWork, return_id: uuid.UUID, *, lines: Sequence[ReceiptLineInput] | None = None,
                   warehouse_id: uuid.UUID | None = None) -> ReturnAuthorization:
    """Receive the goods (all authorised quantities unless lines are given) into the warehouse they left,
    restocked at their shipped cost or scrapped; lots and serials must be ones this order shipped."""
    rma = get_return(uow, return_id, for_update=True)
    RETURN.apply(rma, "receive")
    order = get_sales_order(uow, rma.sales_order_id, for_update=True)
    by_order_line = {ln.id: ln for ln in order.lines}
    by_id = {ln.id: ln for ln in rma.lines}
    # Receipt lines per return line: a line shipped from two lots comes back as one receipt line per lot.
    wanted: dict[uuid.UUID, list[tuple[int, ReceiptLineInput]]] = {}
    if lines is None:
        wanted = {ln.id: [(i, ReceiptLineInput(ln.id, ln.quantity))] for i, ln in enumerate(rma.lines)}
    errors: list[FieldError] = []
    for i, item in enumerate(lines or []):
        line = by_id.get(item.return_line_id)
        if line is None:
            errors.append(FieldError(f"lines[{i}].return_line_id", "not a line of this return", "exists"))
        elif item.quantity <= 0:
            errors.append(FieldError(f"lines[{i}].quantity", "must be greater than zero", "positive"))
        else:
            wanted.setdefault(line.id, []).append((i, item))
    shipped = _shipped_lines(uow, list(by_order_line))
    inv = ports.inventory()
    # A lot comes back no more than the order shipped of it, less what came back of it before (the
    # order is locked: no other receipt of it runs meanwhile).
    shipped_of_lot: dict[tuple[uuid.UUID, str], Decimal] = {}
    for s in shipped:
        for lot in s.lots or []:
            if lot.get("lot_code"):
                key = (s.product_id, lot["lot_code"])
                shipped_of_lot[key] = shipped_of_lot.get(key, ZERO) + Decimal(lot.get("quantity") or 0)
    earlier = list(uow.session.scalars(select(ReturnAuthorization.number).where(
        ReturnAuthorization.sales_order_id == order.id, ReturnAuthorization.id != rma.id,
        ReturnAuthorization.status.in_((ReturnStatus.received, ReturnStatus.credited)))))
    products = sorted({ln.product_id for ln in rma.lines})
    returned = inv.returned_goods(uow, products, earlier)
    back_of_lot, serials_back = returned.by_lot, returned.serials  # a serial comes back once per order
    seen_serials: dict[uuid.UUID, set[str]] = {}
    for line_id, items in wanted.items():
        line = by_id[line_id]
        last = items[-1][0]
        if sum((item.quantity for _, item in items), ZERO) > line.quantity:
            errors.append(FieldError(f"lines[{last}].quantity",
                                     f"at most {format_quantity(line.quantity)} in all for this line", "range"))
        lots = [lot for s in shipped if s.sales_order_line_id == line.sales_order_line_id for lot in (s.lots or [])]
        codes = {lot["lot_code"] for lot in lots if lot.get("lot_code")}
        # a serial comes back in the lot it shipped from
        serials_of_lot: dict[str | None, set[str]] = {}
        for lot in lots:
            serials_of_lot.setdefault(lot.get("lot_code"), set()).update(lot.get("serials") or [])
        serials = {s for shipped_serials in serials_of_lot.values() for s in shipped_serials}
        seen = seen_serials.setdefault(line.product_id, set())
        for i, item in items:
            if codes and item.lot_code not in codes:
                errors.append(FieldError(f"lines[{i}].lot_code", f"give the lot shipped: one of {sorted(codes)}",
                                         "lot"))
            elif not codes and item.lot_code:
                errors.append(FieldError(f"lines[{i}].lot_code", "no lot was shipped on this line", "lot"))
            elif item.lot_code in codes:
                key = (line.product_id, item.lot_code)
                before = back_of_lot.get(key, ZERO)
                back_of_lot[key] = before + item.quantity
                if back_of_lot[key] > shipped_of_lot[key]:
                    came_back = f", {format_quantity(before)} of them came back before" if before else ""
                    errors.append(FieldError(f"lines[{i}].quantity", f"only {format_quantity(shipped_of_lot[key])} "
                                             f"of lot {item.lot_code} were shipped on this order{came_back}", "lot"))
            in_lot = serials_of_lot.get(item.lot_code, set()) if codes else serials
            again = set(item.serials) & serials_back.get(line.product_id, set())
            if again:
                errors.append(FieldError(f"lines[{i}].serials", f"{', '.join(sorted(again))} came back on an "
                                         "earlier return of this order", "serial"))
            elif serials and (len(item.serials) != int(item.quantity) or not set(item.serials) <= in_lot
                              or seen & set(item.serials)):
                errors.append(FieldError(f"lines[{i}].serials", "give the serial numbers shipped on this order",
                                         "serial"))
            seen |= set(item.serials)
    if errors:
        raise ValidationFailed(errors)
    # each receipt locks its product: taken in product-id order, as every stock change takes them
    for line_id, items in sorted(wanted.items(), key=lambda kv: by_id[kv[0]].product_id):
        line = by_id[line_id]
        target = warehouse_id or line.warehouse_id
        if target is None:
            raise invalid("warehouse_id", "say which warehouse receives the goods", "required")
        for _, item in items:
            kwargs = {}
            if item.lot_code:
                kwargs["lot_code"] = item.lot_code
            if item.serials:
                kwargs["serials"] = list(item.serials)
            inv.receive_return(uow, product_id=line.product_id, warehouse_id=target, quantity=item.quantity,
                               unit_cost=line.unit_cost, reference=rma.number, scrap=line.disposition == "scrap",
                               **kwargs)
        received = sum((item.quantity for _, item in items), ZERO)
        line.quantity_received = received
        by_order_line[line.sales_order_line_id].quantity_returned += received
    audit(uow, "return.receive", "return", rma.id, before={"status": "authorised"},
          after={"status": rma.status, "received": {str(k): str(by_id[k].quantity_received) for k in wanted}})
    record_event(uow, events.ReturnReceived(return_id=str(rma.id), number=rma.number,
                                            sales_order_id=str(rma.sales_order_id)), subject=f"return/{rma.id}")
    return rma


def credit_return(uow: UnitOfWork, return_id: uuid.UUID) -> list[CreditNote]:
    """Credit what was received, against the invoices that billed it (one note per invoice),
    less the restocking fee. Received but never invoiced quantities need no credit."""
    rma = get_return(uow, return_id, for_update=True)
    RETURN.apply(rma, "credit")
    # The order locked before its invoices are read (as receive_return locks it): an invoice of the
    # received units being posted meanwhile would be missed, and the units taken as never billed.
    get_sales_order(uow, rma.sales_order_id, for_update=True)
    received = {ln.sales_order_line_id: ln.quantity_received for ln in rma.lines if ln.quantity_received > 0}
    # The invoices that billed the lines locked (in id order, as crediting locks each) before what is
    # left to credit on them is read: a credit note issued meanwhile would leave the plan stale.
    billed = select(InvoiceLine.invoice_id).where(InvoiceLine.source_line_id.in_(list(received)))
    uow.session.execute(select(Invoice.id).where(Invoice.id.in_(billed)).order_by(Invoice.id).with_for_update())
    rows = uow.session.execute(
        select(InvoiceLine, Invoice.id).join(Invoice, Invoice.id == InvoiceLine.invoice_id)
        .where(InvoiceLine.source_line_id.in_(list(received)), Invoice.status != "credited")
        .order_by(Invoice.issued_on, Invoice.number, InvoiceLine.line_no)
        .execution_options(populate_existing=True)).all()
    per_invoice: dict[uuid.UUID, list[billing.CreditLineInput]] = {}
    for inv_line, invoice_id in rows:
        left = received.get(inv_line.source_line_id, ZERO)
        take = min(left, inv_line.quantity - inv_line.quantity_credited)
        if take > 0:
            per_invoice.setdefault(invoice_id, []).append(billing.CreditLineInput(inv_line.id, take))
            received[inv_line.source_line_id] = left - take
    notes = [billing.issue_credit_note(uow, invoice_id=invoice_id, lines=credit_lines,
                                       reason=f"return {rma.number}", fee_percent=rma.restocking_fee_percent)
             for invoice_id, credit_lines in per_invoice.items()]
    # What came back before it was invoiced needs no credit, and must not be billed later either.
    unbilled = {line_id: left for line_id, left in received.items() if left > 0}
    if unbilled:
        note_returned_unbilled(uow, rma.sales_order_id, unbilled)
    if notes:
        rma.credit_note_id = notes[0].id
    record_events(uow, [(events.ReturnCredited(return_id=str(rma.id), number=rma.number,
                                               sales_order_id=str(rma.sales_order_id), credit_note_id=str(note.id)),
                         f"return/{rma.id}") for note in notes])
    if unbilled:
        record_event(uow, events.ReturnUnbilled(
            return_id=str(rma.id), number=rma.number, sales_order_id=str(rma.sales_order_id),
            lines=[{"sales_order_line_id": str(line_id), "quantity": format_quantity(quantity)}
                   for line_id, quantity in unbilled.items()]), subject=f"return/{rma.id}")
    audit(uow, "return.credit", "return", rma.id, after={"credit_notes": [n.number for n in notes]})
    return notes


def cancel_return(uow: UnitOfWork, return_id: uuid.UUID) -> ReturnAuthorization:
    rma = get_return(uow, return_id, for_update=True)
    RETURN.apply(rma, "cancel")
    audit(uow, "return.cancel", "return", rma.id, before={"status": "authorised"}, after={"status": rma.status})
    record_event(uow, events.ReturnCancelled(return_id=str(rma.id), number=rma.number,
                                             sales_order_id=str(rma.sales_order_id)), subject=f"return/{rma.id}")
    return rma


__all__ = ["NothingToCredit", "authorise_return", "cancel_return", "credit_return", "get_return", "receive_return"]
