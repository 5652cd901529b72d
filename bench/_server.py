"""Helpers for benchmarks: a fresh database, a real `entrepot serve` subprocess."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
ENTREPOT = str(Path(sys.executable).with_name("entrepot"))
PG_ADMIN = os.environ.get("ENTREPOT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def fresh_database(kind: str) -> Iterator[str]:
    """A new empty database URL of the given kind, dropped afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / 'bench.db'}"
        return
    import psycopg

    name = f"entrepot_bench_{uuid.uuid4().hex[:8]}"
    admin = PG_ADMIN.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cli(url: str, *args: str) -> str:
    env = {**os.environ, "ENTREPOT_DATABASE_URL": url}
    out = subprocess.run([ENTREPOT, *args], env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def server(url: str, *, workers: int = 1, extra_env: dict[str, str] | None = None,
           embedded_worker: bool = False) -> Iterator[str]:
    """`entrepot serve` on a free loopback port; yields the base URL."""
    port = free_port()
    env = {**os.environ, "ENTREPOT_DATABASE_URL": url, "ENTREPOT_RATE_LIMIT_PER_MINUTE": "100000000",
           **(extra_env or {})}
    proc = subprocess.Popen(
        [ENTREPOT, "serve", "--port", str(port), "--workers", str(workers),
         *([] if embedded_worker else ["--no-worker"])],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            raise RuntimeError("server did not start: " + (proc.stderr.read(2000).decode() if proc.stderr else ""))
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
