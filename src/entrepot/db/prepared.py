"""Prepared statements: hot writes run straight on the driver's cursor.

SQLAlchemy's Core execution costs ten to twenty times the driver's own
`execute` for a small statement (an execution context, parameter
construction, result set-up on every call). The kernel runs the same few
statements in every business transaction (the audit chain, the outbox, the
document number), and the domains run a few of their own per line; for these,
`Prepared` compiles the Core statement once per dialect, keeps its SQL text,
parameter order and type conversions, and executes it on the DB-API cursor of
the unit of work's connection, inside the transaction the session began.

What stays the same: the SQL is what SQLAlchemy would send (same compiler, same
bind and result type conversions), the statement runs in the session's
transaction (tenant settings and row-level security on PostgreSQL included),
and `before_cursor_execute` listeners still see every statement, so statement
counts and logging stay true. What is not done: Python-side column defaults
and `onupdate` values. A statement whose table has such a column and does not
set it is refused when it is first compiled, so the omission cannot pass
silently.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Insert, Update, bindparam
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement

from entrepot.db.engine import announce
from entrepot.db.uow import UnitOfWork

__all__ = ["Prepared", "PreparedIn", "announce"]

_Params = Mapping[str, Any]


class _Compiled:
    __slots__ = ("dialect", "fixed", "names", "positional", "processors", "result_processors", "result_types", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None)
        if compiled.escaped_bind_names:
            raise ValueError(f"bind names need escaping, not supported: {compiled.escaped_bind_names}")
        self.sql: str = compiled.string
        self.positional = bool(compiled.positional)
        names: list[str] = list(compiled.positiontup or ()) if self.positional else list(compiled.binds)
        self.names = names
        # Literal values inside the statement (the 1 of `last_value + 1`) are bound parameters
        # that carry their own value.
        self.fixed: dict[str, Any] = {
            name: bind.effective_value
            for name, bind in compiled.binds.items()
            if not bind.required and bind.callable is None
        }
        procs = compiled._bind_processors
        self.processors: list[Callable[[Any], Any] | None] = [procs.get(name) for name in names]
        self.result_types = [column[3] for column in compiled._result_columns]
        self.dialect = dialect
        # Some conversions depend on the type the driver reports, so they are set up on first use.
        self.result_processors: list[Callable[[Any], Any] | None] | None = None

    def bind(self, params: _Params) -> Any:
        fixed = self.fixed
        values = []
        for name, process in zip(self.names, self.processors, strict=True):
            value = params[name] if name in params else fixed[name]
            # None goes through the processor too, as in SQLAlchemy: a JSON column stores `null`.
            values.append(process(value) if process is not None else value)
        return tuple(values) if self.positional else dict(zip(self.names, values, strict=True))

    def rows(self, cursor: Any) -> list[tuple[Any, ...]]:
        if self.result_processors is None:
            self.result_processors = [
                type_._cached_result_processor(self.dialect, described[1])
                for type_, described in zip(self.result_types, cursor.description, strict=True)
            ]
        return [self.row(raw) for raw in cursor.fetchall()]

    def row(self, raw: Sequence[Any]) -> tuple[Any, ...]:
        assert self.result_processors is not None
        return tuple(
            process(value) if process is not None else value
            for value, process in zip(raw, self.result_processors, strict=True)
        )


class Prepared:
    """A Core statement compiled once per dialect, executed on the driver's cursor.

    `columns` names the columns an INSERT sets (every row must give all of them);
    other statements take their bound parameters by name.
    """

    __slots__ = ("_by_dialect", "columns", "statement")

    def __init__(self, statement: ClauseElement, *, columns: Sequence[str] | None = None) -> None:
        self.statement = statement
        self.columns = tuple(columns) if columns else None
        self._by_dialect: dict[str, _Compiled] = {}

    def _compiled(self, dialect: Dialect) -> _Compiled:
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            _refuse_unset_python_defaults(self.statement, self.columns)
            compiled = self._by_dialect[dialect.name] = _Compiled(self.statement, dialect, self.columns)
        return compiled

    def execute(self, on: UnitOfWork | Connection, params: _Params) -> list[tuple[Any, ...]]:
        """Run once; return the rows it produced (RETURNING or SELECT), converted to Python values."""
        conn = on.connection() if isinstance(on, UnitOfWork) else on
        compiled = self._compiled(conn.dialect)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            args = compiled.bind(params)
            announce(conn, cursor, compiled.sql, args, executemany=False)
            cursor.execute(compiled.sql, args)
            if not compiled.result_types:  # known when compiled; psycopg builds `description` per call
                return []
            return compiled.rows(cursor)
        finally:
            cursor.close()

    def execute_many(self, on: UnitOfWork | Connection, rows: Sequence[_Params]) -> None:
        """Run once per parameter set, in one driver `executemany` (no rows returned)."""
        if not rows:
            return
        conn = on.connection() if isinstance(on, UnitOfWork) else on
        compiled = self._compiled(conn.dialect)
        cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            if len(rows) == 1:
                # One row is the usual case (one event, one audit entry); psycopg's executemany
                # would set up a pipeline for it.
                args = compiled.bind(rows[0])
                announce(conn, cursor, compiled.sql, args, executemany=False)
                cursor.execute(compiled.sql, args)
                return
            args = [compiled.bind(row) for row in rows]
            announce(conn, cursor, compiled.sql, args, executemany=True)
            cursor.executemany(compiled.sql, args)
        finally:
            cursor.close()


def _refuse_unset_python_defaults(statement: ClauseElement, columns: Sequence[str] | None) -> None:
    if isinstance(statement, Insert):
        given = set(columns or ())
        missing = [
            c.key for c in statement.table.columns  # type: ignore[attr-defined]
            if c.default is not None and c.key not in given
        ]
        if missing:
            raise ValueError(f"prepared INSERT into {statement.table} must set {missing} (Python-side defaults)")
    elif isinstance(statement, Update):
        given = {getattr(k, "key", k) for k in (statement._values or {})}
        missing = [
            c.key for c in statement.table.columns  # type: ignore[attr-defined]
            if c.onupdate is not None and c.key not in given
        ]
        if missing:
            raise ValueError(f"prepared UPDATE of {statement.table} must set {missing} (onupdate values)")


class PreparedIn:
    """A prepared statement whose IN lists take the ids of the call.

    A prepared statement holds a fixed number of parameters, so there is one per list length,
    rounded up to a power of two (the list is padded with its first id, which IN ignores): a
    handful of statements are ever built, each compiled once. `build(in_)` makes the statement;
    it writes `in_(column, "name")` where the list named `name` goes, and `execute` takes the
    lists by those names."""

    def __init__(self, build: Callable[[Callable[[Any, str], Any]], Any]) -> None:
        self._build = build
        self._by_sizes: dict[tuple[tuple[str, int], ...], Prepared] = {}

    def execute(self, uow: UnitOfWork, params: dict[str, Any], **lists: Sequence[Any]) -> list[tuple[Any, ...]]:
        if not all(lists.values()):
            return []  # IN () matches nothing
        sizes = tuple((name, 1 << (len(ids) - 1).bit_length()) for name, ids in lists.items())
        prepared = self._by_sizes.get(sizes)
        if prepared is None:
            size_of = dict(sizes)

            def in_(column: Any, name: str) -> Any:
                return column.in_([bindparam(f"{name}_{i}", type_=column.type) for i in range(size_of[name])])

            prepared = self._by_sizes[sizes] = Prepared(self._build(in_))
        args = dict(params)
        for name, size in sizes:
            ids = lists[name]
            for i in range(size):
                args[f"{name}_{i}"] = ids[i] if i < len(ids) else ids[0]
        return prepared.execute(uow, args)
