"""How `entrepot serve` runs: the API processes (uvicorn) and the embedded worker beside them."""

from __future__ import annotations

import importlib
import multiprocessing
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

APP = "entrepot.api.asgi:app"
STARTUP_FAILURE = 3  # uvicorn's exit code for an app that cannot start: do not respawn it


@contextmanager
def embedded_worker(enabled: bool = True) -> Iterator[Any]:
    if not enabled:
        yield None
        return
    try:
        runtime = importlib.import_module("entrepot.worker.runtime")
    except ModuleNotFoundError as exc:
        if not "entrepot.worker.runtime".startswith(exc.name or "?"):
            raise
        yield None
        return
    worker = runtime.start_background_worker()
    try:
        yield worker
    finally:
        worker.stop()


def _config(host: str, port: int, workers: int) -> Any:
    import uvicorn

    # loop/http "auto": uvloop and httptools (both dependencies). No access log: every
    # request is already logged with its request id by the API's own middleware.
    return uvicorn.Config(APP, host=host, port=port, workers=workers, log_level="warning", access_log=False)


def run_api(host: str, port: int, workers: int = 1) -> None:
    """Serve the API until SIGINT/SIGTERM with `workers` uvicorn processes.

    Several workers each listen on their own SO_REUSEPORT socket, so the kernel spreads
    connections over them. (uvicorn's own multi-worker mode shares one socket, and
    uvloop accepts every pending connection at once: 16 keep-alive clients arriving
    together landed 14/2 or 16/0 on two workers, one process did all the work on one
    core and, on PostgreSQL, needed more connections than its pool keeps.)"""
    import uvicorn

    if workers <= 1 or port == 0 or not hasattr(socket, "SO_REUSEPORT"):
        # uvicorn shuts down on SIGTERM, then raises it again: the process would die by it before
        # `serve` stops its embedded worker (claims and leases held until they run out). As an
        # interrupt instead, uvicorn.run returns as it does on Ctrl-C, and `serve` ends cleanly.
        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            uvicorn.run(APP, host=host, port=port, workers=workers, log_level="warning", access_log=False)
        finally:
            signal.signal(signal.SIGTERM, previous)
        return
    spawn = multiprocessing.get_context("spawn")
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}

    def start() -> Any:
        process = spawn.Process(target=_serve_one, args=(host, port), name="entrepot-api")
        process.start()
        return process

    processes = [start() for _ in range(workers)]
    try:
        while not stop.wait(0.5):
            for i, process in enumerate(processes):
                if process.is_alive():
                    continue
                if process.exitcode == STARTUP_FAILURE:
                    stop.set()  # the app itself is broken: restarting would fail the same way
                    break
                processes[i] = start()
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes the requests in flight
        for process in processes:
            process.join(30)
            if process.is_alive():
                process.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _serve_one(host: str, port: int) -> None:
    """One API process on its own listening socket (runs in a spawned process)."""
    import uvicorn

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        print(f"entrepot serve: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
    config = _config(host, port, 1)
    uvicorn.Server(config).run(sockets=[sock])
