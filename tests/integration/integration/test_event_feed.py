"""The outbox feed never skips an event, even one committed after a later one (PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import text

from entrepot.integration.feed import START, Position, events_after
from entrepot.integration.outbox import record_event
from entrepot.kernel.events import EventData, event_type
from tests.conftest import make_tenant


@event_type("test_crate.packed.v1")
class CratePacked(EventData):
    """Test-only event."""

    crate: str


def _read_all(tenant, after: Position) -> tuple[list[str], Position]:
    with tenant.uow(readonly=True) as uow:
        rows = events_after(uow.session, after, limit=1000, types=["test_crate.packed.v1"])
        crates = [r.data["crate"] for r in rows]
        return crates, (Position.of(rows[-1]) if rows else after)


def _read_settled(tenant, after: Position, want: int) -> tuple[list[str], Position]:
    """Other transactions of the cluster can hold the horizon back for a moment: wait for them."""
    import time

    deadline = time.monotonic() + 10
    while True:
        crates, position = _read_all(tenant, after)
        if len(crates) >= want or time.monotonic() > deadline:
            return crates, position
        time.sleep(0.05)


def test_an_in_flight_transactions_event_is_held_back_then_delivered(pg_url):
    tenant = make_tenant(pg_url)
    # given a transaction that recorded an event and has not committed
    slow = tenant.uow().__enter__()
    record_event(slow, CratePacked(crate="slow"), subject="crate/slow")
    slow.write_events()  # its row written now (events otherwise go in at commit): in flight
    # and a later transaction that recorded and committed
    with tenant.uow() as fast:
        record_event(fast, CratePacked(crate="fast"), subject="crate/fast")
        fast.commit()
    # when the feed is read meanwhile
    seen, cursor = _read_all(tenant, START)
    # then the committed event is held back behind the one still in flight (no cursor passes it)
    assert seen == []
    # when the slow transaction commits and the feed is read from the same cursor
    slow.commit()
    slow.__exit__(None, None, None)
    seen, cursor = _read_settled(tenant, cursor, want=2)
    # then both arrive, in transaction order, and nothing is skipped
    assert seen == ["slow", "fast"]


def test_an_older_transaction_committing_a_smaller_position_later_is_not_skipped(pg_url):
    tenant = make_tenant(pg_url)
    # given an old transaction that took its transaction id early, then a young one that
    # records an event (smaller seq) and stays open
    old = tenant.uow().__enter__()
    old.session.execute(text("SELECT pg_current_xact_id()"))
    young = tenant.uow().__enter__()
    record_event(young, CratePacked(crate="young"), subject="crate/young")
    young.session.flush()
    # and the old one records (larger seq) and commits
    record_event(old, CratePacked(crate="old"), subject="crate/old")
    old.commit()
    old.__exit__(None, None, None)
    # when a reader consumes what is settled
    seen, cursor = _read_settled(tenant, START, want=1)
    assert seen == ["old"]
    # and the young transaction commits afterwards
    young.commit()
    young.__exit__(None, None, None)
    # then the reader still gets it from its cursor: a seq-only cursor would have skipped it
    later, _ = _read_settled(tenant, cursor, want=1)
    assert later == ["young"]


def test_on_sqlite_the_feed_is_in_commit_order(sqlite_only):
    tenant = make_tenant(sqlite_only)
    with tenant.uow() as uow:
        record_event(uow, CratePacked(crate="a"), subject="crate/a")
        record_event(uow, CratePacked(crate="b"), subject="crate/b")
        uow.commit()
    seen, _ = _read_all(tenant, START)
    assert seen == ["a", "b"]


def test_a_writer_in_another_database_does_not_hold_the_feed_back(pg_url):
    # given a transaction with a transaction id, left open in another database of the cluster
    import psycopg

    from tests.conftest import PG_ADMIN_URL

    tenant = make_tenant(pg_url)
    with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", "")) as elsewhere:
        elsewhere.execute("SELECT pg_current_xact_id()")
        # when an event commits here
        with tenant.uow() as uow:
            record_event(uow, CratePacked(crate="here"), subject="crate/here")
            uow.commit()
        # then the feed shows it at once (pg_snapshot_xmin alone would hold it back)
        seen, _ = _read_settled(tenant, START, want=1)
        elsewhere.rollback()
    assert seen == ["here"]


def test_the_worker_s_all_tenant_read_is_refused_to_a_tenant_session(db_url):
    import pytest

    from entrepot.db.engine import TenancyViolation
    from entrepot.integration.feed import event_rows_after

    tenant = make_tenant(db_url)
    with tenant.uow(readonly=True) as uow, pytest.raises(TenancyViolation):
        event_rows_after(uow.session, START, limit=10)


def test_anything_after_tells_whether_a_committed_event_lies_beyond_a_position(db_url):
    from entrepot.db.uow import platform_uow
    from entrepot.integration.feed import anything_after

    # given an event, read back settled (its position)
    tenant = make_tenant(db_url)
    with tenant.uow() as uow:
        record_event(uow, CratePacked(crate="probe"), subject="crate/probe")
        uow.commit()
    crates, position = _read_settled(tenant, START, want=1)
    assert "probe" in crates
    with platform_uow(readonly=True, url=db_url) as uow:
        # then a position just before it has something after it, and so does the start
        assert anything_after(uow.session, Position(position.txid, position.seq - 1))
        assert anything_after(uow.session, START)
        # and nothing lies after the newest committed event (tests in this database run one at a time)
        newest = max(position, Position(position.txid + 10**9, 0)) if position.txid else Position(0, 10**12)
        assert not anything_after(uow.session, newest)


def test_a_fan_out_that_remembers_its_position_skips_the_cursor_when_nothing_is_new(db_url):
    from sqlalchemy import event

    from entrepot.db.engine import get_engine
    from entrepot.db.uow import platform_uow
    from entrepot.integration import delivery

    tenant = make_tenant(db_url)
    progress = delivery.FanOutProgress()

    def fan_out() -> tuple[int, list[str]]:
        statements: list[str] = []

        def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
            statements.append(statement)

        engine = get_engine(db_url)
        event.listen(engine, "before_cursor_execute", count)
        try:
            with platform_uow(url=db_url) as uow:
                done = delivery.fan_out(uow.session, limit=10_000, progress=progress)
                uow.commit()
        finally:
            event.remove(engine, "before_cursor_execute", count)
        return done, statements

    # given a fan-out that has consumed everything there is (the feed can be held back for a
    # moment on PostgreSQL: until the look finds nothing)
    with tenant.uow() as uow:
        record_event(uow, CratePacked(crate="one"), subject="crate/one")
        uow.commit()
    _read_settled(tenant, START, want=1)
    while fan_out()[0]:
        pass
    # when it looks again with nothing new
    done, statements = fan_out()
    # then it stops after the one probe: no cursor lock (a write), no settled read
    assert done == 0
    assert [s for s in statements if "integration_consumer_cursors" in s or "outbox_events.data" in s] == []
    assert len([s for s in statements if "outbox_events" in s]) == 1
    # and a new event is still picked up
    with tenant.uow() as uow:
        record_event(uow, CratePacked(crate="two"), subject="crate/two")
        uow.commit()
    _read_settled(tenant, START, want=2)
    assert fan_out()[0] >= 1
