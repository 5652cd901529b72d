"""Order-to-cash throughput: the contract flow (a 5-line order: create, confirm, ship, invoice,
pay) N times on a fresh database, one transaction per step as in real use.

    .venv/bin/python bench/o2c.py --orders 1000 --via service --db sqlite
    .venv/bin/python bench/o2c.py --orders 500 --via http --db postgresql
    .venv/bin/python bench/o2c.py --orders 0 --big        # only the large-document timings

`--via service` drives the service layer in-process; `--via http` drives a real
`entrepot serve` over loopback (keep-alive, one client). `--via floor` (SQLite) measures
what the database alone costs: it runs the service flow once while recording every
statement with its parameters and every commit, then replays exactly those statements on
a copy of the database as it was before the flow, straight on the `sqlite3` driver (same
settings, same transactions, rows fetched), and once more with only the writes; the
difference to `--via service` is the cost of the Python above the database. It also
counts the pages each order writes to the WAL, by table and index (bench/_replay.py). `--big` also times
invoicing one 2,000-line order and posting one 80-line invoice. The last line
printed is one JSON object with at least `orders`, `seconds`, `orders_per_s`, and
`orders_per_cpu_s`: orders per CPU second of the process doing the work (this one
with `--via service`, the server with `--via http`), steadier than wall-clock time
on a shared machine; `--via service` adds `statements_per_order`, and per step of the
flow `cpu_ms_per_step` and `statements_per_step`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._server import cli, fresh_database, server, server_cpu_seconds

LINES = 5


# ---------------------------------------------------------------- in-process


def _service_setup(url: str, products: int) -> tuple[Any, list[Any], Any]:
    os.environ["ENTREPOT_DATABASE_URL"] = url
    from entrepot.db.settings import reset_settings

    reset_settings()
    from sqlalchemy import select

    from entrepot.catalog.service import create_product
    from entrepot.db.uow import platform_uow, tenant_uow
    from entrepot.identity.models import Tenant
    from entrepot.inventory.service import adjust_stock, create_warehouse
    from entrepot.parties.service import create_customer

    with platform_uow(readonly=True) as platform:
        tenant_id = platform.session.scalar(select(Tenant.id).where(Tenant.slug == "bench"))
    with tenant_uow(tenant_id) as uow:
        warehouse = create_warehouse(uow, {"code": "MAIN", "name": "Main"})
        items = [create_product(uow, {"sku": f"B-{i:05d}", "name": f"Bench item {i}", "list_price": Decimal("9.99"),
                                      "currency": "USD", "standard_cost": Decimal("4.00")}) for i in range(products)]
        for p in items:
            adjust_stock(uow, warehouse_id=warehouse.id, product_id=p.id, quantity=Decimal(10**7), reason="bench",
                         unit_cost=Decimal("4.00"))
        customer = create_customer(uow, {"code": "BENCH", "name": "Bench customer", "currency": "USD"})
        uow.commit()
        return tenant_id, [p.id for p in items], customer.id


# Per step of the flow: CPU seconds and statements, summed over the run (reported per order).
STEP_CPU: dict[str, float] = {}
STEP_STATEMENTS: dict[str, int] = {}
_current_step = ["-"]


def _service_flow(tenant_id: Any, product_ids: list[Any], customer_id: Any, n: int) -> None:
    from entrepot.billing import service as billing
    from entrepot.db.uow import tenant_uow
    from entrepot.sales import service as sales

    def step(name: str, fn: Any) -> Any:
        _current_step[0] = name
        cpu_started = time.process_time()
        with tenant_uow(tenant_id) as uow:
            result = fn(uow)
            uow.commit()
        STEP_CPU[name] = STEP_CPU.get(name, 0.0) + time.process_time() - cpu_started
        return result

    lines = [sales.OrderLineInput(product_ids[(n + i) % len(product_ids)], Decimal(2)) for i in range(LINES)]
    order = step("create", lambda uow: sales.create_sales_order(uow, customer_id=customer_id, lines=lines))
    step("confirm", lambda uow: sales.confirm_sales_order(uow, order.id))
    shipment = step("create_shipment", lambda uow: sales.create_shipment(uow, sales_order_id=order.id))
    step("ship", lambda uow: sales.ship_shipment(uow, shipment.id))
    invoice = step("invoice", lambda uow: sales.invoice_sales_order(uow, order.id))
    step("pay", lambda uow: billing.record_payment(uow, customer_id=customer_id, amount=invoice.total, currency="USD",
                                                   allocations=[billing.AllocationInput(invoice.id, invoice.total)]))


def _big_documents(tenant_id: Any, customer_id: Any) -> dict[str, float]:
    """Invoice one 2,000-line shipped order; post one 80-line invoice directly."""
    from entrepot.billing import service as billing
    from entrepot.db.uow import tenant_uow
    from entrepot.sales import service as sales

    with tenant_uow(tenant_id) as uow:
        from sqlalchemy import select

        from entrepot.catalog.models import Product

        product_ids = list(uow.session.scalars(select(Product.id).order_by(Product.sku).limit(2000)))
    lines = [sales.OrderLineInput(pid, Decimal(1)) for pid in product_ids]
    with tenant_uow(tenant_id) as uow:
        order = sales.create_sales_order(uow, customer_id=customer_id, lines=lines)
        sales.confirm_sales_order(uow, order.id)
        shipment = sales.create_shipment(uow, sales_order_id=order.id)
        sales.ship_shipment(uow, shipment.id)
        uow.commit()
    with tenant_uow(tenant_id) as uow:
        started, cpu_started = time.perf_counter(), time.process_time()
        sales.invoice_sales_order(uow, order.id)
        uow.commit()
        big, big_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    with tenant_uow(tenant_id) as uow:
        started, cpu_started = time.perf_counter(), time.process_time()
        billing.post_invoice(uow, customer_id=customer_id, currency="USD", lines=[
            billing.InvoiceLineInput(product_id=pid, quantity=Decimal(3), unit_price=Decimal("9.99"))
            for pid in product_ids[:80]])
        uow.commit()
        small, small_cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {"invoice_2000_line_order_s": round(big, 3), "invoice_2000_line_order_cpu_s": round(big_cpu, 3),
            "post_80_line_invoice_ms": round(small * 1000, 1),
            "post_80_line_invoice_cpu_ms": round(small_cpu * 1000, 1)}


# ---------------------------------------------------------------- the database alone


def _floor(url: str, tenant_id: Any, product_ids: list[Any], customer_id: Any, orders: int) -> dict[str, Any]:
    """Record the flow's statements, then replay them on the driver alone (see the docstring)."""
    from bench import _replay
    from entrepot.db.engine import get_engine

    get_engine().dispose()
    before = _replay.snapshot(url.removeprefix("sqlite:///"))
    with _replay.recording() as recorded:
        started = time.perf_counter()
        for n in range(orders):
            _service_flow(tenant_id, product_ids, customer_id, n)
        service_s = time.perf_counter() - started
    get_engine().dispose()
    pages = _replay.wal_pages(before, recorded)
    return {"service_orders_per_s": round(orders / service_s, 1),
            "all_statements": _replay.replay(before, recorded).per("order", orders),
            "writes_only": _replay.replay(before, recorded, writes_only=True).per("order", orders),
            "wal_pages_per_order": round(sum(pages.values()) / orders, 1),
            "wal_pages_per_order_by_table": {name: round(n / orders, 1) for name, n in pages.most_common(12)}}


