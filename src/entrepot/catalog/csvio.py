"""CSV import/export plumbing shared by master-data imports (products, customers, suppliers,
supplier items, price lists).

An import reads the whole file, checks every row (reporting each problem with its
row number, column and rule), and writes in the caller's unit of work. The
caller commits only when the report has no errors and it is not a dry run, so a
file goes in completely or not at all.

Row numbers are the file's lines as a text editor numbers them (the header is
row 1), counted to the line a record starts on: a quoted cell with a line break
spans several lines, so a spreadsheet's row numbers can be lower.

Text cells are guarded against spreadsheet formulas (CWE-1236, as OWASP
advises): export writes a text value that starts with `=`, `+`, `-`, `@`, tab
or carriage return with a leading `'`, so a spreadsheet shows it instead of
running it, and import takes that `'` off again (`quote_formula` /
`unquote_formula`, the only place this is done).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import Enum
from typing import IO, Any

from entrepot.kernel.errors import DomainError, FieldError, InvalidTransition, ValidationFailed

MAX_REPORTED_ERRORS = 1000
Progress = Callable[[int], None]


@dataclass(frozen=True)
class RowError:
    row: int  # the line the record starts on, as a text editor counts; the header is row 1
    column: str
    message: str
    rule: str

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "message": self.message, "rule": self.rule}


@dataclass
class ImportReport:
    entity: str
    dry_run: bool = False
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    error_count: int = 0

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def add(self, row: int, column: str, message: str, rule: str) -> None:
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(RowError(row, column, message, rule))

    def add_field_errors(self, row: int, errors: Iterable[FieldError], columns: Mapping[str, str] | None = None,
                         ) -> None:
        for e in errors:
            self.add(row, (columns or {}).get(e.field, e.field), e.message, e.rule)

    def add_refusal(self, row: int, exc: DomainError, columns: Mapping[str, str] | None = None) -> None:
        """What a service refused when writing the row: each field it names, else the field its
        conflict is on (a status change the machine does not allow is on `status`)."""
        if isinstance(exc, ValidationFailed):
            self.add_field_errors(row, exc.errors, columns)
            return
        field_name = exc.extra.get("field") or ("status" if isinstance(exc, InvalidTransition) else "")
        self.add(row, (columns or {}).get(field_name, field_name), exc.detail, exc.code)

    def as_dict(self) -> dict[str, Any]:
        return {"entity": self.entity, "dry_run": self.dry_run, "rows": self.rows, "created": self.created,
                "updated": self.updated, "unchanged": self.unchanged, "error_count": self.error_count,
                "errors": [e.as_dict() for e in self.errors]}


def records(reader: Any) -> Iterator[tuple[int, list[str]]]:
    """Each record of a `csv.reader` with the file line it starts on (blank lines give []).
    Why not count records or use `line_num` as it is: a quoted cell with a line break makes
    a record span lines, and `line_num` is where the record ends."""
    start = 1
    for record in reader:
        yield start, record
        start = reader.line_num + 1


def read_rows(stream: IO[str], report: ImportReport, *, columns: Sequence[str],
              required: Sequence[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (row number, {column: stripped, unquoted value}) for each data row; header problems
    are reported on the header's row and end the read."""
    lines = records(csv.reader(stream))
    head_line, raw = next(((n, r) for n, r in lines if r), (1, []))
    header = [h.strip().lstrip("\ufeff") for h in raw]
    # A spreadsheet saves the empty columns after the last one it used ("sku,name,,"): they are not
    # columns, and their cells must stay empty (a value under no name is "more values than columns").
    while header and not header[-1]:
        header.pop()
    problems = False
    for name in header:
        if name not in columns:
            report.add(head_line, name, f"unknown column (known: {', '.join(columns)})", "unknown_column")
            problems = True
    if len(set(header)) != len(header):
        report.add(head_line, "", "a column appears twice", "duplicate_column")
        problems = True
    for name in required:
        if name not in header:
            report.add(head_line, name, "required column is missing", "required_column")
            problems = True
    if problems:
        return
    for line, record in lines:
        if len(record) > len(header):
            if any(v.strip() for v in record[len(header):]):
                report.add(line, "", "more values than columns", "shape")
                continue
            record = record[:len(header)]
        cells = record + [""] * (len(header) - len(record))  # a short record leaves its last columns empty
        values = {k: unquote_formula(v.strip()) for k, v in zip(header, cells, strict=True)}
        if any(values.values()):  # blank lines and rows of empty cells are not rows
            report.rows += 1
            yield line, values


def chunks(rows: Iterable[tuple[int, dict[str, str]]], size: int) -> Iterator[list[tuple[int, dict[str, str]]]]:
    batch: list[tuple[int, dict[str, str]]] = []
    for item in rows:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def cell(value: Any) -> str:
    """A value as a CSV cell that imports back to the same value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        text = format(value.normalize(), "f")
        return text.rstrip("0").rstrip(".") if "." in text else text
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):  # text: numbers, dates, flags and ids are not str, so never quoted
        return quote_formula(value)
    return str(value)


# What a spreadsheet reads as the start of a formula (OWASP, CSV injection), and the quote itself,
# so that a value really starting with ' comes back whole: '=x is written ''=x and read back '=x.
_QUOTED = ("=", "+", "-", "@", "\t", "\r", "'")


def quote_formula(text: str) -> str:
    """A text cell as exported: with a leading ' when a spreadsheet would run it as a formula."""
    return "'" + text if text.startswith(_QUOTED) else text


def unquote_formula(text: str) -> str:
    """An imported cell without the ' that `quote_formula` added; other values are left as they are.
    Applied to every column: export quotes only text, so a number, date or flag never carries it
    (a hand-typed '-5 reads as -5, as a spreadsheet would take it)."""
    return text[1:] if text.startswith("'") and text[1:].startswith(_QUOTED) else text


def write_rows(stream: IO[str], columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> int:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(columns)
    count = 0
    for row in rows:
        writer.writerow([cell(row.get(c)) for c in columns])
        count += 1
    return count


def count_data_rows(path: str) -> int:
    """Cheap line count for a progress bar (quoted newlines make it an estimate)."""
    with open(path, "rb") as fh:
        return max(sum(1 for _ in fh) - 1, 0)


class ImportFailed(ValidationFailed):
    """An import with row errors: nothing was written. 422 with every problem (row, column, rule)."""

    code = "import_failed"
    title = "Import refused: the file has errors"

    def __init__(self, report: ImportReport) -> None:
        super().__init__([FieldError(e.column or "file", f"row {e.row}: {e.message}", e.rule)
                          for e in report.errors],
                         detail=f"{report.error_count} problem(s) in the file; nothing was imported")
        self.report = report

    def problem_extra(self) -> dict[str, Any]:
        return {"errors": [{"field": e.column or "file", "row": e.row, "message": e.message, "rule": e.rule}
                           for e in self.report.errors], "error_count": self.report.error_count}


def decode_upload(content: bytes) -> io.StringIO:
    """An uploaded CSV as text (UTF-8, with or without a byte-order mark)."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(FieldError("file", "the file is not UTF-8 text", "encoding")) from exc
    if "\x00" in text:  # PostgreSQL text cannot hold NUL: refuse it here, naming the line, not in the database
        line = text.count("\n", 0, text.index("\x00")) + 1
        raise ValidationFailed(FieldError("file", f"line {line} contains a NUL character", "no_nul"))
    return io.StringIO(text, newline="")
