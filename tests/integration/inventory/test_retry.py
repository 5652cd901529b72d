"""Serialisation failures and deadlocks are retried inside the service, within bounds."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from entrepot.inventory.services.core import RETRIES, with_retry


class _Deadlock(Exception):
    sqlstate = "40P01"


def _failure(orig: Exception) -> OperationalError:
    return OperationalError("SELECT …", {}, orig)


def test_a_deadlock_is_retried_and_the_caller_sees_success(tenant):
    calls = []

    def work() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise _failure(_Deadlock("deadlock detected"))
        return "done"

    with tenant.uow() as uow:
        assert with_retry(uow, work) == "done"
    assert len(calls) == 3


def test_retries_are_bounded_and_other_errors_are_not_retried(tenant):
    calls = []

    def always() -> None:
        calls.append(1)
        raise _failure(_Deadlock("deadlock detected"))

    with tenant.uow() as uow, pytest.raises(OperationalError):
        with_retry(uow, always)
    assert len(calls) == RETRIES

    calls.clear()

    def broken() -> None:
        calls.append(1)
        raise _failure(Exception("no such table"))

    with tenant.uow() as uow, pytest.raises(OperationalError):
        with_retry(uow, broken)
    assert len(calls) == 1
