"""Text as people type it."""

from __future__ import annotations


def stripped_or_none(text: str | None) -> str | None:
    """A reference as typed, scanned or sent by a search form (a customer PO, a tracking number, a lot
    code), without the spaces around it; blank is none. Stored so and filtered so, the two match."""
    return (text or "").strip() or None
