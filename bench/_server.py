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


_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_servers: dict[str, subprocess.Popen[bytes]] = {}
_logs: dict[str, Path] = {}


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of one process (Linux /proc), 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == pid:
                found.append(int(entry))
    return found


def server_cpu_seconds(base: str) -> float:
    """CPU used so far by the `entrepot serve` at `base` and its worker processes:
    read before and after a load run, it gives the server's CPU per request."""
    proc = _servers[base]
    pids = [proc.pid, *_children(proc.pid)]
    return sum(_cpu_seconds(p) for p in pids)


def _preemptions(pid: int) -> int:
    """Times the threads of one process were taken off a core while still runnable
    (involuntary context switches, Linux /proc), 0 when it is gone."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/status") as f:
                total += sum(int(line.split()[1]) for line in f if line.startswith("nonvoluntary_ctxt_switches"))
        except OSError:
            continue
    return total


def server_preemptions(base: str) -> int:
    """Involuntary context switches so far of the `entrepot serve` at `base` and its workers:
    how often a request in progress waited for a core because others wanted it."""
    proc = _servers[base]
    return sum(_preemptions(p) for p in [proc.pid, *_children(proc.pid)])


def postgres_cpu_seconds(url: str) -> float:
    """CPU used so far by the PostgreSQL backends connected to `url`'s database."""
    import psycopg

    name = url.rsplit("/", 1)[1]
    admin = PG_ADMIN.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        pids = [r[0] for r in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (name,))]
    return sum(_cpu_seconds(p) for p in pids)


def _listening_sockets(port: int) -> int:
    """Listening TCP sockets on this port (Linux /proc/net/tcp; state 0A is LISTEN)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    local, state = line.split()[1], line.split()[3]
                    if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:
                        count += 1
        except OSError:
            continue
    return count


def cli(url: str, *args: str) -> str:
    env = {**os.environ, "ENTREPOT_DATABASE_URL": url}
    out = subprocess.run([ENTREPOT, *args], env=env, check=True, capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def server(url: str, *, workers: int = 1, extra_env: dict[str, str] | None = None,
           embedded_worker: bool = False) -> Iterator[str]:
    """`entrepot serve` on a free loopback port; yields the base URL.

    The server's stderr goes to a temporary file (`server_log(base)`), not a pipe: a pipe
    nobody reads fills after 64 KB of log lines (a run answering 4xx logs one per
    request) and then blocks the server mid-run."""
    port = free_port()
    env = {**os.environ, "ENTREPOT_DATABASE_URL": url, "ENTREPOT_RATE_LIMIT_PER_MINUTE": "100000000",
           **(extra_env or {})}
    base = f"http://127.0.0.1:{port}"
    with tempfile.NamedTemporaryFile(prefix="entrepot-serve-", suffix=".log") as log:
        proc = subprocess.Popen(
            [ENTREPOT, "serve", "--port", str(port), "--workers", str(workers),
             *([] if embedded_worker else ["--no-worker"])],
            env=env, stdout=subprocess.DEVNULL, stderr=log,
        )
        _servers[base] = proc
        _logs[base] = Path(log.name)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if httpx.get(base + "/api/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.2)
            else:
                raise RuntimeError("server did not start: " + server_log(base)[-2000:])
            # With one listening socket per API process, connections only reach the
            # processes already listening: wait for all of them (briefly, since with a
            # single shared socket there is only ever one) before load is measured.
            settle = time.monotonic() + 15
            while workers > 1 and _listening_sockets(port) < workers and time.monotonic() < settle:
                time.sleep(0.2)
            yield base
        finally:
            _servers.pop(base, None)
            _logs.pop(base, None)
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def server_log(base: str) -> str:
    """What the server at `base` has written to stderr so far."""
    return _logs[base].read_text(errors="replace")
