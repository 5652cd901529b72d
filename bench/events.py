"""Events end to end: outbox → worker → signed webhooks to a loopback receiver (and NATS).

    .venv/bin/python bench/events.py [--db sqlite|postgresql] [--events 100000]
                                     [--rate 500] [--seconds 20] [--workers 1] [--nats nats://127.0.0.1:4222]
                                     [--endpoint-concurrency 64] [--concurrency 32]

Phase 1, throughput: `--events` events are written by service calls (a bench
event recorded through `record_event`, 100 per transaction), then
`entrepot worker` processes start and deliver them; prints deliveries/s.
Phase 2, latency: events are offered at `--rate` per second for `--seconds`,
one per transaction, with the workers running; prints p50/p99 from the
event's time (taken inside the writing transaction, just before commit) to
its receipt. The receiver is a minimal asyncio HTTP/1.1 server in its own
process that answers 200 at once (about 60 µs of CPU per request, so it is not
what limits the rate). With `--nats`, a subscriber process on the bench
tenant's NATS subjects measures the same commit-to-receipt lag for the events
the worker publishes to JetStream (`nats_latency_*`). Prints JSON.

One endpoint receives everything, so per-endpoint concurrency bounds the
rate (each worker round refills at most that many slots): the bench sets
`ENTREPOT_WEBHOOK_ENDPOINT_CONCURRENCY` from `--endpoint-concurrency` (64 by
default, the deployment default is 16) and the worker's `--concurrency` (POSTs in
flight at once; claims go up to twice that) from `--concurrency`; both are printed.
`bulk_deliveries_per_s` counts from worker start (start-up included) to the receipt
of the last event (the receiver counts distinct events and answers `GET /count`, so the
run's progress costs the database nothing; once the receiver has every event, the bench
polls the database until every message is recorded as delivered);
`…_first_to_last_receipt` is the steady rate seen by the receiver (distinct events: a
redelivery is counted once, and `receiver_events` counts events, not requests). A run
that ran out of time before every event arrived and was recorded prints
`"complete": false` and exits with 1.
`bulk_deliveries_per_worker_cpu_s` divides the deliveries by the CPU the
worker processes used meanwhile (start-up included, the database's not): the
figure to compare changes by on a shared machine. On PostgreSQL,
`bulk_deliveries_per_postgres_cpu_s` does the same for the database's backends
(those connected at the end of the phase).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._server import ENTREPOT, _cpu_seconds, free_port, fresh_database, postgres_cpu_seconds

RECEIVER = r'''
import asyncio, json, sys, time, signal
from datetime import datetime
out = sys.argv[2]
lags = []
seen = {}  # phase -> the distinct event numbers received (a redelivery is not counted twice)
last = {}  # phase -> when its last new event arrived (time.time())
async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            if head.startswith(b"GET /count"):
                answer = json.dumps({"counts": {k: len(v) for k, v in seen.items()}, "last": last}).encode()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % len(answer) + answer)
                continue
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            body = await reader.readexactly(length)
            now = time.time()
            event = json.loads(body)
            sent = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
            phase = event["data"].get("phase", "")
            numbers = seen.setdefault(phase, set())
            if event["data"].get("n") not in numbers:  # a redelivery counts neither here nor in lags
                numbers.add(event["data"].get("n"))
                lags.append((phase, now - sent, now))
                last[phase] = now
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
    except (asyncio.IncompleteReadError, ConnectionResetError):
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", int(sys.argv[1]), backlog=1024)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()
    json.dump(lags, open(out, "w"))
asyncio.run(main())
'''

# Receives the bench tenant's events from NATS (core subscription: JetStream delivers what the
# worker publishes to the stream's subjects to plain subscribers too) and keeps each one's lag.
NATS_RECEIVER = r'''
import asyncio, json, signal, sys, time
from datetime import datetime
import nats
async def main():
    lags = []
    nc = await nats.connect(sys.argv[1])
    async def on_message(msg):
        now = time.time()
        event = json.loads(msg.data)
        sent = datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()
        lags.append((event["data"].get("phase", ""), now - sent, now))
    await nc.subscribe(sys.argv[2], cb=on_message)
    await nc.flush()
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await nc.drain()
    json.dump(lags, open(sys.argv[3], "w"))
asyncio.run(main())
'''


def _percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--nats", default=None)
    parser.add_argument("--endpoint-concurrency", type=int, default=64)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()

    with fresh_database(args.db) as url, tempfile.TemporaryDirectory() as tmp:
        os.environ["ENTREPOT_DATABASE_URL"] = url
        os.environ["ENTREPOT_WEBHOOK_ALLOW_PRIVATE"] = "1"
        from entrepot.db.bootstrap import init_database
        from entrepot.db.settings import reset_settings

        reset_settings()
        init_database(url)
        from tests.conftest import make_tenant

        from entrepot.integration import webhooks
        from entrepot.integration.outbox import record_event
        from entrepot.kernel.events import EventData, event_type

        @event_type("bench_parcel.scanned.v1")
        class BenchScanned(EventData):
            n: int
            phase: str

        tenant = make_tenant(url)
        nats_lag_file = Path(tmp) / "nats_lags.json"
        nats_receiver = None
        if args.nats:
            from entrepot.worker.nats_bridge import subject_for

            nats_receiver = subprocess.Popen(
                [sys.executable, "-c", NATS_RECEIVER, args.nats, subject_for(tenant.id, "bench_parcel.scanned.v1"),
                 str(nats_lag_file)], stdout=subprocess.PIPE, text=True)
            assert nats_receiver.stdout is not None and nats_receiver.stdout.readline().strip() == "ready"
        port = free_port()
        lag_file = Path(tmp) / "lags.json"
        receiver = subprocess.Popen([sys.executable, "-c", RECEIVER, str(port), str(lag_file)])
        time.sleep(0.5)
        with tenant.uow() as uow:
            webhooks.create_endpoint(uow, url=f"http://127.0.0.1:{port}/hook",
                                     event_types=["bench_parcel.scanned.v1"])
            uow.commit()

        # phase 1: preload, then deliver as fast as the workers can
        started = time.perf_counter()
        for start in range(0, args.events, 100):
            with tenant.uow() as uow:
                for n in range(start, min(start + 100, args.events)):
                    record_event(uow, BenchScanned(n=n, phase="bulk"), subject=f"parcel/{n % 1000}")
                uow.commit()
        write_s = time.perf_counter() - started
        env = {**os.environ, "ENTREPOT_DATABASE_URL": url,
               "ENTREPOT_WEBHOOK_ENDPOINT_CONCURRENCY": str(args.endpoint_concurrency)}
        if args.nats:
            env["ENTREPOT_NATS_URL"] = args.nats
        workers_log = Path(tmp) / "workers.log"
        pg_before = postgres_cpu_seconds(url) if args.db == "postgresql" else 0.0
        started = time.perf_counter()
        started_wall = time.time()
        workers = [subprocess.Popen([ENTREPOT, "worker", "--no-scheduler", "--concurrency", str(args.concurrency)],
                                    env=env,
                                    stdout=workers_log.open("ab"), stderr=subprocess.STDOUT)
                   for _ in range(args.workers)]

        def delivered() -> int:
            from sqlalchemy import func, select

            from entrepot.integration.models import WebhookMessage

            with tenant.uow(readonly=True) as uow:
                return uow.session.scalar(select(func.count()).where(WebhookMessage.status == "succeeded")) or 0

        def open_messages() -> int:
            from sqlalchemy import func, literal_column, select

            from entrepot.integration.models import WebhookMessage

            # the statuses inline, so the count reads the open messages' partial index (shrinking as
            # the backlog drains), not the whole table
            is_open = WebhookMessage.status.in_([literal_column("'pending'"), literal_column("'delivering'")])
            with tenant.uow(readonly=True) as uow:
                return uow.session.scalar(select(func.count()).where(is_open)) or 0

        # progress is read off the receiver, not counted in the database: a count over the
        # backlog every half second cost PostgreSQL ~50 ms of CPU each, taken from the cores
        # the worker and the database share; only once the receiver has everything is the
        # database polled, until every message is recorded as delivered
        deadline = time.monotonic() + max(120, args.events / 200)
        while _received(port, "bulk")[0] < args.events and time.monotonic() < deadline:
            time.sleep(0.1)
        received, last_receipt = _received(port, "bulk")
        while (open_messages() or delivered() < args.events) and time.monotonic() < deadline:
            time.sleep(0.1)
        bulk_s = (last_receipt - started_wall) if received >= args.events else time.perf_counter() - started
        bulk_done = delivered()
        # the workers' own CPU (not the database's): compare code changes by this, not by wall clock
        bulk_cpu_s = sum(_cpu_seconds(w.pid) for w in workers)
        # PostgreSQL's backends meanwhile (those of the workers and of this process's final checks)
        bulk_pg_cpu_s = postgres_cpu_seconds(url) - pg_before if args.db == "postgresql" else None

        # phase 2: offered load, latency from commit to receipt
        total = args.rate * args.seconds
        interval = 1.0 / args.rate
        next_at = time.perf_counter()
        for n in range(total):
            with tenant.uow() as uow:
                record_event(uow, BenchScanned(n=n, phase="latency"), subject=f"parcel/{n % 1000}")
                uow.commit()
            next_at += interval
            pause = next_at - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        offered_s = args.seconds
        deadline = time.monotonic() + 60
        while _received(port, "latency")[0] < total and time.monotonic() < deadline:
            time.sleep(0.2)
        while delivered() < bulk_done + total and time.monotonic() < deadline:
            time.sleep(0.2)
        if args.nats:
            _wait_for_nats(url, deadline=time.monotonic() + 60)
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(60)
        receiver.send_signal(signal.SIGTERM)
        receiver.wait(30)
        lags = json.loads(lag_file.read_text())
        latency = [lag for phase, lag, _ in lags if phase == "latency"]
        # a run that ran out of time still prints its figures, but says so and exits with 1
        complete = received >= args.events and bulk_done >= args.events and len(latency) >= total
        bulk_times = sorted(at for phase, _, at in lags if phase == "bulk")
        steady = (len(bulk_times) - 1) / (bulk_times[-1] - bulk_times[0]) if len(bulk_times) > 1 else None
        nats_published = None
        nats_latency: list[float] = []
        if args.nats and nats_receiver is not None:
            nats_published = asyncio.run(_stream_count(args.nats, subject_for(tenant.id, "bench_parcel.scanned.v1")))
            time.sleep(0.5)  # the stream acknowledged the last publish; let its delivery to the subscriber land
            nats_receiver.send_signal(signal.SIGTERM)
            nats_receiver.wait(30)
            nats_latency = [lag for phase, lag, _ in json.loads(nats_lag_file.read_text()) if phase == "latency"]
        print(json.dumps({
            "db": args.db, "workers": args.workers, "events": args.events,
            "endpoint_concurrency": args.endpoint_concurrency, "worker_concurrency": args.concurrency,
            "write_events_per_s": round(args.events / write_s, 1),
            "complete": complete, "bulk_received": received,
            "bulk_delivered": bulk_done, "bulk_deliveries_per_s": round(bulk_done / bulk_s, 1),
            "bulk_deliveries_per_s_first_to_last_receipt": round(steady, 1) if steady else None,
            "bulk_worker_cpu_s": round(bulk_cpu_s, 2),
            "bulk_deliveries_per_worker_cpu_s": round(bulk_done / bulk_cpu_s, 1) if bulk_cpu_s else None,
            **({"bulk_postgres_cpu_s": round(bulk_pg_cpu_s, 2),
                "bulk_deliveries_per_postgres_cpu_s": round(bulk_done / bulk_pg_cpu_s, 1) if bulk_pg_cpu_s else None}
               if bulk_pg_cpu_s is not None else {}),
            "offered_rate_per_s": args.rate, "offered_seconds": offered_s, "offered_events": total,
            "latency_received": len(latency),
            "latency_p50_ms": round(_percentile(latency, 0.50) * 1000, 1),
            "latency_p99_ms": round(_percentile(latency, 0.99) * 1000, 1),
            "receiver_events": len(lags), "nats_stream_messages": nats_published,
            **({"nats_latency_received": len(nats_latency),
                "nats_latency_p50_ms": round(_percentile(nats_latency, 0.50) * 1000, 1),
                "nats_latency_p99_ms": round(_percentile(nats_latency, 0.99) * 1000, 1)} if args.nats else {}),
            "at": datetime.now().isoformat(timespec="seconds"),
        }, indent=2))
        if not complete:
            sys.exit(1)


def _received(port: int, phase: str) -> tuple[int, float]:
    """The distinct events of `phase` the receiver has got, and when the last new one came."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)  # straight there, whatever proxy is set
    try:
        conn.request("GET", "/count")
        state = json.loads(conn.getresponse().read())
    finally:
        conn.close()
    return state["counts"].get(phase, 0), state["last"].get(phase, 0.0)


def _wait_for_nats(url: str, *, deadline: float) -> None:
    """Until the worker's NATS cursor has reached the newest settled event (all published)."""
    from entrepot.db.uow import platform_uow
    from entrepot.integration.consumers import read_position
    from entrepot.integration.feed import latest
    from entrepot.worker.nats_bridge import CONSUMER

    while time.monotonic() < deadline:
        with platform_uow(readonly=True, url=url) as uow:
            head = latest(uow.session)
            done = read_position(uow.session, CONSUMER)
        if head is None or (done is not None and done >= head):
            return
        time.sleep(0.2)


async def _stream_count(url: str, subject: str) -> int:
    """The messages the stream holds on the bench tenant's subject (the stream outlives the run and
    carries every tenant's events, those of earlier runs and of the tests too)."""
    import nats

    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info("ENTREPOT", subjects_filter=subject)
        return (info.state.subjects or {}).get(subject, 0)
    finally:
        await nc.close()


if __name__ == "__main__":
    main()
