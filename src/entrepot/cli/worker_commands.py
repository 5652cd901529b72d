"""`entrepot worker`: the outbox dispatcher and scheduler in the foreground; `entrepot jobs`: its jobs."""

from __future__ import annotations

import signal
import threading
from typing import Any

import typer

from entrepot.cli.friendly import friendly


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        batch: int = typer.Option(200, "--batch", min=1, help="Deliveries claimed per pass"),
        concurrency: int = typer.Option(32, "--concurrency", min=1, help="Deliveries in flight at once"),
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

    @app.command()
    @friendly
    def jobs() -> None:
        """List the scheduled jobs: last run, its error, next run, the worker running one now. Exit 1 when
        a job's last run failed."""
        from rich.console import Console
        from rich.markup import escape

        from entrepot.worker.scheduler import job_statuses

        def at(moment: Any) -> str:
            return moment.strftime("%Y-%m-%d %H:%M:%SZ")  # UTC

        statuses = job_statuses()
        out = Console()
        # a block per job, not a table: the times and the error stay whole in a pipe's 80 columns
        for job in statuses:
            out.print(f"[bold]{job.name}[/bold]  {escape(job.cron or '(not in this release)')}")
            out.print(f"  last run    {at(job.last_run_at) if job.last_run_at else 'never'}")
            out.print(f"  next run    {at(job.next_run_at) if job.next_run_at else 'when a worker starts'}")
            if job.running_on:
                out.print(f"  running on  {escape(job.running_on)}")
            if job.last_error:
                out.print(f"  [red]last error[/red]  {escape(job.last_error)}")
        failed = [job.name for job in statuses if job.last_error]
        if failed:
            Console(stderr=True).print(f"[red]the last run of {', '.join(failed)} failed[/red]")
            raise typer.Exit(1)
