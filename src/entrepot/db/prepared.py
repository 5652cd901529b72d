"""Prepared statements: hot writes run straight on the driver's cursor.

SQLAlchemy's Core execution costs ten to twenty times the driver's own
`execute` for a small statement (an execution context, parameter
construction, result set-up on every call). The kernel runs the same few
statements in every business transaction (the audit chain, the outbox, the
document number), and the domains run a few of their own per line; for these,
`Prepared` compiles the Core statement once per dialect, keeps its SQL text,
parameter order and type conversions, and executes it on the DB-API cursor of
the unit of work's connection, inside the transaction the session began.

What stays the same: the SQL is what SQLAlchemy would send (same compiler), the
values are converted as SQLAlchemy converts them (its own conversions, or on
SQLite for ids, times and amounts one function each that gives the same
values; see `bind_processor`), the statement runs in the session's
transaction (tenant settings and row-level security on PostgreSQL included),
and `before_cursor_execute` listeners still see every statement, so statement
counts and logging stay true. What is not done: Python-side column defaults
and `onupdate` values. A statement whose table has such a column and does not
set it is refused when it is first compiled, so the omission cannot pass
silently.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import JSON, Insert, Update, Uuid, bindparam
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.elements import BindParameter
from sqlalchemy.types import ARRAY, TypeDecorator, TypeEngine

from entrepot.db.engine import announce
from entrepot.db.types import Exact, UtcDateTime
from entrepot.db.uow import UnitOfWork
from entrepot.kernel.ids import id_from_hex
from entrepot.kernel.money import STORAGE_PLACES, to_decimal

__all__ = ["JsonText", "Prepared", "PreparedIn", "announce", "bind_processor", "json_text", "result_processor"]

_Params = Mapping[str, Any]


class _Compiled:
    __slots__ = ("bind", "dialect", "names", "positional", "result_types", "row", "sql")

    def __init__(self, statement: ClauseElement, dialect: Dialect, column_keys: Sequence[str] | None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=list(column_keys) if column_keys else None)
        if compiled.escaped_bind_names:
            raise ValueError(f"bind names need escaping, not supported: {compiled.escaped_bind_names}")
        self.sql: str = _binary_arrays(compiled) if dialect.name == "postgresql" else compiled.string
        self.positional = bool(compiled.positional)
        names: list[str] = list(compiled.positiontup or ()) if self.positional else list(compiled.binds)
        self.names = names
        # Literal values inside the statement (the 1 of `last_value + 1`) are bound parameters
        # that carry their own value.
        fixed: dict[str, Any] = {
            name: bind.effective_value
            for name, bind in compiled.binds.items()
            if not bind.required and bind.callable is None
        }
        processors = {name: bind_processor(compiled.binds[name].type, dialect) for name in dict.fromkeys(names)}
        self.bind: Callable[[_Params], Any] = _binder(names, processors, fixed, positional=self.positional)
        self.result_types = [column[3] for column in compiled._result_columns]
        self.dialect = dialect
        # Some conversions depend on the type the driver reports, so they are set up on first use.
        self.row: Callable[[Sequence[Any]], tuple[Any, ...]] | None = None

    def row_function(self, description: Sequence[Any]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
        """The conversion of a result row, given the cursor's `description` (made on first use)."""
        row = self.row
        if row is None:
            row = self.row = row_converter([
                result_processor(type_, self.dialect, described[1])
                for type_, described in zip(self.result_types, description, strict=True)
            ])
        return row

    def rows(self, cursor: Any) -> list[tuple[Any, ...]]:
        return list(map(self.row_function(cursor.description), cursor.fetchall()))


