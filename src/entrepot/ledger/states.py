"""Lifecycles in the ledger: a period is open or closed; a journal entry is only ever posted."""

from __future__ import annotations

from enum import StrEnum

from entrepot.kernel.states import machine


class PeriodState(StrEnum):
    open = "open"
    closed = "closed"


PERIOD = machine(
    "period",
    "state",
    [
        ("close", [PeriodState.open], PeriodState.closed),
        ("reopen", [PeriodState.closed], PeriodState.open),
    ],
)


class EntryState(StrEnum):
    # Posted entries are immutable; a correction is a new (reversal) entry, so
    # there is no transition out of `posted`.
    posted = "posted"