# ---------------------------------------------------------------- over HTTP


def _http_run(base: str, key: str, orders: int) -> tuple[float, float]:
    import httpx

    with httpx.Client(base_url=base + "/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=30) as c:
        def post(path: str, body: Any = None, status: int = 200) -> Any:
            r = c.post(path, json=body)
            if r.status_code != status:
                raise RuntimeError(f"{path}: {r.status_code} {r.text[:300]}")
            return r.json()

        warehouse = post("/warehouses", {"code": "MAIN", "name": "Main"}, 201)["id"]
        products = [post("/products", {"sku": f"B-{i:03d}", "name": f"Bench item {i}", "list_price": "9.99",
                                       "currency": "USD", "standard_cost": "4.00"}, 201)["id"] for i in range(20)]
        for p in products:
            post("/stock/adjustments", {"warehouse_id": warehouse, "product_id": p, "quantity": str(10**7),
                                        "reason": "bench", "unit_cost": "4.00"}, 201)
        customer = post("/customers", {"code": "BENCH", "name": "Bench customer", "currency": "USD"}, 201)["id"]
        started, cpu_started = time.perf_counter(), server_cpu_seconds(base)
        for n in range(orders):
            order = post("/sales-orders", {"customer_id": customer, "lines": [
                {"product_id": products[(n + i) % len(products)], "quantity": "2"} for i in range(LINES)]}, 201)
            post(f"/sales-orders/{order['id']}/confirm")
            shipment = post("/shipments", {"sales_order_id": order["id"]}, 201)
            post(f"/shipments/{shipment['id']}/ship", {"carrier": "UPS"})
            invoice = post(f"/sales-orders/{order['id']}/invoice", None, 201)
            post("/payments", {"customer_id": customer, "amount": invoice["total"], "currency": "USD",
                               "allocations": [{"invoice_id": invoice["id"], "amount": invoice["total"]}]}, 201)
        return time.perf_counter() - started, server_cpu_seconds(base) - cpu_started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--via", choices=("service", "http", "floor"), default="service")
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--big", action="store_true", help="also time a 2,000-line invoice and an 80-line one")
    args = parser.parse_args()
    # The process settings every `entrepot` command applies at start-up (see kernel/process.py).
    from entrepot.kernel.process import settle_after_startup

    settle_after_startup()
    result: dict[str, Any] = {"bench": "o2c", "via": args.via, "db": args.db, "lines_per_order": LINES}
    with fresh_database(args.db) as url:
        cli(url, "init")
        cli(url, "tenant", "create", "bench", "--name", "Bench distributor")
        if args.via == "http":
            key = cli(url, "apikey", "create", "--tenant", "bench")
            with server(url) as base:
                seconds, cpu = _http_run(base, key, args.orders)
        else:
            from sqlalchemy import event
            from sqlalchemy.engine import Engine

            tenant_id, product_ids, customer_id = _service_setup(url, 2000 if args.big else 20)
            if args.via == "floor":
                if args.db != "sqlite":
                    parser.error("--via floor replays on SQLite only")
                result.update(_floor(url, tenant_id, product_ids[:20], customer_id, args.orders))
                print(json.dumps(result))
                return
            statements = [0]

            def count(*_: Any) -> None:
                statements[0] += 1
                STEP_STATEMENTS[_current_step[0]] = STEP_STATEMENTS.get(_current_step[0], 0) + 1

            event.listen(Engine, "before_cursor_execute", count)
            started, cpu_started = time.perf_counter(), time.process_time()
            for n in range(args.orders):
                _service_flow(tenant_id, product_ids[:20], customer_id, n)
            seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
            event.remove(Engine, "before_cursor_execute", count)
            if args.orders:
                result["statements_per_order"] = round(statements[0] / args.orders, 1)
                # where an order's CPU and statements go, step by step
                result["cpu_ms_per_step"] = {k: round(v * 1000 / args.orders, 2) for k, v in STEP_CPU.items()}
                result["statements_per_step"] = {k: round(v / args.orders, 1) for k, v in STEP_STATEMENTS.items()}
            if args.big:
                result.update(_big_documents(tenant_id, customer_id))
        if args.via == "http" and args.big:
            result["big"] = "only with --via service"
    result.update({"orders": args.orders, "seconds": round(seconds, 3),
                   "orders_per_s": round(args.orders / seconds, 1) if seconds > 0 else None,
                   "orders_per_cpu_s": round(args.orders / cpu, 1) if cpu > 0 else None})
    print(json.dumps(result))


if __name__ == "__main__":
    main()
