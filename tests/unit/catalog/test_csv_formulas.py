"""Spreadsheet-formula guard of CSV text cells: quoted on export, unquoted on import, exactly."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from entrepot.catalog.csvio import cell, quote_formula, unquote_formula


@given(st.text(alphabet=st.sampled_from("=+-@\t\r'a1 ") | st.characters(), max_size=12))
def test_any_text_comes_back_exactly_and_never_starts_a_formula(text):
    quoted = quote_formula(text)
    assert unquote_formula(quoted) == text
    assert not quoted.startswith(("=", "+", "-", "@", "\t", "\r"))


def test_each_formula_start_and_a_leading_quote_get_one_quote():
    assert [quote_formula(t) for t in ("=1+1", "+cmd", "-2+3", "@SUM(1)", "\tx", "\rx", "'abc", "a=b", "")] == [
        "'=1+1", "'+cmd", "'-2+3", "'@SUM(1)", "'\tx", "'\rx", "''abc", "a=b", ""]
    assert [unquote_formula(t) for t in ("'=1", "''abc", "'abc", "'", "x'=")] == ["=1", "'abc", "'abc", "'", "x'="]


def test_numbers_are_not_text_and_keep_their_sign():
    assert (cell(Decimal("-5")), cell(-5), cell(Decimal("-2.50"))) == ("-5", "-5", "-2.5")
