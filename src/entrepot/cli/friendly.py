"""How every command fails: a clear message on stderr and exit code 1, never a traceback, for a
refused action (a domain error) or a database `entrepot init` has not set up yet."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from sqlalchemy.exc import DBAPIError

from entrepot.kernel.errors import DomainError

err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def _schema_missing(exc: DBAPIError) -> bool:
    return "no such table" in str(exc.orig) or getattr(exc.orig, "sqlstate", None) == "42P01"


def friendly(fn: F) -> F:
    """Domain errors → a clear message on stderr and exit 1 (no traceback); so is a database
    that `entrepot init` has not set up yet."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DomainError as exc:
            faults = exc.problem_extra().get("errors") or []
            # the detail repeats the faults listed below it: then the title heads the list instead
            err.print(f"[red]error:[/red] {exc.title if faults else exc.detail}")
            for e in faults:
                err.print(f"  {e['field']}: {e['message']}")
            raise typer.Exit(1) from exc
        except DBAPIError as exc:
            if not _schema_missing(exc):
                raise
            err.print("[red]error:[/red] the database has no Entrepot tables yet: run `entrepot init` first")
            raise typer.Exit(1) from exc

    return wrapper  # type: ignore[return-value]
