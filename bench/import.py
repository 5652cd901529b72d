"""Bulk product import: generate a CSV of N products, import it into a fresh SQLite
database through `import_products` (the code behind `entrepot import products`),
print rows/s and peak memory (the process's max RSS) as JSON.

    .venv/bin/python bench/import.py [--rows 100000] [--db sqlite|postgresql]

Target (issue 4): >= 5,000 rows/s on SQLite, peak memory under 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def write_csv(path: Path, rows: int) -> None:
    with open(path, "w") as fh:
        fh.write("sku,name,description,unit,list_price,currency,standard_cost,weight_kg,tax_class\n")
        for i in range(rows):
            fh.write(f"SKU-{i:07d},Product {i},Bench item {i},each,{10 + i % 900}.{i % 100:02d},USD,"
                     f"{5 + i % 400}.{i % 97:02d},{i % 50}.5,standard\n")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    # The process settings every `entrepot` command applies at start-up (see kernel/process.py).
    from entrepot.kernel.process import settle_after_startup

    settle_after_startup()

    with tempfile.TemporaryDirectory() as tmp:
        if args.db == "sqlite":
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        else:
            url = os.environ.get("ENTREPOT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
        os.environ["ENTREPOT_DATABASE_URL"] = url
        from entrepot.catalog.imports import import_products
        from entrepot.db.bootstrap import init_database
        from entrepot.db.uow import platform_uow, tenant_uow
        from entrepot.identity.services.tenants import TenantCreate, create_tenant

        init_database(url)
        with platform_uow(url=url) as platform:
            tenant = create_tenant(platform, TenantCreate(f"bench-{uuid.uuid4().hex[:8]}", "Bench"))
            platform.commit()
            tenant_id = tenant.id
        csv_path = Path(tmp) / "products.csv"
        write_csv(csv_path, args.rows)

        started = time.perf_counter()
        cpu_started = time.process_time()
        with tenant_uow(tenant_id, url=url) as uow, open(csv_path, newline="") as fh:
            report = import_products(uow, fh)
            assert report.ok, report.errors[:5]
            uow.commit()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        max_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({
            "benchmark": "product_import", "db": args.db, "rows": report.rows, "created": report.created,
            "seconds": round(elapsed, 2), "rows_per_s": round(report.rows / elapsed, 1),
            # this process's CPU time only (the machine is shared; SQLite I/O waits are not counted)
            "rows_per_cpu_s": round(report.rows / cpu, 1),
            # peak resident memory of the whole process (interpreter and libraries included);
            # tracemalloc is not used because it slows Python several times over
            "peak_rss_mb": round(max_rss_kb / 1024, 1),
            "targets": {"rows_per_s": 5000, "peak_mb": 300},
        }, indent=2))


if __name__ == "__main__":
    main()