def _binary_arrays(compiled: Any) -> str:
    """PostgreSQL: the statement's text with its array parameters in the binary format.

    psycopg chooses a parameter's format by its placeholder: `%(name)s` lets it pick, and for
    a list it writes the text format element by element in Python, quoting and escaping each
    (for the 1,000 JSON bodies of a worker's fan-out pass ~50 ms of CPU); `%(name)b` asks for
    the binary format (~0.5 ms: each element copied with its length). Same values, same SQL.
    """
    sql: str = compiled.string
    for name, bind in compiled.binds.items():
        if isinstance(bind.type, ARRAY):
            sql = sql.replace(f"%({name})s", f"%({name})b")
    return sql


# ------------------------------------------------------------------ conversions
#
# SQLAlchemy's conversion of a column type is a chain of closures (the decorator's, then its
# implementation's), each checking the dialect and the value again. On SQLite the ids, times
# and amounts of every row go through them, so the kernel's own types (and `Uuid`) get one
# function each here, which give exactly what the chain gives (tests/unit/test_prepared_conversions.py
# checks that they agree). Every other type, and every type on PostgreSQL, keeps SQLAlchemy's.


def _uuid_to_hex(value: uuid.UUID | None) -> str | None:
    return None if value is None else f"{value.int:032x}"


# A transaction binds the same time object many times (its `now` in every row it writes, one
# batch's rows each): the last one converted is kept, and the same object (`is`, datetimes are
# immutable) is not converted again. One tuple, so a thread reads the pair of another whole.
_last_utc: tuple[datetime | None, str | None] = (None, None)


def _utc_to_text(value: datetime | None) -> str | None:
    global _last_utc
    last = _last_utc
    if value is last[0]:
        return last[1]
    if value is None:
        return None
    zone = value.tzinfo
    if zone is None:
        raise ValueError("naive datetime given; use entrepot.kernel.clock.now()")
    # SQLite's storage form: "YYYY-MM-DD HH:MM:SS.ffffff", UTC, without the offset.
    text = (value if zone is UTC else value.astimezone(UTC)).isoformat(" ", "microseconds")[:26]
    _last_utc = (value, text)
    return text


def _text_to_utc(value: str | None) -> datetime | None:
    if value is None:
        return None
    read = datetime.fromisoformat(value)
    return read.replace(tzinfo=UTC) if read.tzinfo is None else read.astimezone(UTC)


_SCALE = Decimal(10) ** STORAGE_PLACES


def _exact_to_scaled(value: Any) -> int | None:
    if value is None:
        return None
    amount = value if type(value) is Decimal and value.is_finite() else to_decimal(value)
    return int((amount * _SCALE).to_integral_value(rounding=ROUND_HALF_UP))


def _scaled_to_exact(value: Any) -> Decimal | None:
    return None if value is None else Decimal(int(value)).scaleb(-STORAGE_PLACES)


def bind_processor(type_: TypeEngine[Any], dialect: Dialect) -> Callable[[Any], Any] | None:
    """The conversion of a value bound to a column of `type_` (None: the value goes as it is)."""
    if dialect.name == "sqlite":
        kind = type(type_)
        if kind is Uuid and type_.as_uuid:  # type: ignore[attr-defined]
            return _uuid_to_hex
        if kind is UtcDateTime:
            return _utc_to_text
        if kind is Exact:
            return _exact_to_scaled
    return type_._cached_bind_processor(dialect)


