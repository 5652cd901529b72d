"""Ledger benchmark: posting throughput, and report times over what was posted. Prints JSON.

    .venv/bin/python bench/ledger.py [--db sqlite|postgresql|both] [--lines 1000000] [--invoices 100000]

Posts a year of a distributor's books in two phases. Documents: through the posting rules (the path
billing and inventory use: `journal_entry.posted.v1` per entry, one audit entry per transaction
listing its entries), `--batch` documents per transaction as a billing run: invoices (3 lines)
to 1,000 customers, open — `--invoices` of them are never paid — shipments at cost (2 lines)
and customer payments (2 lines). Bulk (`--bulk-share` of the lines): 50-line entries through
`post_entry`, as an import. Until `--lines` journal lines exist. Then times, best of 3, a trial
balance over all lines, a 12-month profit and loss, and a receivables aging over the open invoices.

Each phase prints its lines/s (wall clock) and lines per CPU-second of this process (on a
shared machine the wall clock mostly measures the neighbours; on PostgreSQL the server's
CPU is not counted), and says how it posted ("how").

Targets (issue 6): ≥ 20,000 lines/s posting on SQLite; trial balance over 1M
lines < 1 s; aging over 100,000 open invoices < 1 s.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from sqlalchemy import event, select
from sqlalchemy.engine import Engine

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._server import fresh_database
from entrepot.db.bootstrap import init_database
from entrepot.db.engine import dispose_engines, get_engine
from entrepot.db.uow import platform_uow, tenant_uow
from entrepot.identity.services.tenants import TenantCreate, create_tenant
from entrepot.ledger import posting
from entrepot.ledger.chart import JournalCode, Role
from entrepot.ledger.models import Account
from entrepot.ledger.services import accounts as chart
from entrepot.ledger.services.entries import LineDraft, post_entry
from entrepot.ledger.services.reports import aging, monthly_profit_and_loss, profit_and_loss, trial_balance

YEAR = date(2026, 1, 1)
BULK_LINES = 50  # lines per entry in the bulk phase (a day's summarised sales journal, an import)


_STATEMENTS = [0]


@event.listens_for(Engine, "before_cursor_execute")
def _count(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
    _STATEMENTS[0] += 1  # an executemany counts once: it is one round trip's worth of work to the caller


def _best(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(min(times), 3)


def _documents(url: str, tenant_id: uuid.UUID, open_n: int, paid_n: int,
               batch: int) -> tuple[int, int, float, float]:
    """Invoices with their shipments (5 lines), some paid (2 more), through the posting rules."""
    rng = random.Random(6)
    customers = [uuid.uuid4() for _ in range(1000)]
    plan = ["open"] * open_n + ["paid"] * paid_n
    rng.shuffle(plan)
    lines = entries = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for start in range(0, len(plan), batch):
        with tenant_uow(tenant_id, url=url) as uow:
            for kind in plan[start:start + batch]:
                on = YEAR + timedelta(days=rng.randrange(365))
                customer = rng.choice(customers)
                net = Decimal(rng.randrange(1000, 500000)) / 100
                tax = (net * Decimal("0.1")).quantize(Decimal("0.01"))
                posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV", on=on, currency="USD",
                                     customer_id=customer, net=net, tax=tax, due_on=on + timedelta(days=30))
                posting.post_shipment_cost(uow, source_id=uuid.uuid4(), on=on,
                                           amount=(net * Decimal("0.6")).quantize(Decimal("0.0001")))
                lines += 5
                entries += 2
                if kind == "paid":
                    posting.post_customer_payment(uow, source_id=uuid.uuid4(), on=min(on + timedelta(days=20),
                                                  date(2026, 12, 31)), currency="USD", customer_id=customer,
                                                  amount=net + tax)
                    lines += 2
                    entries += 1
            uow.commit()
    return lines, entries, time.perf_counter() - t0, time.process_time() - c0


def _single(url: str, tenant_id: uuid.UUID, documents: int) -> tuple[int, int, float, float, int]:
    """One posting per transaction, as order-to-cash makes them (a shipment's COGS, an invoice, a
    payment, each committed with its document): the per-transaction cost of a small posting."""
    rng = random.Random(8)
    customers = [uuid.uuid4() for _ in range(100)]
    lines = entries = 0
    _STATEMENTS[0] = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for n in range(documents):
        on = YEAR + timedelta(days=rng.randrange(365))
        customer = rng.choice(customers)
        net = Decimal(rng.randrange(1000, 500000)) / 100
        with tenant_uow(tenant_id, url=url) as uow:
            if n % 3 == 0:
                posting.post_shipment_cost(uow, source_id=uuid.uuid4(), on=on,
                                           amount=(net * Decimal("0.6")).quantize(Decimal("0.0001")))
                lines += 2
            elif n % 3 == 1:
                tax = (net * Decimal("0.1")).quantize(Decimal("0.01"))
                posting.post_invoice(uow, source_id=uuid.uuid4(), number="INV", on=on, currency="USD",
                                     customer_id=customer, net=net, tax=tax, due_on=on + timedelta(days=30))
                lines += 3
            else:
                posting.post_customer_payment(uow, source_id=uuid.uuid4(), on=on, currency="USD",
                                              customer_id=customer, amount=net)
                lines += 2
            entries += 1
            uow.commit()
    return lines, entries, time.perf_counter() - t0, time.process_time() - c0, _STATEMENTS[0]


def _bulk(url: str, tenant_id: uuid.UUID, lines: int, batch: int) -> tuple[int, int, float, float]:
    """Entries of BULK_LINES lines (expenses spread over accounts, one cash line) through post_entry."""
    rng = random.Random(7)
    n_entries = lines // BULK_LINES
    done = 0
    t0, c0 = time.perf_counter(), time.process_time()
    while done < n_entries:
        with tenant_uow(tenant_id, url=url) as uow:
            accounts = list(uow.session.scalars(select(Account).where(Account.type == "expense",
                                                                       Account.role.is_(None))))
            cash = chart.account_for_role(uow, Role.cash)
            for _ in range(min(batch // 10, n_entries - done)):
                amounts = [Decimal(rng.randrange(100, 100000)) / 100 for _ in range(BULK_LINES - 1)]
                drafts = [LineDraft(rng.choice(accounts), a) for a in amounts]
                drafts.append(LineDraft(cash, -sum(amounts)))
                post_entry(uow, journal=JournalCode.general, on=YEAR + timedelta(days=rng.randrange(365)),
                           currency="USD", lines=drafts, source_type="import", description="Expenses import")
                done += 1
            uow.commit()
    return done * BULK_LINES, done, time.perf_counter() - t0, time.process_time() - c0


def run(url: str, lines: int, open_invoices: int, batch: int, bulk_share: float,
        single: int) -> dict:  # type: ignore[type-arg]
    init_database(url)
    with platform_uow(url=url) as platform:
        tenant_id = create_tenant(platform, TenantCreate(f"bench-{uuid.uuid4().hex[:8]}", "Bench", None, None,
                                                         "USD")).id
        platform.commit()
    bulk_target = int(lines * bulk_share)
    doc_target = lines - bulk_target
    open_n = min(open_invoices, doc_target // 5)
    paid_n = max(0, (doc_target - open_n * 5) // 7)
    _STATEMENTS[0] = 0
    doc_lines, doc_entries, doc_s, doc_cpu = _documents(url, tenant_id, open_n, paid_n, batch)
    doc_statements = _STATEMENTS[0]
    _STATEMENTS[0] = 0
    bulk_lines, bulk_entries, bulk_s, bulk_cpu = _bulk(url, tenant_id, bulk_target, batch)
    bulk_statements = _STATEMENTS[0]
    # what autovacuum / a maintenance job does in production after a big load: statistics
    # for the planner and (PostgreSQL) a visibility map so covering indexes are index-only
    with get_engine(url).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM ANALYZE ledger_journal_lines" if url.startswith("postgresql") else "ANALYZE")
    with tenant_uow(tenant_id, url=url, readonly=True) as uow:
        tb_time = _best(lambda: trial_balance(uow, as_of=date(2026, 12, 31)))
        report = trial_balance(uow, as_of=date(2026, 12, 31))
        assert report.total_debit == report.total_credit
        pnl_time = _best(lambda: profit_and_loss(uow, from_date=YEAR, to_date=date(2026, 12, 31)))
        monthly_time = _best(lambda: monthly_profit_and_loss(uow, from_date=YEAR, to_date=date(2026, 12, 31)))
        aging_time = _best(lambda: aging(uow, as_of=date(2026, 12, 31)))
        a = aging(uow, as_of=date(2026, 12, 31))
        assert a.total == a.control_balance
    single_lines, single_n, single_s, single_cpu, single_statements = _single(url, tenant_id, single)
    dispose_engines()
    total = doc_lines + bulk_lines
    return {
        "journal_lines": total,
        "documents": {"how": f"through the posting rules: per document an invoice (3 lines) and its shipment at "
                               f"cost (2 lines), a payment (2 lines) for paid ones; {batch} documents per "
                               "transaction, as a billing run",
                      "lines": doc_lines, "entries": doc_entries, "open_invoices": open_n, "seconds": round(doc_s, 2),
                      "lines_per_s": round(doc_lines / doc_s) if doc_s else None,
                      "entries_per_s": round(doc_entries / doc_s) if doc_s else None,
                      "cpu_s": round(doc_cpu, 2), "lines_per_cpu_s": round(doc_lines / doc_cpu) if doc_cpu else None,
                      "statements_per_entry": round(doc_statements / doc_entries, 3) if doc_entries else None},
        "bulk": {"how": f"post_entry of {BULK_LINES}-line entries, {batch // 10} entries per transaction, "
                          "as an import", "lines": bulk_lines, "entries": bulk_entries, "lines_per_entry": BULK_LINES,
                 "seconds": round(bulk_s, 2), "lines_per_s": round(bulk_lines / bulk_s) if bulk_s else None,
                 "cpu_s": round(bulk_cpu, 2), "lines_per_cpu_s": round(bulk_lines / bulk_cpu) if bulk_cpu else None,
                 "statements_per_entry": round(bulk_statements / bulk_entries, 3) if bulk_entries else None},
        "lines_per_s_overall": round(total / (doc_s + bulk_s)),
        "lines_per_cpu_s_overall": round(total / (doc_cpu + bulk_cpu)),
        "trial_balance_s": tb_time, "profit_and_loss_12_months_s": pnl_time,
        "profit_and_loss_by_month_12_columns_s": monthly_time, "receivables_aging_s": aging_time,
        "aging_customers": len(a.rows),
        "single": {"how": "one posting per transaction, committed (a shipment's COGS, an invoice, a payment in "
                          "turn), after the reports", "entries": single_n, "lines": single_lines,
                   "seconds": round(single_s, 2), "cpu_s": round(single_cpu, 2),
                   "cpu_us_per_entry": round(single_cpu / single_n * 1e6) if single_n else None,
                   "statements_per_transaction": round(single_statements / single_n, 2) if single_n else None},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="sqlite")
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--invoices", type=int, default=100_000, help="open (unpaid) invoices")
    parser.add_argument("--batch", type=int, default=2000, help="documents per transaction")
    parser.add_argument("--bulk-share", type=float, default=0.4,
                        help=f"share of the lines posted as {BULK_LINES}-line entries (the rest as documents)")
    parser.add_argument("--single", type=int, default=3000,
                        help="then this many single-posting transactions (not counted in the figures above)")
    args = parser.parse_args()
    # The process settings every `entrepot` command applies at start-up (see kernel/process.py).
    from entrepot.kernel.process import settle_after_startup

    settle_after_startup()
    results = {}
    for kind in (["sqlite", "postgresql"] if args.db == "both" else [args.db]):
        with fresh_database(kind) as url:
            results[kind] = run(url, args.lines, args.invoices, args.batch, args.bulk_share, args.single)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
