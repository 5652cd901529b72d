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
from bench._server import _listening_sockets, free_port

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
