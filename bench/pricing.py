"""Price engine throughput: 10,000 products, 200 customers, 50 price lists with
quantity tiers (scoped to all, customer groups, customers and a channel), contract
prices and promotions; resolve 1,000-line orders through `resolve_prices` (each
order in its own read-only unit of work, queries included). Prints JSON.

    .venv/bin/python bench/pricing.py [--products 10000] [--customers 200] [--lists 50]
                                      [--orders 20] [--lines 1000] [--db sqlite|postgresql]

Target (issue 4): >= 20,000 line prices per second in-process.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--lists", type=int, default=50)
    parser.add_argument("--entries-per-list", type=int, default=400)
    parser.add_argument("--contracts-per-customer", type=int, default=5)
    parser.add_argument("--orders", type=int, default=20)
    parser.add_argument("--lines", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=1, help="orders resolved first and not timed")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    # The process settings every `entrepot` command applies at start-up (see kernel/process.py).
    from entrepot.kernel.process import settle_after_startup

    settle_after_startup()
    rng = random.Random(4)

    with tempfile.TemporaryDirectory() as tmp:
        if args.db == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        else:
            url = os.environ.get("ENTREPOT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
        os.environ["ENTREPOT_DATABASE_URL"] = url
        from entrepot.catalog.imports import import_products
        from entrepot.catalog.service import create_category, get_products_by_sku
        from entrepot.db.bootstrap import init_database
        from entrepot.db.uow import platform_uow, tenant_uow
        from entrepot.identity.services.tenants import TenantCreate, create_tenant
        from entrepot.parties.service import create_customer
        from entrepot.pricing.service import create_contract_price, create_price_list, resolve_prices

        init_database(url)
        with platform_uow(url=url) as platform:
            tenant_id = create_tenant(platform, TenantCreate(f"bench-{uuid.uuid4().hex[:8]}", "Bench")).id
            platform.commit()

        setup_started = time.perf_counter()
        with tenant_uow(tenant_id, url=url) as uow:
            categories = [create_category(uow, {"code": f"CAT-{i}", "name": f"Category {i}"}) for i in range(20)]
            cats = [c.code for c in categories]
            cat_ids = [c.id for c in categories]
            csv = io.StringIO()
            csv.write("sku,name,list_price,currency,standard_cost,category\n")
            for i in range(args.products):
                csv.write(f"P{i:06d},Product {i},{20 + i % 300}.{i % 100:02d},USD,{10 + i % 150}.00,"
                          f"{cats[i % len(cats)]}\n")
            csv.seek(0)
            assert import_products(uow, csv).ok
            product_ids = [p.id for p in get_products_by_sku(uow, [f"P{i:06d}" for i in range(args.products)])
                           .values()]
            groups = ["dealers", "retail", "wholesale", "export"]
            customers = [create_customer(uow, {"code": f"C{i:04d}", "name": f"Customer {i}", "currency": "USD",
                                               "customer_group": groups[i % len(groups)]}).id
                         for i in range(args.customers)]
            today = date.today()
            for n in range(args.lists):
                kind = "promotion" if n % 10 == 9 else "standard"
                scope = ["all", "customer_group", "customer", "channel", "all"][n % 5]
                header = {"code": f"PL{n:03d}", "name": f"List {n}", "currency": "USD", "kind": kind,
                          "priority": n % 4, "scope": scope,
                          "valid_from": today - timedelta(days=30) if kind == "promotion" or n % 3 == 0 else None,
                          "valid_to": today + timedelta(days=30) if kind == "promotion" else None}
                if scope == "customer_group":
                    header["customer_group"] = groups[n % len(groups)]
                elif scope == "customer":
                    header["customer_id"] = customers[n % len(customers)]
                elif scope == "channel":
                    header["channel"] = "web"
                entries = []
                for pid in rng.sample(product_ids, min(args.entries_per_list // 2, len(product_ids))):
                    method = rng.choice(["fixed", "discount", "markup"])
                    value = Decimal(rng.randint(1, 30)) if method != "fixed" else Decimal(rng.randint(500, 9000)) / 100
                    entries.append({"product_id": pid, "method": method, "value": value, "min_quantity": 0,
                                    "max_quantity": 10})
                    entries.append({"product_id": pid, "method": method, "value": value * Decimal("0.9"),
                                    "min_quantity": 10})
                if n % 4 == 1:  # some lists also price a whole category
                    entries.append({"category_id": cat_ids[n % len(cat_ids)], "method": "discount", "value": 5})
                create_price_list(uow, {**header, "entries": entries})
            for cid in customers:
                for pid in rng.sample(product_ids, min(args.contracts_per_customer, len(product_ids))):
                    create_contract_price(uow, {"customer_id": cid, "product_id": pid,
                                                "unit_price": Decimal(rng.randint(500, 5000)) / 100})
            uow.commit()
        setup_seconds = time.perf_counter() - setup_started

        timings: list[float] = []
        cpu_timings: list[float] = []
        rules: dict[str, int] = {}
        for n in range(args.orders + args.warmup):
            customer = rng.choice(customers)
            lines = [(pid, Decimal(rng.randint(1, 25))) for pid in rng.sample(product_ids, min(args.lines,
                                                                                                 len(product_ids)))]
            channel = rng.choice([None, "web"])
            started = time.perf_counter()
            cpu_started = time.process_time()
            with tenant_uow(tenant_id, readonly=True, url=url) as uow:
                if os.environ.get("BENCH_PROFILE"):
                    import cProfile
                    import pstats

                    with cProfile.Profile() as prof:
                        result = resolve_prices(uow, customer_id=customer, lines=lines, channel=channel)
                    pstats.Stats(prof, stream=sys.stderr).sort_stats("tottime").print_stats(25)
                else:
                    result = resolve_prices(uow, customer_id=customer, lines=lines, channel=channel)
            if n < args.warmup:
                continue  # the first order warms SQLAlchemy's statement caches
            timings.append(time.perf_counter() - started)
            cpu_timings.append(time.process_time() - cpu_started)
            for r in result:
                kind = r.rule.split(":")[0]
                rules[kind] = rules.get(kind, 0) + 1
        total_lines = args.orders * min(args.lines, len(product_ids))
        total = sum(timings)
        timings.sort()
        print(json.dumps({
            "benchmark": "price_resolution", "db": args.db, "products": args.products,
            "customers": args.customers, "price_lists": args.lists, "orders": args.orders,
            "lines_per_order": min(args.lines, len(product_ids)), "setup_seconds": round(setup_seconds, 1),
            "line_prices_per_s": round(total_lines / total, 1),
            # CPU time of this process only: what the machine would do without other load
            "line_prices_per_cpu_s": round(total_lines / sum(cpu_timings), 1),
            "order_ms_p50": round(timings[len(timings) // 2] * 1000, 1),
            "order_ms_max": round(timings[-1] * 1000, 1), "winning_rules": rules,
            "target_line_prices_per_s": 20000,
        }, indent=2))


if __name__ == "__main__":
    main()
