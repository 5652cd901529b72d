"""API overhead: an authenticated, tenant-scoped GET of one record through the real
HTTP server (`entrepot serve`, uvicorn + uvloop + httptools), 16 concurrent
keep-alive clients on loopback, on SQLite and PostgreSQL. Prints JSON.

    .venv/bin/python bench/api_overhead.py [--db sqlite|postgresql|both] [--seconds 10] [--clients 16]

The load generator is wrk when installed (`apt-get install wrk`), else a
Python asyncio client; the output names which. Both share this 2-core machine
with the server, so numbers are a floor for a dedicated box.

Wall-clock figures move with whatever else runs on the machine, so the output
also gives the 1-minute load average before the run and the CPU the server
processes (and, on PostgreSQL, the database backends) spent per request, which
do not. `server_preemptions_per_1000_requests` counts how often an API process
was taken off a core while it still had work: the tail latency comes from those
waits, not from the CPU a request costs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._server import cli, fresh_database, postgres_cpu_seconds, server, server_cpu_seconds, server_preemptions


def _record_path(base: str, key: str) -> str:
    """A tenant-owned record to GET: a product when the catalog exists, else the tenant."""
    headers = {"Authorization": f"Bearer {key}"}
    r = httpx.post(base + "/api/v1/products", headers=headers,
                   json={"sku": "BENCH-1", "name": "Bench widget", "list_price": "9.99", "currency": "USD"})
    if r.status_code == 201:
        return f"/api/v1/products/{r.json()['id']}"
    return "/api/v1/tenant"


def _wrk(base: str, path: str, key: str, clients: int, seconds: int) -> dict:
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(clients), "-d", f"{seconds}s", "--latency",
         "-H", f"Authorization: Bearer {key}", base + path],
        capture_output=True, text=True, check=True).stdout

    def ms(label: str) -> float:
        m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not m:
            return float("nan")
        value, unit = float(m.group(1)), m.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"client": "wrk", "requests_per_s": round(rps, 1), "p50_ms": ms("50%"), "p99_ms": ms("99%"),
            "errors": int(non2xx.group(1)) if non2xx else 0}


async def _python_client(base: str, path: str, key: str, clients: int, seconds: int) -> dict:
    host, port = base.removeprefix("http://").split(":")
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {key}\r\n\r\n").encode()
    latencies: list[float] = []
    errors = 0
    stop = time.monotonic() + seconds

    async def one() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, int(port))
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"content-length: (\d+)", head, re.I).group(1))
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - t0)
            if not head.startswith(b"HTTP/1.1 200"):
                errors += 1
        writer.close()

    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(clients)))
    elapsed = time.monotonic() - t0
    q = statistics.quantiles(latencies, n=100)
    return {"client": "python", "requests_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": round(q[49] * 1000, 2), "p99_ms": round(q[98] * 1000, 2), "errors": errors}


def run(kind: str, clients: int, seconds: int, workers: int) -> dict:
    with fresh_database(kind) as url:
        cli(url, "init")
        cli(url, "tenant", "create", "bench", "--name", "Bench")
        cli(url, "tenant", "create", "noise", "--name", "Other tenant")
        key = cli(url, "apikey", "create", "--tenant", "bench")
        with server(url, workers=workers) as base:
            path = _record_path(base, key)
            assert httpx.get(base + path, headers={"Authorization": f"Bearer {key}"}).status_code == 200
            # Warm-up with the same concurrency as the measurement: each API process then
            # holds the pooled database connections the run needs (opening a PostgreSQL
            # connection forks a backend, ~0.1-1 s on a loaded machine, which a
            # sequential warm-up left for the measured run to pay).
            if shutil.which("wrk"):
                _wrk(base, path, key, clients, 2)
            else:
                asyncio.run(_python_client(base, path, key, clients, 2))
            load_before = round(os.getloadavg()[0], 2)
            cpu_before = server_cpu_seconds(base)
            preempted_before = server_preemptions(base)
            pg_before = postgres_cpu_seconds(url) if kind == "postgresql" else 0.0
            if shutil.which("wrk"):
                result = _wrk(base, path, key, clients, seconds)
            else:
                result = asyncio.run(_python_client(base, path, key, clients, seconds))
            requests = max(1.0, result["requests_per_s"] * seconds)
            result["server_cpu_ms_per_request"] = round((server_cpu_seconds(base) - cpu_before) / requests * 1000, 3)
            result["server_preemptions_per_1000_requests"] = round(
                (server_preemptions(base) - preempted_before) / requests * 1000, 1)
            if kind == "postgresql":
                result["postgres_cpu_ms_per_request"] = round(
                    (postgres_cpu_seconds(url) - pg_before) / requests * 1000, 3)
    return {"db": kind, "path": re.sub(r"[0-9a-f-]{36}", "{id}", path), "clients": clients,
            "seconds": seconds, "api_processes": workers, "load_avg_1m_before": load_before, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=2, help="API processes (uvicorn workers)")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    results = [run(k, args.clients, args.seconds, args.workers) for k in kinds]
    print(json.dumps({"benchmark": "api_overhead", "results": results}))


if __name__ == "__main__":
    main()
