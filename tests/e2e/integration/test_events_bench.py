"""bench/events.py at a tiny size, with NATS: the lag figures it prints are measured over
every offered event, at the webhook receiver and at the NATS subscriber alike."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
NATS_URL = os.environ.get("ENTREPOT_TEST_NATS_URL", "nats://127.0.0.1:4222")


def _nats_problem() -> str | None:
    import nats

    async def probe() -> None:
        nc = await nats.connect(NATS_URL, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False)
        await nc.close()

    try:
        asyncio.run(probe())
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return None


def test_the_events_bench_reports_webhook_and_nats_lag_over_every_offered_event(tmp_path):
    problem = _nats_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"NATS is required under CI but unavailable at {NATS_URL}: {problem}")
        pytest.skip(f"NATS unavailable at {NATS_URL}: {problem}")
    # when the bench runs with a small backlog and a short offered load, publishing to NATS too
    env = {k: v for k, v in os.environ.items() if k not in ("ENTREPOT_DATABASE_URL", "ENTREPOT_NATS_URL")}
    run = subprocess.run(
        [sys.executable, "bench/events.py", "--db", "sqlite", "--events", "30", "--rate", "20", "--seconds", "1",
         "--nats", NATS_URL],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout[run.stdout.index("{"):])
    # then every event was delivered, and both lag figures cover every offered event
    assert result["bulk_delivered"] == 30
    assert result["offered_events"] == 20
    assert result["latency_received"] == 20
    assert result["nats_latency_received"] == 20
    for figure in ("latency_p50_ms", "latency_p99_ms", "nats_latency_p50_ms", "nats_latency_p99_ms"):
        assert math.isfinite(result[figure]) and result[figure] >= 0, (figure, result)
    assert result["nats_latency_p50_ms"] <= result["nats_latency_p99_ms"]
