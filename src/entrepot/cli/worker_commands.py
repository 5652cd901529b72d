"""`entrepot worker`: the outbox dispatcher and scheduler in the foreground."""

from __future__ import annotations

import signal
import threading
from typing import Any

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        batch: int = typer.Option(200, "--batch", help="Deliveries claimed per pass"),
        concurrency: int = typer.Option(32, "--concurrency", help="Deliveries in flight at once"),
        no_scheduler: bool = typer.Option(False, "--no-scheduler", help="Do not run periodic jobs"),
    ) -> None:
        """Run the worker: reactions, webhooks, NATS, periodic jobs. SIGTERM/SIGINT stop it gracefully."""
        from entrepot.db.bootstrap import init_database
        from entrepot.worker.runtime import Worker

        init_database()
        stop = threading.Event()

        def on_signal(signum: int, _frame: Any) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        runner = Worker(batch=batch, concurrency=concurrency, scheduler_enabled=not no_scheduler)
        typer.echo(f"worker {runner.worker_id} running", err=True)
        try:
            runner.run_forever(stop)
        finally:
            runner.release()
        typer.echo("worker stopped; claims released", err=True)
