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



def _refused(outcome):
    """A refusal the API answers 409 or 422 (never a deadlock, a stale write or an error of the database)."""
    from entrepot.kernel.errors import DomainError

    return isinstance(outcome, DomainError) and getattr(outcome, "status", None) in (409, 422)


def _receivables_agree(api):
    """The receivable account is what the open documents say, and every entry balances."""
    from sqlalchemy import select

    from entrepot.billing.models import Invoice
    from entrepot.ledger.chart import Role
    from entrepot.ledger.services.reports import check_books, role_balance

    with api.tenant.uow(readonly=True) as uow:
        assert check_books(uow) == []
        customers = set(uow.session.scalars(select(Invoice.customer_id)))
        assert role_balance(uow, Role.receivable) == sum(
            (billing.open_receivables(uow, c) for c in customers), D(0))


def test_a_credit_note_credited_while_the_invoice_is_paid_leaves_the_payment_as_credit(api):
    # given an invoice of 50.00
    desk, _, invoice = invoiced_order(api, 4)
    [invoice_id, customer_id] = _ids(invoice["id"], desk.customer_id)
    pay = lambda uow: billing.record_payment(  # noqa: E731
        uow, customer_id=customer_id, amount=D("50.00"), currency="USD",
        allocations=[billing.AllocationInput(invoice_id, D("50.00"))]).number
    # when it is credited in full and, before that commits, a payment of all of it is recorded
    note, refused = together(api.tenant, lambda uow: billing.issue_credit_note(uow, invoice_id=invoice_id).total, pay)
    # then the payment waited and is refused (the invoice owes nothing): no payment, nothing paid twice
    assert (note, type(refused)) == (D("50.00"), InvalidTransition) and _refused(refused), refused
    read = api.get(f"/invoices/{invoice['id']}").json()
    assert (read["status"], read["amount_due"], read["amount_paid"]) == ("credited", "0.00", "0.00")
    assert api.get("/payments", params={"customer_id": desk.customer_id}).json()["items"] == []
    _receivables_agree(api)


def test_a_payment_and_a_credit_notes_credit_applied_to_one_invoice_at_once_never_overpay_it(api):
    # given a credit note of 50.00 (customer credit) and another invoice of 50.00
    desk, _, paid = invoiced_order(api, 4)
    act(api, "/payments", 201, {"customer_id": desk.customer_id, "amount": "50.00", "currency": "USD",
                                "allocations": [{"invoice_id": paid["id"], "amount": "50.00"}]})
    note = act(api, f"/invoices/{paid['id']}/credit-notes", 201, {})
    other = act(api, f"/sales-orders/{invoiced_order_for(api, desk)}/invoice", 201)
    [note_id, other_id, customer_id] = _ids(note["id"], other["id"], desk.customer_id)
    apply = lambda uow: billing.apply_credit_note(  # noqa: E731
        uow, credit_note_id=note_id, allocations=[billing.AllocationInput(other_id, D("30.00"))]).unapplied
    pay = lambda uow: billing.record_payment(  # noqa: E731
        uow, customer_id=customer_id, amount=D("30.00"), currency="USD",
        allocations=[billing.AllocationInput(other_id, D("30.00"))]).number
    # when 30.00 of the note and a payment of 30.00 go to it at once
    applied, refused = together(api.tenant, apply, pay)
    # then the payment sees the 20.00 left: refused, and nothing of it recorded
    assert (applied, type(refused)) == (D("20.00"), billing.OverAllocation) and _refused(refused), refused
    read = api.get(f"/invoices/{other['id']}").json()
    assert (read["amount_due"], read["amount_credited"], read["amount_paid"]) == ("20.00", "30.00", "0.00")
    assert len(api.get("/payments", params={"customer_id": desk.customer_id}).json()["items"]) == 1
    _receivables_agree(api)


def test_one_credit_note_refunded_twice_at_once_is_refunded_once(api):
    desk, _, invoice = invoiced_order(api, 4)
    act(api, "/payments", 201, {"customer_id": desk.customer_id, "amount": "50.00", "currency": "USD",
                                "allocations": [{"invoice_id": invoice["id"], "amount": "50.00"}]})
    note = act(api, f"/invoices/{invoice['id']}/credit-notes", 201, {})  # 50.00 of customer credit
    [note_id] = _ids(note["id"])
    refund = lambda uow: billing.refund_credit_note(uow, credit_note_id=note_id, amount=D("30.00")).unapplied  # noqa: E731
    first, second = together(api.tenant, refund, refund)
    assert (first, type(second)) == (D("20.00"), ValidationFailed) and _refused(second)
    read = api.get(f"/credit-notes/{note['id']}").json()
    assert (read["refunded"], read["unapplied"]) == ("30.00", "20.00")
    _receivables_agree(api)


