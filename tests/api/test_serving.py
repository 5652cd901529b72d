"""`entrepot.cli.serving.run_api`: several API processes, each on its own listening socket
(SO_REUSEPORT), answering on one port, and stopping cleanly on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from bench._server import _listening_sockets, free_port, server

ENTREPOT = str(Path(sys.executable).with_name("entrepot"))

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT and /proc are Linux")


def test_two_workers_listen_on_their_own_sockets_and_stop_on_sigterm(tmp_path):
    # given an initialised database
    env = {**os.environ, "ENTREPOT_DATABASE_URL": f"sqlite:///{tmp_path / 'serve.db'}", "ENTREPOT_ENV": "test"}
    subprocess.run([ENTREPOT, "init"], env=env, check=True, capture_output=True, timeout=120)
    port = free_port()
    # when the API is served with two workers
    proc = subprocess.Popen(
        [sys.executable, "-c", f"from entrepot.cli.serving import run_api; run_api('127.0.0.1', {port}, 2)"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and _listening_sockets(port) < 2:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.2)
        # then each worker listens on its own socket, and the port answers
        assert _listening_sockets(port) == 2
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10)
        assert r.status_code == 200
        assert r.headers["x-request-id"]
    finally:
        # and SIGTERM stops the workers and the parent
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(40)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert code == 0
    assert _listening_sockets(port) == 0


@pytest.mark.parametrize("env_value,flag,runs_worker",
                         [(None, [], True), ("0", [], False), ("1", ["--no-worker"], False)])
def test_serve_runs_the_embedded_worker_unless_told_not_to(tmp_path, monkeypatch, env_value, flag, runs_worker):
    from contextlib import contextmanager

    from typer.testing import CliRunner

    from entrepot.cli import serving
    from entrepot.cli.main import app
    from entrepot.db.settings import reset_settings

    # given `entrepot serve` whose API and worker only note how they were asked to run
    asked: dict[str, object] = {}

    @contextmanager
    def worker(enabled: bool = True):  # type: ignore[no-untyped-def]
        asked["worker"] = enabled
        yield None

    monkeypatch.setattr(serving, "embedded_worker", worker)
    monkeypatch.setattr(serving, "run_api", lambda host, port, workers: asked.update(api=(host, port, workers)))
    monkeypatch.setenv("ENTREPOT_DATABASE_URL", f"sqlite:///{tmp_path / 'serve.db'}")
    if env_value is None:
        monkeypatch.delenv("ENTREPOT_EMBEDDED_WORKER", raising=False)
    else:
        monkeypatch.setenv("ENTREPOT_EMBEDDED_WORKER", env_value)
    reset_settings()
    try:
        # when it is started (with ENTREPOT_EMBEDDED_WORKER unset, 0, or --no-worker)
        result = CliRunner().invoke(app, ["serve", "--port", "8765", *flag])
    finally:
        monkeypatch.undo()
        reset_settings()
    # then the API runs, and the worker beside it only when neither says no
    assert result.exit_code == 0, result.output
    assert asked == {"worker": runs_worker, "api": ("127.0.0.1", 8765, 1)}


@pytest.mark.parametrize("path,content", [
    ("/api/v1/ledger/exchange-rates/import", b"currency,date,rate\nGBP,2026-01-01,1.27\n"),
    ("/api/v1/inbound/carrier", b"{}"),
])
def test_a_request_waiting_for_the_write_lock_does_not_stop_the_server(tmp_path, path, content):
    import sqlite3
    import threading

    # given a served SQLite database whose write lock another connection holds
    database = tmp_path / "lock.db"
    env = {**os.environ, "ENTREPOT_DATABASE_URL": f"sqlite:///{database}", "ENTREPOT_ENV": "test"}
    for args in (["init"], ["tenant", "create", "lockco", "--name", "Lock Co"]):
        subprocess.run([ENTREPOT, *args], env=env, check=True, capture_output=True, timeout=120)
    key = subprocess.run([ENTREPOT, "apikey", "create", "--tenant", "lockco"], env=env, check=True,
                         capture_output=True, text=True, timeout=60).stdout.strip().splitlines()[-1]
    holder = sqlite3.connect(database, isolation_level=None, timeout=30)
    try:
        with server(env["ENTREPOT_DATABASE_URL"]) as base:
            # (the key already known to the server, as it is for a client in steady use)
            assert httpx.get(base + "/api/v1/tenant", headers={"Authorization": f"Bearer {key}"}).status_code == 200
            holder.execute("BEGIN IMMEDIATE")
            # when a request that writes arrives (it waits for the lock)
            answers: list[int] = []
            waiting = threading.Thread(target=lambda: answers.append(httpx.post(
                base + path, content=content, timeout=60,
                headers={"Authorization": f"Bearer {key}", "Content-Type": "text/csv"}).status_code))
            waiting.start()
            time.sleep(0.5)
            # then the server still answers others meanwhile
            started = time.monotonic()
            assert httpx.get(base + "/api/v1/health", timeout=10).status_code == 200
            assert time.monotonic() - started < 2.5
            # and the waiting request goes through once the lock is free
            holder.execute("ROLLBACK")
            waiting.join(60)
            assert answers and answers[0] < 500, answers
    finally:
        holder.close()


def test_serve_stopped_by_sigterm_stops_its_embedded_worker_and_exits_0(tmp_path):
    from sqlalchemy import text

    from entrepot.db.engine import get_engine

    # given `entrepot serve` (one API process and the embedded worker) on an initialised database
    url = f"sqlite:///{tmp_path / 'term.db'}"
    env = {**os.environ, "ENTREPOT_DATABASE_URL": url, "ENTREPOT_ENV": "test",
           "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    subprocess.run([sys.executable, "-m", "entrepot.cli", "init"], env=env, check=True, capture_output=True,
                   timeout=120)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "entrepot.cli", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def reactions_holder() -> str | None:
        with get_engine(url).connect() as conn:
            return conn.execute(text("SELECT holder FROM leases WHERE name = 'consumer:reactions'")).scalar()

    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (reactions_holder() and _listening_sockets(port)):
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            time.sleep(0.2)
        assert reactions_holder(), "the embedded worker never took its lease"
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10).status_code == 200
    finally:
        # when it is stopped as a service manager stops it
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    # then it exits 0, and the worker gave back its claims (the next start need not wait out the lease)
    assert code == 0, proc.stderr.read().decode() if proc.stderr else ""
    assert not reactions_holder()
