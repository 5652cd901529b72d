"""Two ledger steps at the same time (tests.concurrency.together): a period closed while an entry is
posted into it, one entry reversed twice, numbers taken by two postings at once, foreign balances
revalued twice or while a payment settles them."""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from entrepot.ledger import posting
from entrepot.ledger.chart import Role
from entrepot.ledger.errors import EntryAlreadyReversed, PeriodClosed
from entrepot.ledger.models import JournalEntry
from entrepot.ledger.services import periods
from entrepot.ledger.services.entries import reverse_entry
from entrepot.ledger.services.rates import set_rate
from entrepot.ledger.services.revaluation import revalue_open_balances
from tests.concurrency import together
from tests.integration.ledger.helpers import role_balance

ON = date(2026, 9, 30)


def _invoice(uow):  # type: ignore[no-untyped-def]
    return posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV", on=ON, currency="USD",
                                customer_id=uuid.uuid4(), net=Decimal(100), tax=Decimal(0)).id


def _period(tenant):  # type: ignore[no-untyped-def]
    with tenant.uow() as uow:
        period_id = periods.ensure_period(uow, ON).id
        uow.commit()
    return period_id


def _close(period_id):  # type: ignore[no-untyped-def]
    return lambda uow: periods.close_period(uow, periods.get_period(uow, period_id, lock=True)).state


def _entries(tenant) -> list[str]:  # type: ignore[no-untyped-def]
    with tenant.uow(readonly=True) as uow:
        return sorted(uow.session.scalars(select(JournalEntry.number)))


def test_an_entry_posted_while_its_period_is_closed_is_refused(tenant):
    period_id = _period(tenant)
    closed, refused = together(tenant, _close(period_id), _invoice)
    assert (closed, type(refused)) == ("closed", PeriodClosed)
    assert _entries(tenant) == []


def test_a_period_closed_while_an_entry_is_posted_into_it_closes_after_it(tenant):
    period_id = _period(tenant)
    entry_id, closed = together(tenant, _invoice, _close(period_id))
    assert (type(entry_id), closed) == (uuid.UUID, "closed")
    assert _entries(tenant) == ["SAL-000001"]


def test_one_entry_reversed_twice_at_once_is_reversed_once(tenant):
    with tenant.uow() as uow:
        entry_id = _invoice(uow)
        uow.commit()

    def reverse(uow):  # type: ignore[no-untyped-def]
        return reverse_entry(uow, uow.session.get(JournalEntry, entry_id)).id

    outcomes = together(tenant, reverse, reverse)
    # the second is refused as already reversed (not by the unique reversal_of_id at commit): one reversal
    assert isinstance(outcomes[0], uuid.UUID) and isinstance(outcomes[1], EntryAlreadyReversed), outcomes
    with tenant.uow(readonly=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(JournalEntry)
                                  .where(JournalEntry.reversal_of_id == entry_id)) == 1
    assert _entries(tenant) == ["SAL-000001", "SAL-000002"]


def test_two_entries_posted_at_once_take_consecutive_numbers(tenant):
    _period(tenant)
    assert [type(o) for o in together(tenant, _invoice, _invoice)] == [uuid.UUID] * 2
    assert _entries(tenant) == ["SAL-000001", "SAL-000002"]


def test_two_revaluations_at_once_restate_the_balances_once(tenant):
    # given an open invoice of 100 EUR booked at 1.10, and 1.15 at the end of the month
    with tenant.uow() as uow:
        set_rate(uow, "EUR", date(2026, 3, 1), "1.10")
        set_rate(uow, "EUR", date(2026, 3, 31), "1.15")
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-7", on=date(2026, 3, 10), currency="EUR",
                             customer_id=uuid.uuid4(), net=Decimal(100), tax=Decimal(0))
        uow.commit()
    revalue = lambda uow: len(revalue_open_balances(uow, date(2026, 3, 31)))  # noqa: E731
    # when the month is revalued twice at once, then the second finds nothing left to restate
    assert together(tenant, revalue, revalue) == [1, 0]
    with tenant.uow(readonly=True) as uow:
        assert role_balance(uow, Role.receivable) == Decimal(115)


@pytest.mark.parametrize("order", ["revalue_first", "pay_first"])
def test_a_payment_settling_a_balance_while_it_is_revalued_leaves_nothing_open(tenant, order):
    # given an open invoice of 100 EUR booked at 1.10, 1.15 at the end of March
    customer = uuid.uuid4()
    with tenant.uow() as uow:
        set_rate(uow, "EUR", date(2026, 3, 1), "1.10")
        set_rate(uow, "EUR", date(2026, 3, 31), "1.15")
        posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV-7", on=date(2026, 3, 10), currency="EUR",
                             customer_id=customer, net=Decimal(100), tax=Decimal(0))
        uow.commit()
    revalue = lambda uow: len(revalue_open_balances(uow, date(2026, 3, 31)))  # noqa: E731
    pay = lambda uow: posting.post_customer_payment(  # noqa: E731
        uow, source_id=uuid.uuid4(), on=date(2026, 3, 31), currency="EUR", customer_id=customer,
        amount=Decimal(100)).id
    # when it is paid in full while March is revalued
    steps = (revalue, pay) if order == "revalue_first" else (pay, revalue)
    assert [isinstance(o, Exception) for o in together(tenant, *steps)] == [False, False]
    # then the receivable is settled: nothing left in the functional currency either
    with tenant.uow(readonly=True) as uow:
        assert role_balance(uow, Role.receivable) == 0