def test_one_payments_credit_applied_and_refunded_at_once_is_spent_once(api):
    desk, _, invoice = invoiced_order(api, 4)
    payment = act(api, "/payments", 201, {"customer_id": desk.customer_id, "amount": "50.00", "currency": "USD",
                                          "allocations": []})
    [payment_id, invoice_id] = _ids(payment["id"], invoice["id"])
    apply = lambda uow: billing.apply_customer_credit(uow, payment_id=payment_id, allocations=[  # noqa: E731
        billing.AllocationInput(invoice_id, D("40.00"))]).unapplied
    refund = lambda uow: billing.refund_payment(uow, payment_id=payment_id, amount=D("20.00")).unapplied  # noqa: E731
    first, second = together(api.tenant, apply, refund)
    assert (first, type(second)) == (D("10.00"), ValidationFailed) and _refused(second)
    read = api.get(f"/payments/{payment['id']}").json()
    assert (read["applied"], read["refunded"], read["unapplied"]) == ("40.00", "0.00", "10.00")
    assert api.get(f"/invoices/{invoice['id']}").json()["amount_due"] == "10.00"
    _receivables_agree(api)


def test_two_credits_applied_to_two_invoices_named_in_opposite_orders_do_not_deadlock(api):
    # given two invoices of 50.00 and two payments of 50.00 not yet applied
    desk, _, one = invoiced_order(api, 4)
    two = act(api, f"/sales-orders/{invoiced_order_for(api, desk)}/invoice", 201)
    payments = [act(api, "/payments", 201, {"customer_id": desk.customer_id, "amount": "50.00", "currency": "USD",
                                             "allocations": []})["id"] for _ in range(2)]
    [first_id, second_id] = _ids(one["id"], two["id"])

    def apply(payment, invoices):
        return lambda uow: billing.apply_customer_credit(uow, payment_id=uuid.UUID(payment), allocations=[
            billing.AllocationInput(i, D("25.00")) for i in invoices]).unapplied

    # when each applies 25.00 to both invoices, naming them in opposite orders, at once
    outcomes = together(api.tenant, apply(payments[0], [first_id, second_id]),
                        apply(payments[1], [second_id, first_id]))
    # then both are applied: the invoices are locked in one order whatever the order named
    assert outcomes == [D("0.00"), D("0.00")]
    for invoice in (one, two):
        read = api.get(f"/invoices/{invoice['id']}").json()
        assert (read["status"], read["amount_due"]) == ("paid", "0.00")
    _receivables_agree(api)


def test_two_payments_of_one_invoice_at_once_pay_it_once_and_leave_no_trace_of_the_second(api):
    desk, _, invoice = invoiced_order(api, 4)  # 50.00
    [invoice_id, customer_id] = _ids(invoice["id"], desk.customer_id)
    pay = lambda uow: billing.record_payment(  # noqa: E731
        uow, customer_id=customer_id, amount=D("40.00"), currency="USD",
        allocations=[billing.AllocationInput(invoice_id, D("40.00"))]).number
    # when two cashiers each allocate 40.00 of it at once
    first, second = together(api.tenant, pay, pay)
    # then the second sees 10.00 due and is refused; the payment numbers stay gapless
    assert (first, type(second)) == ("PAY-000001", billing.OverAllocation) and _refused(second), second
    assert [p["number"] for p in api.get("/payments", params={"customer_id": desk.customer_id}).json()["items"]] == [
        "PAY-000001"]
    assert api.get(f"/invoices/{invoice['id']}").json()["amount_due"] == "10.00"
    assert act(api, "/payments", 201, {"customer_id": desk.customer_id, "amount": "10.00", "currency": "USD",
                                       "allocations": [{"invoice_id": invoice["id"], "amount": "10.00"}]}
               )["number"] == "PAY-000002"
    _receivables_agree(api)
