"""Prepared statements' own conversions of the hot column types give exactly what SQLAlchemy's give."""

import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import JSON, Integer, String, Uuid
from sqlalchemy.dialects import sqlite
from sqlalchemy.dialects.postgresql import psycopg

from entrepot.db.prepared import bind_processor, result_processor
from entrepot.db.types import Exact, UtcDateTime
from entrepot.kernel.ids import id_from_hex, new_id

SQLITE = sqlite.dialect()

VALUES = {
    Uuid: [None, new_id(), uuid.uuid4(), uuid.UUID(int=0), uuid.UUID(int=2**128 - 1)],
    UtcDateTime: [None, datetime(2026, 3, 1, 12, 30, tzinfo=UTC), datetime(1, 1, 1, tzinfo=UTC),
                  datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                  datetime(2026, 3, 1, 0, 30, 0, 7, tzinfo=timezone(timedelta(hours=5, minutes=30)))],
    Exact: [None, Decimal("19.99"), Decimal("0.0001"), Decimal("-0.00005"), Decimal("0.00015"), Decimal("1E+5"),
            Decimal("1234567890123456.7891"), 3, "2.5", Decimal("-0")],
}


def _same(a: object, b: object) -> bool:
    return a == b and type(a) is type(b) and getattr(a, "tzinfo", None) is getattr(b, "tzinfo", None)


@pytest.mark.parametrize("kind", list(VALUES), ids=lambda k: k.__name__)
def test_hot_types_write_and_read_on_sqlite_as_sqlalchemy_does(kind):
    type_ = kind()
    ours_in, theirs_in = bind_processor(type_, SQLITE), type_._cached_bind_processor(SQLITE)
    ours_out, theirs_out = result_processor(type_, SQLITE, None), type_._cached_result_processor(SQLITE, None)
    assert ours_in is not theirs_in  # the fast path is the one under test
    for value in VALUES[kind]:
        stored = theirs_in(value)
        assert _same(ours_in(value), stored), value
        assert _same(ours_out(stored), theirs_out(stored)), value


def test_a_naive_datetime_is_refused_as_sqlalchemy_refuses_it():
    with pytest.raises(ValueError, match="naive"):
        bind_processor(UtcDateTime(), SQLITE)(datetime(2026, 3, 1))


def test_an_id_not_in_the_stored_form_is_parsed_or_refused_by_uuid():
    some = uuid.uuid4()
    assert id_from_hex(str(some)) == some
    assert id_from_hex(some.hex) == some
    with pytest.raises(ValueError):
        id_from_hex("abc")


@pytest.mark.parametrize("type_", [Uuid(), UtcDateTime(), Exact(), String(), Integer(), JSON()],
                         ids=lambda t: type(t).__name__)
def test_other_types_and_postgresql_keep_sqlalchemys_conversions(type_):
    pg, numeric = psycopg.dialect(), 1700  # the type PostgreSQL reports for NUMERIC
    assert bind_processor(type_, pg) is type_._cached_bind_processor(pg)
    assert result_processor(type_, pg, numeric) is type_._cached_result_processor(pg, numeric)
    if type(type_) not in VALUES:
        assert bind_processor(type_, SQLITE) is type_._cached_bind_processor(SQLITE)


def test_a_date_is_not_a_utc_datetime():
    # as in SQLAlchemy's conversion, which asks the date for its zone
    with pytest.raises(AttributeError):
        bind_processor(UtcDateTime(), SQLITE)(date(2026, 3, 1))


def test_a_time_bound_again_gives_the_same_text_and_others_are_still_converted():
    # the conversion keeps the last time it converted; other values must not get its text
    to_text = bind_processor(UtcDateTime(), SQLITE)
    sqlalchemys = UtcDateTime()._cached_bind_processor(SQLITE)
    at = datetime(2026, 3, 1, 12, 30, 0, 5, tzinfo=UTC)
    elsewhere = datetime(2026, 3, 1, 18, 0, 0, 5, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    for value in [at, at, elsewhere, elsewhere, at, None, at, at.replace(microsecond=6)]:
        assert to_text(value) == sqlalchemys(value), value
    to_text(at)
    with pytest.raises(ValueError, match="naive"):
        to_text(at.replace(tzinfo=None))
