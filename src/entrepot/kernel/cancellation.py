"""Whether the work running on this thread has been called off (a scheduled job whose lease another
worker now holds): long loops look between their steps and stop there, rather than run on beside the
worker that took over."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from entrepot.kernel.errors import DomainError


class CalledOff(DomainError):
    code = "called_off"
    status = 409
    title = "Work called off"


_called_off: ContextVar[Callable[[], bool] | None] = ContextVar("called_off", default=None)


@contextmanager
def calling_off_when(check: Callable[[], bool]) -> Iterator[None]:
    """Within: `stop_if_called_off()` raises once `check()` says the work is called off."""
    token = _called_off.set(check)
    try:
        yield
    finally:
        _called_off.reset(token)


def stop_if_called_off(what: str) -> None:
    check = _called_off.get()
    if check is not None and check():
        raise CalledOff(f"{what} stopped: called off (its lease is held by another worker now)")
