from __future__ import annotations

from entrepot.kernel.events import EventData, event_type


@event_type("journal_entry.posted.v1")
class JournalEntryPosted(EventData):
    """A balanced journal entry was posted (by a business document, by hand, or as a reversal)."""

    entry_id: str
    journal: str
    number: str
    date: str
    source_type: str
    source_id: str | None = None
    reversal_of: str | None = None
    currency: str
    functional_currency: str
    total: str


@event_type("period.closed.v1")
class PeriodClosedEvent(EventData):
    """An accounting period was closed: nothing more posts into it."""

    period_id: str
    year: int
    month: int


@event_type("period.reopened.v1")
class PeriodReopened(EventData):
    """A closed accounting period was reopened (needs finance.period.reopen)."""

    period_id: str
    year: int
    month: int