def result_processor(type_: TypeEngine[Any], dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
    """The conversion of a value read from a column of `type_` (None: the driver's value is kept)."""
    if dialect.name == "sqlite":
        kind = type(type_)
        if kind is Uuid and type_.as_uuid:  # type: ignore[attr-defined]
            return id_from_hex
        if kind is UtcDateTime:
            return _text_to_utc
        if kind is Exact:
            return _scaled_to_exact
    return type_._cached_result_processor(dialect, coltype)


# A statement's bind and row conversions run for every row it writes or reads, so each is made
# once per statement as one plain function (as SQLAlchemy makes its own loaders): no loop over
# columns, no per-value test of whether a column has a conversion. The generated code names only
# the statement's own bind names (quoted with repr) and numbered locals.


def _function(source: str, namespace: dict[str, Any]) -> Callable[..., Any]:
    exec(source, namespace)  # see above: nothing in the source comes from outside the statement
    return namespace["made"]  # type: ignore[no-any-return]


def _binder(names: Sequence[str], processors: Mapping[str, Callable[[Any], Any] | None],
            fixed: Mapping[str, Any], *, positional: bool) -> Callable[[_Params], Any]:
    namespace: dict[str, Any] = {}
    local: dict[str, str] = {}
    lines = ["def made(p):"]
    for name in dict.fromkeys(names):
        i = len(local)
        local[name] = f"v{i}"
        if name in fixed:
            namespace[f"f{i}"] = fixed[name]
            value = f"p.get({name!r}, f{i})"
        else:
            value = f"p[{name!r}]"
        process = processors.get(name)
        if process is not None:
            # None goes through the conversion too, as in SQLAlchemy: a JSON column stores `null`.
            namespace[f"c{i}"] = process
            value = f"c{i}({value})"
        lines.append(f"    v{i} = {value}")
    if positional:
        lines.append(f"    return ({''.join(local[name] + ', ' for name in names)})")
    else:
        lines.append(f"    return {{{', '.join(f'{name!r}: {local[name]}' for name in names)}}}")
    return _function("\n".join(lines) + "\n", namespace)


def row_converter(processors: Sequence[Callable[[Any], Any] | None], *, keys: Sequence[str] | None = None,
                  offset: int = 0) -> Callable[[Sequence[Any]], Any]:
    """`row -> tuple` of the converted columns from `offset` on, one per processor; with `keys`,
    `row -> {key: value}` instead (a join read in parts, e.g. a document's header and lines)."""
    if keys is None and offset == 0 and not any(processors):
        return tuple  # the drivers' rows are tuples already: tuple() gives them back as they are
    namespace: dict[str, Any] = {}
    values = []
    for i, process in enumerate(processors):
        value = f"r[{offset + i}]"
        if process is not None:
            namespace[f"c{i}"] = process
            value = f"c{i}({value})"
        values.append(value)
    if keys is None:
        made = f"({''.join(v + ', ' for v in values)})"
    else:
        made = "{" + ", ".join(f"{key!r}: {v}" for key, v in zip(keys, values, strict=True)) + "}"
    return _function(f"def made(r):\n    return {made}\n", namespace)


class JsonText(TypeDecorator[str]):
    """A JSON column's value bound as text that is already JSON (JSON text on SQLite, cast to
    jsonb on PostgreSQL): for writers that serialise once for more than the column (the audit
    chain hashes the same text) or faster than `json.dumps` of a dict (pydantic's event JSON)."""

    impl = JSON
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return dialect.type_descriptor(JSONB() if dialect.name == "postgresql" else JSON())

    def bind_processor(self, dialect: Dialect) -> None:
        return None


def json_text(name: str) -> BindParameter[str]:
    """The bound parameter `name` as JSON text, for `insert(table).values(column=json_text(...))`."""
    return bindparam(name, type_=JsonText())


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

    def compiled(self, dialect: Dialect) -> _Compiled:
        """The statement as compiled for `dialect`: its `sql`, its `bind(params)` and its
        `row_function(description)`, for a caller that runs it on a cursor of its own."""
        compiled = self._by_dialect.get(dialect.name)
        if compiled is None:
            _refuse_unset_python_defaults(self.statement, self.columns)
            compiled = self._by_dialect[dialect.name] = _Compiled(self.statement, dialect, self.columns)
        return compiled

    def execute(self, on: UnitOfWork | Connection, params: _Params) -> list[tuple[Any, ...]]:
        """Run once; return the rows it produced (RETURNING or SELECT), converted to Python values."""
        conn = on.connection() if isinstance(on, UnitOfWork) else on
        compiled = self.compiled(conn.dialect)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
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
        compiled = self.compiled(conn.dialect)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
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
        # per list sizes: the statement, and each list's parameter names
        self._by_sizes: dict[tuple[tuple[str, int], ...], tuple[Prepared, list[tuple[str, list[str]]]]] = {}

    def execute(self, uow: UnitOfWork, params: dict[str, Any], **lists: Sequence[Any]) -> list[tuple[Any, ...]]:
        if not all(lists.values()):
            return []  # IN () matches nothing
        sizes = tuple((name, 1 << (len(ids) - 1).bit_length()) for name, ids in lists.items())
        found = self._by_sizes.get(sizes)
        if found is None:
            keys = [(name, [f"{name}_{i}" for i in range(size)]) for name, size in sizes]
            keys_of = dict(keys)

            def in_(column: Any, name: str) -> Any:
                return column.in_([bindparam(key, type_=column.type) for key in keys_of[name]])

            found = self._by_sizes[sizes] = (Prepared(self._build(in_)), keys)
        prepared, keys = found
        args = dict(params)
        for name, names in keys:
            ids = lists[name]
            args.update(zip(names, ids, strict=False))  # a shorter list is padded below
            for key in names[len(ids):]:
                args[key] = ids[0]
        return prepared.execute(uow, args)


class PreparedRows:
    """An INSERT of many rows as one statement (`INSERT … VALUES (…), (…), …`), for writers that
    buffer a transaction's rows and write them at commit (the outbox, the audit chain), on
    PostgreSQL: one statement and one round trip instead of one per row (measured ~25% less
    client CPU for five rows than psycopg's executemany). Not on SQLite, where stepping a
    one-row statement per row (`Prepared.execute_many`) costs about a third less CPU than
    the multi-row statement: `execute` chooses, so writers just call it.

    `single` is the one-row statement. It takes the rows on SQLite, a single row, and more
    than `max_rows` rows (one executemany, which psycopg pipelines). Otherwise one prepared
    statement per row count, made on first use, so at most `max_rows` are ever built. `bind(column, name)`
    gives the bound parameter of `column` in one row (default: the column's type); `fixed`
    gives SQL values the same in every row (PostgreSQL's transaction id). Rows are dicts by
    column name, as `Prepared.execute_many` takes them."""

    __slots__ = ("_bind", "_by_count", "columns", "fixed", "max_rows", "single", "table")

    def __init__(self, table: Any, columns: Sequence[str], *, single: Prepared,
                 bind: Callable[[str, str], Any] | None = None, fixed: Mapping[str, Any] | None = None,
                 max_rows: int = 64) -> None:
        self.table = table
        self.single = single
        self.columns = tuple(columns)
        self._bind = bind or (lambda column, name: bindparam(name, type_=table.c[column].type))
        self.fixed = dict(fixed or {})
        self.max_rows = max_rows
        self._by_count: dict[int, tuple[Prepared, list[list[tuple[str, str]]]]] = {}

    def _statement(self, count: int) -> tuple[Prepared, list[list[tuple[str, str]]]]:
        found = self._by_count.get(count)
        if found is None:
            names = [[(column, f"{column}_{i}") for column in self.columns] for i in range(count)]
            values = [{**{column: self._bind(column, name) for column, name in row}, **self.fixed} for row in names]
            statement = self.table.insert().values(values).inline()
            found = self._by_count[count] = (Prepared(statement, columns=[*self.columns, *self.fixed]), names)
        return found

    def execute(self, on: UnitOfWork | Connection, rows: Sequence[_Params]) -> None:
        conn = on.connection() if isinstance(on, UnitOfWork) else on
        if conn.dialect.name != "postgresql" or not 1 < len(rows) <= self.max_rows:
            self.single.execute_many(conn, rows)
            return
        prepared, names = self._statement(len(rows))
        prepared.execute(conn, {name: row[column] for row, row_names in zip(rows, names, strict=True)
                                for column, name in row_names})
