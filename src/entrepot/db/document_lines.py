"""Writing a document's lines in one statement.

An order, shipment or invoice is written once with all its lines, and a step
then moves the same column (shipped, invoiced) on every line. The ORM's flush
bookkeeping costs about as much per line as the SQL itself, so these two
helpers write the lines as one executemany and leave the objects in the
session exactly as if they had been loaded: reading them, or changing them
later in the same unit of work, works as for any other row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

from entrepot.db.uow import UnitOfWork


def insert_lines(uow: UnitOfWork, parent: Any, collection: str, lines: Sequence[Any]) -> None:
    """Write a new document's lines in ONE statement and attach them to `parent` as loaded objects.

    The ORM's flush bookkeeping costs about as much per line as the insert itself, and a
    document is written once and its lines rarely touched again in the same transaction. So the
    caller builds the lines as plain model objects with every column set; the parent (already
    added to the session) is flushed first, since the lines reference it; the rows go out as one
    executemany; then the objects join the session as clean persistent objects, exactly as if
    they had been loaded: reading them, or changing them later in the same unit of work, works
    as for any other row.
    """
    session = uow.session
    session.flush()
    if lines:
        table = type(lines[0]).__table__
        rows = []
        for line in lines:
            line.tenant_id = uow.tenant_id
            rows.append({k: v for k, v in vars(line).items() if k in table.c})
        session.connection().execute(insert(table), rows)
    for line in lines:
        make_transient_to_detached(line)
        session.add(line)
    set_committed_value(parent, collection, list(lines))


def update_lines(uow: UnitOfWork, lines: Sequence[Any], changes: Sequence[dict[str, Any]]) -> None:
    """Write new values of a few columns (the same ones for every line) to many lines of a document
    in ONE statement, and record them on the objects as their committed state.

    `insert_lines`' counterpart for the quantities a step moves on every line (shipped, invoiced):
    the ORM would track, diff and write each object; here the caller says what changed."""
    if not lines:
        return
    table = type(lines[0]).__table__
    keys = list(changes[0])
    statement = update(table).where(table.c.id == bindparam("b_id"), table.c.tenant_id == bindparam("b_tenant")
                                    ).values({k: bindparam(f"v_{k}") for k in keys})
    uow.session.connection().execute(statement, [
        {"b_id": line.id, "b_tenant": uow.tenant_id, **{f"v_{k}": change[k] for k in keys}}
        for line, change in zip(lines, changes, strict=True)])
    for line, change in zip(lines, changes, strict=True):
        for k in keys:
            set_committed_value(line, k, change[k])
