"""IN lists whose length comes from a tenant's data, not from the size of one request.

A list of values in `column IN (...)` binds one parameter per value: SQLAlchemy's expanding
parameters render one placeholder each, and `PreparedIn` one per value with its list padded
to the next power of two. SQLite refuses a statement of more than 32,766 parameters as it is
built by default (SQLITE_MAX_VARIABLE_NUMBER since 3.32; Debian's build allows 250,000), psycopg
one of more than 65,535 (the protocol counts them in 16 bits). So a report or a job that put all
of a tenant's products, rules or orders into one IN list would work for a small tenant and fail
for a large one.

Where the values come from the database, a subquery or a join takes their place (replenishment
joins its reorder rules; revaluation selects the warehouse's locations). Where they come from
Python (ids a caller holds, the codes of an import file), `slices` cuts them into lists of at
most `MAX_IN_LIST` values, and the caller runs one statement per list.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import TypeVar

__all__ = ["MAX_IN_LIST", "slices"]

# A validated document has at most 5,000 lines (sales.MAX_LINES, the API's line lists), so a step
# over one document's lines still sends one statement; two such lists in one statement bind 10,000
# parameters, three padded by PreparedIn 3 × 8,192: all below SQLite's 32,766.
MAX_IN_LIST = 5000

_V = TypeVar("_V", bound=Hashable)


def slices(values: Iterable[_V], size: int = MAX_IN_LIST) -> Iterator[list[_V]]:
    """The distinct values, in the order first given, in lists of at most `size` (no list for no
    values): one statement per list keeps every IN list within the databases' parameter limits."""
    if size < 1:
        raise ValueError("size must be at least 1")
    distinct = list(dict.fromkeys(values))
    for start in range(0, len(distinct), size):
        yield distinct[start:start + size]
