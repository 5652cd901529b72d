"""entrepot.db.in_lists: IN lists cut to what one statement binds."""

from __future__ import annotations

import pytest

from entrepot.db.in_lists import MAX_IN_LIST, slices


def test_slices_keep_the_first_order_and_leave_duplicates_out():
    assert list(slices([3, 1, 3, 2, 1, 4], 2)) == [[3, 1], [2, 4]]


def test_no_values_make_no_slice():
    assert list(slices([])) == []


def test_a_whole_document_goes_in_one_slice():
    # a 5,000-line document (the most the API takes) still sends one statement
    assert [len(s) for s in slices(range(5000))] == [5000] == [MAX_IN_LIST]
    assert [len(s) for s in slices(range(12_001))] == [5000, 5000, 2001]


def test_a_slice_holds_at_least_one_value():
    with pytest.raises(ValueError):
        list(slices([1], 0))
