"""Periods lock the books; reversals undo; numbers stay gapless; tenants stay apart."""

from __future__ import annotations

import threading
import uuid
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from entrepot.identity.models import AuditEntry
from entrepot.ledger import posting
from entrepot.ledger.chart import Role
from entrepot.ledger.errors import AccountRoleMissing, EntryAlreadyReversed, PeriodClosed
from entrepot.ledger.models import JournalEntry, JournalLine
from entrepot.ledger.services import accounts as chart
from entrepot.ledger.services import periods
from entrepot.ledger.services.entries import reverse_entry
from entrepot.ledger.services.reports import trial_balance
from tests.conftest import make_tenant
from tests.integration.ledger.helpers import balances

D = Decimal


def _invoice(uow, on, net=D(100), customer=None):  # type: ignore[no-untyped-def]
    return posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV", on=on, currency="USD",
                                customer_id=customer or uuid.uuid4(), net=net, tax=D(0))


def test_a_closed_period_refuses_postings_and_its_reports_never_change(tenant):
    # given January's books, closed
    with tenant.uow() as uow:
        _invoice(uow, date(2026, 1, 15))
        uow.commit()
    with tenant.uow() as uow:
        january = periods.ensure_period(uow, date(2026, 1, 1))
        periods.close_period(uow, january)
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        before = trial_balance(uow, as_of=date(2026, 1, 31))
    # when a January invoice and a January stock adjustment are attempted, and February goes on
    with tenant.uow() as uow:
        with pytest.raises(PeriodClosed) as caught:
            _invoice(uow, date(2026, 1, 31))
        assert caught.value.status == 409 and "2026-01" in caught.value.detail
        with pytest.raises(PeriodClosed):
            posting.post_stock_adjustment(uow, source_id=uuid.uuid4(), on=date(2026, 1, 2), amount=D(5))
    with tenant.uow() as uow:
        _invoice(uow, date(2026, 2, 1))
        uow.commit()
    # then January's trial balance is what it was, and the refused postings left no rows
    with tenant.uow(readonly=True) as uow:
        assert trial_balance(uow, as_of=date(2026, 1, 31)) == before
        assert uow.session.scalar(select(func.count()).select_from(JournalEntry)) == 2


def test_reopening_lets_postings_in_again(tenant):
    with tenant.uow() as uow:
        period = periods.close_period(uow, periods.ensure_period(uow, date(2026, 4, 1)))
        uow.commit()
    with tenant.uow() as uow:
        periods.reopen_period(uow, periods.get_period(uow, period.id))
        entry = _invoice(uow, date(2026, 4, 30))
        uow.commit()
    assert entry is not None


def test_reversing_every_entry_of_a_document(tenant):
    customer = uuid.uuid4()
    invoice = uuid.uuid4()
    with tenant.uow() as uow:
        posting.post_invoice(uow, source_id=invoice, number="INV-1", on=date(2026, 5, 3), currency="USD",
                             customer_id=customer, net=D("99.99"), tax=D("7.50"))
        uow.commit()
    with tenant.uow() as uow:
        reversals = posting.reverse_source(uow, invoice)
        assert posting.reverse_source(uow, invoice) == []  # nothing left to reverse
        uow.commit()
    with tenant.uow() as uow:
        assert len(reversals) == 1 and balances(uow) == {}
        with pytest.raises(EntryAlreadyReversed):
            reverse_entry(uow, uow.session.get(JournalEntry, reversals[0].reversal_of_id))


def test_a_missing_role_is_a_clear_conflict(tenant):
    with tenant.uow() as uow:
        receivable = chart.account_for_role(uow, Role.receivable)
        chart.update_account(uow, receivable, {"archived": True})
        with pytest.raises(AccountRoleMissing) as caught:
            _invoice(uow, date(2026, 6, 1))
        assert caught.value.status == 409 and "receivable" in caught.value.detail


def test_another_tenant_sees_none_of_the_books(tenant, other_tenant):
    with tenant.uow() as uow:
        _invoice(uow, date(2026, 6, 1))
        uow.commit()
    with other_tenant.uow(readonly=True) as uow:
        assert trial_balance(uow).lines == []
        assert uow.session.scalar(select(func.count()).select_from(JournalLine)) == 0


