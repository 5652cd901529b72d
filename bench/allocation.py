"""Allocation benchmark: a large stock ledger, then allocations, stock queries and a back-dated receipt.

    .venv/bin/python bench/allocation.py [--db sqlite|postgresql|both] [--products 50000]
        [--warehouses 5] [--moves 1000000] [--orders 2000] [--workers 8] [--history 280000]

Defaults are the issue's full size; pass small numbers for a smoke run, e.g.
`--products 200 --moves 5000 --orders 50 --history 2000`. Prints JSON:

* `allocations_per_s`: 5-line orders (allocate + commit, one transaction each),
  single-threaded on SQLite, `--workers` threads on PostgreSQL (target on SQLite: >= 1,000);
* `allocations_per_cpu_s`: the same per CPU second of the process (steadier on a shared machine);
* `statements_per_allocation`: SQL statements sent per order, commit included
  (an executemany counts once); steady where wall time on a shared machine is not;
* `load_average_1m`, `cpus`: the machine's load when the allocations ended (on a shared machine,
  wall-time figures are only comparable at a similar load; the per-CPU-second one is steadier);
* `stock_query_p99_ms`: `stock_levels` of one random product in its own readonly transaction
  (target: < 5 ms; also its median and mean CPU time);
* `backdated_receipt_s`: a receipt dated before `--history` later moves of one
  product (alternating receipts and shipments), including the exact COGS correction (target: < 5 s);
  `--valuation fifo` makes the tenant value by FIFO, so the receipt replays cost layers;
* `targets`: each target and whether this run met it;
* with `--floor` (SQLite): `floor`, the allocations' own statements and commits replayed straight
  on the `sqlite3` driver on a copy of the database as it was before them (`bench/_replay.py`):
  what the SQL alone costs, and the WAL pages each allocation writes, by table and index.

The ledger is bulk-loaded (moves, balances and costs written directly, as an
import would), so the timings measure the operations, not the load.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import event, insert, select
from sqlalchemy.engine import Engine

from bench._server import fresh_database
from entrepot.catalog.models import Product
from entrepot.db.bootstrap import init_database
from entrepot.db.uow import platform_uow, tenant_uow
from entrepot.identity.services.tenant_settings import update_tenant_settings
from entrepot.identity.services.tenants import TenantCreate, create_tenant
from entrepot.inventory import service as inventory
from entrepot.inventory.models import ItemCost, Location, LocationKind, StockBalance, StockMove
from entrepot.kernel import clock
from entrepot.kernel.ids import new_id

BATCH = 10_000


def _setup(url: str, products: int, warehouses: int,
           valuation_method: str = "moving_average") -> tuple[uuid.UUID, list[uuid.UUID], list[uuid.UUID]]:
    init_database(url)
    with platform_uow(url=url) as platform:
        tenant = create_tenant(platform, TenantCreate(f"bench-{uuid.uuid4().hex[:8]}", "Bench", None, None, "USD"))
        platform.commit()
        tenant_id = tenant.id
    with tenant_uow(tenant_id, url=url) as uow:
        update_tenant_settings(uow, {"valuation_method": valuation_method})
        uow.commit()
    with tenant_uow(tenant_id, url=url) as uow:
        wh_ids = [inventory.create_warehouse(uow, {"code": f"W{i}", "name": f"Warehouse {i}", "priority": i}).id
                  for i in range(warehouses)]
        uow.commit()
    product_ids = [new_id() for _ in range(products)]
    with tenant_uow(tenant_id, url=url) as uow:
        for start in range(0, products, BATCH):
            uow.session.execute(insert(Product), [
                {"id": pid, "tenant_id": tenant_id, "sku": f"B-{i}", "name": f"Bench {i}", "list_price": Decimal(10),
                 "currency": "USD", "standard_cost": Decimal(1)}
                for i, pid in enumerate(product_ids[start:start + BATCH], start)])
        uow.commit()
    return tenant_id, wh_ids, product_ids


def _load_moves(url: str, tenant_id: uuid.UUID, wh_ids: list[uuid.UUID], product_ids: list[uuid.UUID],
                moves: int) -> None:
    """Receipts spread over products × warehouses; balances and costs set to what they add up to."""
    rng = random.Random(7)
    today = clock.today()
    with tenant_uow(tenant_id, url=url) as uow:
        stock = {loc.warehouse_id: loc.id for loc in uow.session.scalars(
            select(Location).where(Location.kind == LocationKind.STOCK))}
        adjustment = uow.session.scalar(select(Location.id).where(Location.kind == LocationKind.ADJUSTMENT))
        # Core executemany on the session's connection (rows carry their tenant_id): the ORM's bulk path
        # adds a fifth to the time of a million rows for nothing it checks here.
        conn = uow.session.connection()
        totals: dict[tuple[uuid.UUID, uuid.UUID], Decimal] = {}
        rows = []
        for i in range(moves):
            pid = product_ids[i % len(product_ids)]
            wid = wh_ids[rng.randrange(len(wh_ids))]
            qty = Decimal(rng.randint(1, 20))
            totals[(pid, wid)] = totals.get((pid, wid), Decimal(0)) + qty
            rows.append({"id": new_id(), "tenant_id": tenant_id, "product_id": pid, "from_location_id": adjustment,
                         "to_location_id": stock[wid], "to_warehouse_id": wid, "quantity": qty,
                         "unit_cost": Decimal(1), "value": qty, "kind": "adjustment", "reason": "bench load",
                         "reference": "", "effective_date": today - timedelta(days=30), "created_at": clock.now(),
                         "actor": "system"})
            if len(rows) == BATCH:
                conn.execute(insert(StockMove.__table__), rows)
                rows = []
        if rows:
            conn.execute(insert(StockMove.__table__), rows)
        items = list(totals.items())
        for start in range(0, len(items), BATCH):
            chunk = items[start:start + BATCH]
            conn.execute(insert(StockBalance.__table__), [
                {"id": new_id(), "tenant_id": tenant_id, "product_id": pid, "location_id": stock[wid],
                 "warehouse_id": wid, "location_kind": "stock", "lot_key": "", "on_hand": qty,
                 "reserved": Decimal(0)} for (pid, wid), qty in chunk])
            conn.execute(insert(ItemCost.__table__), [
                {"id": new_id(), "tenant_id": tenant_id, "product_id": pid, "warehouse_id": wid, "quantity": qty,
                 "value": qty, "unit_cost": Decimal(1)} for (pid, wid), qty in chunk])
        uow.commit()


def _allocations(url: str, tenant_id: uuid.UUID, product_ids: list[uuid.UUID], orders: int,
                 workers: int) -> tuple[float, float, float]:
    """Orders per second of wall time and per CPU second of this process (all its threads), and SQL
    statements per order (every statement sent, commit included). Unlike wall time on a shared machine,
    the last two are not much disturbed by other work on the machine."""
    per_worker = max(1, orders // workers)
    errors: list[BaseException] = []
    statements = itertools.count()

    def count(*_args: object) -> None:
        next(statements)  # atomic under the GIL, so safe from the worker threads

    def run(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(per_worker):
                lines = [inventory.Demand("bench_line", new_id(), rng.choice(product_ids), Decimal(1))
                         for _ in range(5)]
                with tenant_uow(tenant_id, url=url) as uow:
                    inventory.allocate(uow, lines)
                    uow.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    event.listen(Engine, "before_cursor_execute", count)
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    if errors:
        raise errors[0]
    done = per_worker * workers
    return done / elapsed, done / cpu, next(statements) / done


def _stock_query(url: str, tenant_id: uuid.UUID, product_ids: list[uuid.UUID],
                 samples: int = 1000) -> dict[str, float]:
    """Milliseconds per `stock_levels` call in its own readonly transaction: median and p99 of wall
    time, and the mean CPU time."""
    rng = random.Random(3)
    times = []
    cpu_started = time.process_time()
    for _ in range(samples):
        pid = rng.choice(product_ids)
        t0 = time.perf_counter()
        with tenant_uow(tenant_id, readonly=True, url=url) as uow:
            inventory.stock_levels(uow, pid)
        times.append((time.perf_counter() - t0) * 1000)
    cpu_ms = (time.process_time() - cpu_started) * 1000 / samples
    return {"stock_query_median_ms": round(statistics.median(times), 3),
            "stock_query_p99_ms": round(statistics.quantiles(times, n=100)[98], 3),
            "stock_query_cpu_ms": round(cpu_ms, 3)}


def _backdated(url: str, tenant_id: uuid.UUID, wh_id: uuid.UUID, history: int) -> dict[str, float | str]:
    """One product with `history` moves (receipts and shipments alternating, dated over the past
    days), then a receipt dated before all of them: time it, with its COGS correction."""
    pid = new_id()
    today = clock.today()
    with tenant_uow(tenant_id, url=url) as uow:
        uow.session.execute(insert(Product).values(id=pid, tenant_id=tenant_id, sku="B-HIST", name="History",
                                                   list_price=Decimal(10), currency="USD", standard_cost=Decimal(1)))
        locs = {(loc.warehouse_id, loc.kind): loc.id for loc in uow.session.scalars(select(Location))}
        stock, customer = locs[(wh_id, "stock")], locs[(None, "customer")]
        supplier = locs[(None, "supplier")]
        rows = []
        on_hand = Decimal(0)
        for i in range(history):
            receipt = i % 2 == 0
            qty = Decimal(2) if receipt else Decimal(1)
            on_hand += qty if receipt else -qty
            rows.append({"id": new_id(), "tenant_id": tenant_id, "product_id": pid,
                         "from_location_id": supplier if receipt else stock,
                         "to_location_id": stock if receipt else customer,
                         "from_warehouse_id": None if receipt else wh_id, "to_warehouse_id": wh_id if receipt else None,
                         "quantity": qty, "unit_cost": Decimal(1), "value": qty,
                         "kind": "receipt" if receipt else "issue", "reference": "",
                         "effective_date": today - timedelta(days=20) + timedelta(days=i * 19 // history),
                         "created_at": clock.now(), "actor": "system"})
            if len(rows) == BATCH:
                uow.session.connection().execute(insert(StockMove.__table__), rows)
                rows = []
        if rows:
            uow.session.connection().execute(insert(StockMove.__table__), rows)
        uow.session.execute(insert(StockBalance).values(id=new_id(), tenant_id=tenant_id, product_id=pid,
                                                        location_id=stock, warehouse_id=wh_id, location_kind="stock",
                                                        lot_key="", on_hand=on_hand, reserved=Decimal(0)))
        uow.session.execute(insert(ItemCost).values(id=new_id(), tenant_id=tenant_id, product_id=pid,
                                                    warehouse_id=wh_id, quantity=on_hand, value=on_hand,
                                                    unit_cost=Decimal(1)))
        uow.commit()
    t0 = time.perf_counter()
    with tenant_uow(tenant_id, url=url) as uow:
        inventory.receive_stock(uow, product_id=pid, warehouse_id=wh_id, quantity=100, unit_cost="3.00",
                                reference="PO-LATE", on=today - timedelta(days=25))
        uow.commit()
    elapsed = time.perf_counter() - t0
    from entrepot.inventory.models import ValuationCorrection

    with tenant_uow(tenant_id, readonly=True, url=url) as uow:
        correction = uow.session.scalar(select(ValuationCorrection).where(ValuationCorrection.product_id == pid))
    return {"backdated_receipt_s": round(elapsed, 3), "later_moves": history,
            "cogs_correction": str(correction.amount) if correction else "0"}


def run(kind: str, args: argparse.Namespace) -> dict[str, object]:
    with fresh_database(kind) as url:
        t0 = time.perf_counter()
        tenant_id, wh_ids, product_ids = _setup(url, args.products, args.warehouses, args.valuation)
        _load_moves(url, tenant_id, wh_ids, product_ids, args.moves)
        load_s = time.perf_counter() - t0
        workers = 1 if kind == "sqlite" else args.workers
        result: dict[str, object] = {
            "db": kind, "valuation": args.valuation, "products": args.products, "warehouses": args.warehouses,
            "moves": args.moves,
            "load_s": round(load_s, 1), "workers": workers, "orders": args.orders,
        }
        if args.floor and kind == "sqlite":
            # The replay runs the recorded statements in order on one connection: one worker only
            # (SQLite's allocations are single-threaded here), or transactions would interleave.
            assert workers == 1
            from bench import _replay
            from entrepot.db.engine import get_engine

            get_engine(url).dispose()
            before = _replay.snapshot(url.removeprefix("sqlite:///"))
            with _replay.recording() as recorded:
                per_s, per_cpu_s, per_order = _allocations(url, tenant_id, product_ids, args.orders, workers)
            get_engine(url).dispose()
            result["floor"] = _replay.replay(before, recorded).per("allocation", args.orders)
            pages = _replay.wal_pages(before, recorded)
            result["floor"] |= {
                "wal_pages_per_allocation": round(sum(pages.values()) / args.orders, 1),
                "wal_pages_per_allocation_by_table": {name: round(n / args.orders, 1)
                                                      for name, n in pages.most_common(12)}}
        else:
            per_s, per_cpu_s, per_order = _allocations(url, tenant_id, product_ids, args.orders, workers)
        result |= {"allocations_per_s": round(per_s, 1), "allocations_per_cpu_s": round(per_cpu_s, 1),
                   "statements_per_allocation": round(per_order, 1),
                   # what else ran on the machine meanwhile: wall-time figures mean little under load
                   "load_average_1m": round(os.getloadavg()[0], 2), "cpus": os.cpu_count()}
        result |= _stock_query(url, tenant_id, product_ids)
        result.update(_backdated(url, tenant_id, wh_ids[0], args.history))
        # The targets (the first on SQLite only), as figures: met or not.
        result["targets"] = {
            "stock_query_p99_ms < 5": result["stock_query_p99_ms"] < 5,
            "backdated_receipt_s < 5": result["backdated_receipt_s"] < 5,
        }
        if kind == "sqlite":
            result["targets"]["allocations_per_s >= 1000"] = per_s >= 1000
        from entrepot.db.engine import dispose_engines

        dispose_engines()
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--products", type=int, default=50_000)
    parser.add_argument("--warehouses", type=int, default=5)
    parser.add_argument("--moves", type=int, default=1_000_000)
    parser.add_argument("--orders", type=int, default=2_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--history", type=int, default=280_000)
    parser.add_argument("--valuation", choices=["moving_average", "fifo"], default="moving_average",
                        help="the tenant's valuation method (the back-dated receipt replays by it)")
    parser.add_argument("--floor", action="store_true",
                        help="SQLite: also replay the allocations' statements on the driver alone (bench/_replay.py)")
    args = parser.parse_args()
    # The process settings every `entrepot` command applies at start-up (see kernel/process.py).
    from entrepot.kernel.process import settle_after_startup

    settle_after_startup()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    print(json.dumps([run(kind, args) for kind in kinds], indent=2))


if __name__ == "__main__":
    main()
