"""Posting writes a transaction's entries in bulk at commit; reads in between still see them."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from decimal import Decimal

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.engine import Engine

from entrepot.identity.models import AuditEntry
from entrepot.integration.models import OutboxEvent
from entrepot.ledger import posting
from entrepot.ledger.models import JournalEntry, JournalLine
from entrepot.ledger.services.entries import reverse_entry
from entrepot.ledger.services.reports import trial_balance

D = Decimal


def _invoice(uow, on, net=D(100)):  # type: ignore[no-untyped-def]
    return posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV", on=on, currency="USD",
                                customer_id=uuid.uuid4(), net=net, tax=D(0))


@contextmanager
def _statements() -> Iterator[Counter[str]]:
    """Counts the statements sent to the database, by their first two words."""
    seen: Counter[str] = Counter()

    def count(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        words = statement.split()
        seen[" ".join(words[:3] if words[0] == "INSERT" else words[:2])] += 1

    event.listen(Engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", count)


def test_a_transaction_of_entries_costs_a_few_statements_not_a_few_per_entry(tenant):
    # given a month already open and both journals already used (their periods and sequences exist)
    with tenant.uow() as uow:
        _invoice(uow, date(2026, 3, 1))
        posting.post_shipment_cost(uow, source_id=uuid.uuid4(), on=date(2026, 3, 1), amount=D("60.0000"))
        uow.commit()
    # when 40 invoices and 40 shipments post in one transaction
    with _statements() as seen, tenant.uow() as uow:
        for _ in range(40):
            _invoice(uow, date(2026, 3, 2))
            posting.post_shipment_cost(uow, source_id=uuid.uuid4(), on=date(2026, 3, 2), amount=D("60.0000"))
        uow.commit()
    # then entries, lines and events went in with one executemany each, numbered without an UPDATE
    assert seen["INSERT INTO ledger_journal_entries"] == 1
    assert seen["INSERT INTO ledger_journal_lines"] == 1
    assert seen["INSERT INTO outbox_events"] == 1
    assert seen["UPDATE ledger_journal_entries"] == 0
    assert seen["UPDATE document_sequences"] == 2  # one per journal: sales, inventory
    assert sum(seen.values()) < 30  # for 80 entries: the per-transaction lookups, the commit, the audit
    with tenant.uow(readonly=True) as uow:
        numbers = sorted(uow.session.scalars(select(JournalEntry.number)))
        assert numbers == sorted([f"SAL-{n:06d}" for n in range(1, 42)] + [f"STK-{n:06d}" for n in range(1, 42)])
        assert uow.session.scalar(select(func.count()).select_from(JournalLine)) == 41 * 2 + 41 * 2
        assert trial_balance(uow).total_debit == D(100) * 41 + D(60) * 41


def test_reads_in_the_transaction_see_the_entries_posted_so_far(tenant):
    # given an invoice posted and not yet committed
    with tenant.uow() as uow:
        entry = _invoice(uow, date(2026, 4, 1))
        # when the transaction reads the ledger and reverses it
        assert trial_balance(uow).total_debit == D(100)
        reversal = reverse_entry(uow, entry)
        uow.commit()
    # then both are numbered in order and announced
    with tenant.uow(readonly=True) as uow:
        rows = dict(uow.session.execute(select(JournalEntry.id, JournalEntry.number)).all())
        assert rows == {entry.id: "SAL-000001", reversal.id: "SAL-000002"}
        assert entry.number == "SAL-000001"
        assert uow.session.scalar(select(func.count()).select_from(OutboxEvent)
                                  .where(OutboxEvent.type == "journal_entry.posted.v1")) == 2
        assert trial_balance(uow).total_debit == D(0)  # the reversal cancels the invoice


def test_entries_written_inside_a_rolled_back_savepoint_but_posted_before_it_are_kept(tenant):
    # given an entry posted in the transaction, still buffered
    with tenant.uow() as uow:
        kept = _invoice(uow, date(2026, 5, 1))
        # when a savepoint reads the ledger (writing the buffer inside it), posts, and is rolled back
        savepoint = uow.session.begin_nested()
        assert uow.session.scalar(select(func.count()).select_from(JournalEntry)) == 1
        _invoice(uow, date(2026, 5, 2), net=D(7))
        uow.session.scalar(select(func.count()).select_from(JournalLine))
        savepoint.rollback()
        later = _invoice(uow, date(2026, 5, 3), net=D(5))
        uow.commit()
    # then the entry posted before the savepoint and the later one are there, gapless; the other is not
    with tenant.uow(readonly=True) as uow:
        rows = dict(uow.session.execute(select(JournalEntry.id, JournalEntry.number)).all())
        assert rows == {kept.id: "SAL-000001", later.id: "SAL-000002"}
        assert uow.session.scalar(select(func.count()).select_from(JournalLine)) == 4
        assert trial_balance(uow).total_debit == D(105)
        events = set(uow.session.scalars(select(OutboxEvent.subject).where(
            OutboxEvent.type == "journal_entry.posted.v1")))
        assert events == {f"journal_entry/{kept.id}", f"journal_entry/{later.id}"}


def test_a_bare_session_commit_after_posting_fails_loudly_instead_of_dropping_the_entry(tenant):
    # given an entry posted in a transaction
    with tenant.uow() as uow:
        _invoice(uow, date(2026, 6, 1))
        # when the session is committed behind the unit of work's back
        with pytest.raises(RuntimeError, match=r"uow\.commit"):
            uow.session.commit()
    # then nothing was written
    with tenant.uow(readonly=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(JournalEntry)) == 0


def test_one_audit_entry_per_transaction_lists_every_entry_posted(tenant):
    # when a billing run posts three invoices and a shipment in one transaction
    with tenant.uow() as uow:
        posted = [_invoice(uow, date(2026, 7, 1), net=D(n)) for n in (10, 20, 30)]
        posted.append(posting.post_shipment_cost(uow, source_id=uuid.uuid4(), on=date(2026, 7, 1), amount=D(6)))
        uow.commit()
    # then one audit entry names them all, with what each posted
    with tenant.uow(readonly=True) as uow:
        audited = list(uow.session.scalars(select(AuditEntry).where(AuditEntry.action == "ledger.entry.post")))
        assert len(audited) == 1
        listed = audited[0].after["entries"]
        assert [e["id"] for e in listed] == [str(e.id) for e in posted]
        assert [(e["journal"], e["total"], e["lines"]) for e in listed] == [
            ("sales", "10", 2), ("sales", "20", 2), ("sales", "30", 2), ("inventory", "6", 2)]
        assert listed[3]["accounts"] == sorted(["5000", "1200"])
        assert audited[0].entity_id == str(posted[0].id)


def test_postings_in_savepoints_read_the_chart_and_the_period_once_per_transaction(tenant):
    # given a month already open
    with tenant.uow() as uow:
        _invoice(uow, date(2026, 8, 1))
        uow.commit()
    # when ten invoices post in one transaction, each inside its own savepoint (as stock operations do)
    with _statements() as seen, tenant.uow() as uow:
        for _ in range(10):
            with uow.session.begin_nested():
                _invoice(uow, date(2026, 8, 2))
        uow.commit()
    # then the period was read once, not once per savepoint, and the accounts not at all: the
    # chart's stamp read with the period is the one they were read under in the first transaction
    assert seen["SELECT ledger_accounts.role,"] == 0
    assert seen["SELECT ledger_periods.id,"] == 1
    with tenant.uow(readonly=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(JournalEntry)) == 11


def test_a_query_in_the_transaction_loads_the_posted_entry_itself_numbered_at_commit(tenant):
    # given an invoice posted and still buffered
    with tenant.uow() as uow:
        entry = _invoice(uow, date(2026, 9, 1))
        # when the transaction loads it through the session
        loaded = uow.session.get(JournalEntry, entry.id)
        # then it is the same object, which gets its journal number at commit
        assert loaded is entry and entry.number.startswith("~")
        uow.commit()
        assert loaded.number == "SAL-000001"


def test_one_posting_in_its_own_transaction_costs_one_statement_per_lookup_and_per_table(tenant):
    # given a month already open and the journals already used (as in a running business)
    with tenant.uow() as uow:
        _invoice(uow, date(2026, 10, 1))
        posting.post_shipment_cost(uow, source_id=uuid.uuid4(), on=date(2026, 10, 1), amount=D("60.0000"))
        posting.post_customer_payment(uow, source_id=uuid.uuid4(), on=date(2026, 10, 1), currency="USD",
                                      customer_id=uuid.uuid4(), amount=D(100))
        uow.commit()
    # when an invoice posts alone in its transaction, as order-to-cash posts each document
    with _statements() as seen, tenant.uow() as uow:
        _invoice(uow, date(2026, 10, 2))
        uow.commit()
    # then the ledger sent one statement for the period (with the chart's stamp: the accounts
    # by role are known from the earlier transaction), one per number and one per table
    ledger = {kind: n for kind, n in seen.items() if "ledger" in kind or "document_sequences" in kind
              or "outbox" in kind}
    assert ledger == {"SELECT ledger_periods.id,": 1,
                      "UPDATE document_sequences": 1, "INSERT INTO ledger_journal_entries": 1,
                      "INSERT INTO ledger_journal_lines": 1, "INSERT INTO outbox_events": 1}
    # when one transaction posts three rules with different roles (shipment, invoice, payment)
    with _statements() as seen, tenant.uow() as uow:
        posting.post_shipment_cost(uow, source_id=uuid.uuid4(), on=date(2026, 10, 3), amount=D("60.0000"))
        _invoice(uow, date(2026, 10, 3))
        posting.post_customer_payment(uow, source_id=uuid.uuid4(), on=date(2026, 10, 3), currency="USD",
                                      customer_id=uuid.uuid4(), amount=D(100))
        uow.commit()
    # then the chart was not read again: its stamp has not moved
    assert seen["SELECT ledger_accounts.role,"] == 0
    with tenant.uow(readonly=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(JournalEntry)) == 7
        balance = trial_balance(uow)  # receivable 300 - 200 paid, cash 200, COGS 120
        assert balance.total_debit == balance.total_credit == D(100) + D(200) + D(120)


def test_lines_are_keyed_by_their_entry_and_number(tenant):
    # given two invoices posted in one transaction
    with tenant.uow() as uow:
        first = _invoice(uow, date(2026, 11, 2), net=D(80))
        second = _invoice(uow, date(2026, 11, 2), net=D(20))
        uow.commit()
    # then each entry's lines are numbered 1..n, every line its own (entry, number) key
    with tenant.uow(readonly=True) as uow:
        keys = [tuple(row) for row in uow.session.execute(select(JournalLine.entry_id, JournalLine.line_no)
                                                          .order_by(JournalLine.entry_id, JournalLine.line_no))]
        assert sorted(keys) == sorted([(first.id, 1), (first.id, 2), (second.id, 1), (second.id, 2)])
        assert all(isinstance(entry_id, uuid.UUID) for entry_id, _ in keys)
    # and an entry's lines are found by it and reverse as before
    with tenant.uow() as uow:
        reversal = reverse_entry(uow, uow.session.get(JournalEntry, first.id))
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(JournalLine)
                                  .where(JournalLine.entry_id == reversal.id)) == 2
        assert trial_balance(uow).total_debit == D(20)  # the invoice of 80 is gone; the one of 20 stays


def test_the_audit_chain_is_the_last_thing_a_transaction_writes(tenant):
    # The chain head's lock is per tenant: taken last, it is held for the shortest time,
    # whatever order the modules that hook the commit were imported in.
    order: list[str] = []

    def record(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        order.append(" ".join(statement.split()[:3]))

    with tenant.uow() as uow:
        _invoice(uow, date(2026, 3, 1))
        event.listen(Engine, "before_cursor_execute", record)
        try:
            uow.commit()
        finally:
            event.remove(Engine, "before_cursor_execute", record)
    claim = next(i for i, s in enumerate(order) if s.startswith("UPDATE audit_chain_heads"))
    assert any(s.startswith("INSERT INTO ledger_journal_entries") for s in order[:claim])
    assert not any(s.startswith(("INSERT INTO ledger", "INSERT INTO outbox")) for s in order[claim:])


def _revenue_account_of(uow, entry_id):  # type: ignore[no-untyped-def]
    from entrepot.ledger.models import Account

    return uow.session.scalar(select(Account.code).join(JournalLine, JournalLine.account_id == Account.id).where(
        JournalLine.entry_id == entry_id, JournalLine.credit > 0, Account.role == "revenue"))


def _move_revenue_role(uow, code, name):  # type: ignore[no-untyped-def]
    """Takes the revenue role off its account and gives it to a new account `code`."""
    from entrepot.ledger.services import accounts

    old = accounts.posting_account(uow, "revenue")
    accounts.update_account(uow, accounts.get_account(uow, old.id), {"role": None})
    accounts.create_account(uow, accounts.AccountData(code=code, name=name, type="income", role="revenue"))


def test_accounts_kept_across_transactions_follow_a_change_of_the_chart_committed_elsewhere(tenant):
    # given invoices posted, so the accounts by role are known to this process
    with tenant.uow() as uow:
        _invoice(uow, date(2026, 11, 1))
        uow.commit()
    # when another transaction moves the revenue role to a new account (as another process would:
    # the change reaches this one only through the database)
    with tenant.uow() as uow:
        _move_revenue_role(uow, "4010", "Web sales")
        uow.commit()
    # then the next posting reads the chart again and credits the new account
    with _statements() as seen, tenant.uow() as uow:
        entry = _invoice(uow, date(2026, 11, 2))
        uow.commit()
    assert seen["SELECT ledger_accounts.role,"] == 1
    with tenant.uow(readonly=True) as uow:
        assert _revenue_account_of(uow, entry.id) == "4010"
    # when the role moves back by a bare version bump of both rows (what any committed change does)
    with tenant.uow() as uow:
        from entrepot.ledger.models import Account

        for account in uow.session.scalars(select(Account).where(Account.code.in_(["4000", "4010"]))):
            account.role = "revenue" if account.code == "4000" else None
        uow.session.flush()
        uow.commit()
    # then the posting after it sees that too
    with tenant.uow() as uow:
        entry = _invoice(uow, date(2026, 11, 3))
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        assert _revenue_account_of(uow, entry.id) == "4000"


def test_a_chart_change_rolled_back_leaves_nothing_behind_in_the_accounts_kept(tenant):
    # given the accounts by role known to this process
    with tenant.uow() as uow:
        _invoice(uow, date(2026, 12, 1))
        uow.commit()
    # when a transaction moves the revenue role, posts with it, and rolls back
    with tenant.uow() as uow:
        _move_revenue_role(uow, "4020", "Trade sales")
        entry = _invoice(uow, date(2026, 12, 2))
        assert _revenue_account_of(uow, entry.id) == "4020"
    # then a later posting still credits the account the committed chart gives the role
    with tenant.uow() as uow:
        entry = _invoice(uow, date(2026, 12, 3))
        uow.commit()
    with tenant.uow(readonly=True) as uow:
        assert _revenue_account_of(uow, entry.id) == "4000"
