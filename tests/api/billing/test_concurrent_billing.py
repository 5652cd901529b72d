"""Two billing steps on one document at the same time: the second works from what the first
committed (tests.concurrency.together: the second waits for the first's locks on PostgreSQL)."""

from __future__ import annotations

import uuid
from decimal import Decimal as D

from entrepot.billing import service as billing
from entrepot.kernel.errors import InvalidTransition, ValidationFailed
from tests.concurrency import together
from tests.factories.sales import act, invoiced_order


def _ids(*values):
    return [uuid.UUID(v) for v in values]


def test_two_credit_notes_on_one_line_at_once_credit_it_once(api):
    _, _, invoice = invoiced_order(api, 4)  # 50.00
    [invoice_id, line_id] = _ids(invoice["id"], invoice["lines"][0]["id"])

    def credit(quantity):
        return lambda uow: billing.issue_credit_note(uow, invoice_id=invoice_id, lines=[
            billing.CreditLineInput(line_id, D(quantity))]).total

    first, second = together(api.tenant, credit("3"), credit("3"))
    assert (first, type(second)) == (D("37.50"), ValidationFailed)
    # and the last unit once, which credits the invoice in full
    one, two = together(api.tenant, credit("1"), credit("1"))
    assert (one, type(two)) == (D("12.50"), InvalidTransition)
    read = api.get(f"/invoices/{invoice['id']}").json()
    assert (read["lines"][0]["quantity_credited"], read["amount_credited"], read["status"]) == (
        "4", "50.00", "credited")


def test_a_payment_and_a_credit_note_at_once_never_take_the_invoice_below_zero(api):
    desk, _, invoice = invoiced_order(api, 4)  # 50.00
    [invoice_id, customer_id] = _ids(invoice["id"], desk.customer_id)
    pay = lambda uow: billing.record_payment(  # noqa: E731
        uow, customer_id=customer_id, amount=D("50.00"), currency="USD",
        allocations=[billing.AllocationInput(invoice_id, D("50.00"))])
    _, note = together(api.tenant, pay, lambda uow: billing.issue_credit_note(uow, invoice_id=invoice_id))
    # the note, issued on a paid invoice, is customer credit
    assert (note.applied_to_invoice, note.unapplied) == (0, D("50.00"))
    read = api.get(f"/invoices/{invoice['id']}").json()
    assert (read["amount_due"], read["amount_paid"], read["amount_credited"]) == ("0.00", "50.00", "50.00")


def test_one_payments_credit_applied_twice_at_once_is_applied_once(api):
    desk, _, one = invoiced_order(api, 4)
    two = act(api, f"/sales-orders/{invoiced_order_for(api, desk)}/invoice", 201)
    payment = act(api, "/payments", 201, {"customer_id": desk.customer_id, "amount": "60.00", "currency": "USD",
                                          "allocations": []})
    [payment_id] = _ids(payment["id"])

    def apply(invoice):
        return lambda uow: billing.apply_customer_credit(uow, payment_id=payment_id, allocations=[
            billing.AllocationInput(uuid.UUID(invoice["id"]), D("50.00"))]).unapplied

    first, second = together(api.tenant, apply(one), apply(two))
    assert (first, type(second)) == (D("10.00"), ValidationFailed)
    assert api.get(f"/payments/{payment['id']}").json()["unapplied"] == "10.00"


def test_one_credit_note_applied_and_refunded_at_once_is_spent_once(api):
    desk, _, paid = invoiced_order(api, 4)
    act(api, "/payments", 201, {"customer_id": desk.customer_id, "amount": "50.00", "currency": "USD",
                                "allocations": [{"invoice_id": paid["id"], "amount": "50.00"}]})
    note = act(api, f"/invoices/{paid['id']}/credit-notes", 201, {})  # 50.00 of customer credit
    other = act(api, f"/sales-orders/{invoiced_order_for(api, desk)}/invoice", 201)
    [note_id, other_id] = _ids(note["id"], other["id"])
    apply = lambda uow: billing.apply_credit_note(  # noqa: E731
        uow, credit_note_id=note_id, allocations=[billing.AllocationInput(other_id, D("40.00"))]).unapplied
    refund = lambda uow: billing.refund_credit_note(uow, credit_note_id=note_id, amount=D("20.00"))  # noqa: E731
    first, second = together(api.tenant, apply, refund)
    assert (first, type(second)) == (D("10.00"), ValidationFailed)
    first, second = together(api.tenant, refund, apply)
    # 10.00 left: neither fits (and 10.00 is all the other invoice still owes)
    assert (type(first), type(second)) == (ValidationFailed, billing.OverAllocation)
    assert api.get(f"/credit-notes/{note['id']}").json()["unapplied"] == "10.00"


def test_one_payment_refunded_twice_at_once_is_refunded_once(api):
    desk, _, _ = invoiced_order(api, 4)
    payment = act(api, "/payments", 201, {"customer_id": desk.customer_id, "amount": "30.00", "currency": "USD",
                                          "allocations": []})
    [payment_id] = _ids(payment["id"])
    refund = lambda uow: billing.refund_payment(uow, payment_id=payment_id, amount=D("20.00")).unapplied  # noqa: E731
    first, second = together(api.tenant, refund, refund)
    assert (first, type(second)) == (D("10.00"), ValidationFailed)
    read = api.get(f"/payments/{payment['id']}").json()
    assert (read["refunded"], read["unapplied"]) == ("20.00", "10.00")


def invoiced_order_for(api, desk):
    """Another order of the desk's customer, shipped (ready to invoice); its id."""
    from tests.factories.sales import shipped_order

    return shipped_order(api, 4, desk)[1]["id"]