def test_concurrent_postings_number_each_journal_without_gaps(pg_url):
    # given 8 threads posting invoices, every third transaction rolled back
    tenant = make_tenant(pg_url)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(6):
                with tenant.uow() as uow:
                    _invoice(uow, date(2026, 7, 1 + i))
                    if (worker + i) % 3:
                        uow.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # then committed numbers are exactly SAL-000001..N and the books balance
    with tenant.uow(readonly=True) as uow:
        numbers = sorted(int(n.split("-")[1]) for n in uow.session.scalars(select(JournalEntry.number)))
        assert numbers == list(range(1, len(numbers) + 1))
        report = trial_balance(uow)
        assert report.total_debit == report.total_credit == D(100) * len(numbers)


def test_journals_in_opposite_orders_do_not_deadlock(pg_url):
    # given two kinds of transaction touching the sales and inventory journals in opposite orders
    tenant = make_tenant(pg_url)
    errors: list[BaseException] = []

    def work(invoice_first: bool) -> None:
        try:
            for i in range(8):
                on = date(2026, 8, 1 + i)
                with tenant.uow() as uow:
                    if invoice_first:
                        _invoice(uow, on)
                    posting.post_shipment_cost(uow, source_id=uuid.uuid4(), on=on, amount=D(60))
                    if not invoice_first:
                        _invoice(uow, on)
                    uow.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(w % 2 == 0,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then every transaction committed and both journals are numbered 1..32
    assert errors == []
    with tenant.uow(readonly=True) as uow:
        numbers = sorted(uow.session.scalars(select(JournalEntry.number)))
        assert numbers == [f"SAL-{n:06d}" for n in range(1, 33)] + [f"STK-{n:06d}" for n in range(1, 33)]


def test_a_close_waits_for_a_posting_in_flight(pg_url):
    # given a posting into September, not yet committed
    tenant = make_tenant(pg_url)
    with tenant.uow() as uow:
        september_id = periods.ensure_period(uow, date(2026, 9, 1)).id
        uow.commit()
    done = threading.Event()

    def close() -> None:
        with tenant.uow() as closer:
            periods.close_period(closer, periods.get_period(closer, september_id, lock=True))
            closer.commit()
        done.set()

    with tenant.uow() as uow:
        _invoice(uow, date(2026, 9, 30))
        # when the period is closed meanwhile
        closing = threading.Thread(target=close)
        closing.start()
        # then the close waits for the posting...
        assert not done.wait(0.5)
        uow.commit()
    closing.join(10)
    # ...and the posting is in, the period closed after it
    assert done.is_set()
    with tenant.uow(readonly=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(JournalEntry)) == 1
        assert periods.get_period(uow, september_id).state == "closed"


def test_posted_entries_and_lines_cannot_be_edited_or_deleted(tenant):
    from entrepot.ledger.errors import PostedEntryImmutable

    with tenant.uow() as uow:
        entry_id = _invoice(uow, date(2026, 10, 1)).id
        uow.commit()
    with tenant.uow() as uow:
        line = uow.session.scalars(select(JournalLine).where(JournalLine.entry_id == entry_id)).first()
        line.debit = D("1")
        with pytest.raises(PostedEntryImmutable):
            uow.session.flush()
    with tenant.uow() as uow:
        uow.session.delete(uow.session.get(JournalEntry, entry_id))
        with pytest.raises(PostedEntryImmutable):
            uow.commit()
    with tenant.uow(readonly=True) as uow:
        assert trial_balance(uow).total_debit == D(100)


def test_an_entry_rolled_back_with_a_savepoint_takes_no_number_and_no_event(tenant):
    from entrepot.integration.models import OutboxEvent

    # given a posting inside a savepoint that is rolled back (a refused stock operation)
    with tenant.uow() as uow:
        savepoint = uow.session.begin_nested()
        _invoice(uow, date(2026, 11, 3))  # also creates November
        savepoint.rollback()
        # when the transaction goes on, posts into the same month and commits
        kept = _invoice(uow, date(2026, 11, 4))
        uow.commit()
    # then the kept entry is SAL-000001 and only it was announced
    with tenant.uow(readonly=True) as uow:
        assert list(uow.session.scalars(select(JournalEntry.number))) == ["SAL-000001"] == [kept.number]
        events = list(uow.session.scalars(select(OutboxEvent.subject).where(
            OutboxEvent.type == "journal_entry.posted.v1")))
        assert events == [f"journal_entry/{kept.id}"]
        # and the transaction's audit entry lists only the kept entry
        audited = list(uow.session.scalars(select(AuditEntry).where(AuditEntry.action == "ledger.entry.post")))
        assert [(a.entity_id, [e["id"] for e in a.after["entries"]]) for a in audited] == [(str(kept.id),
                                                                                             [str(kept.id)])]
