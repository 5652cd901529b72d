from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from entrepot.kernel.money import InvalidAmount, is_currency, minor_unit, round_money, to_decimal


def test_minor_units_follow_iso_4217():
    assert minor_unit("USD") == 2
    assert minor_unit("JPY") == 0
    assert minor_unit("KWD") == 3


def test_round_money_is_half_up_to_the_minor_unit():
    assert round_money(Decimal("1.005"), "USD") == Decimal("1.01")
    assert round_money(Decimal("1.004"), "USD") == Decimal("1.00")
    assert round_money(Decimal("2.5"), "JPY") == Decimal("3")


@pytest.mark.parametrize("bad", ["abc", "NaN", "Infinity", True, None, [1]])
def test_to_decimal_refuses_what_is_not_an_amount(bad):
    with pytest.raises(InvalidAmount):
        to_decimal(bad)


def test_to_decimal_takes_a_json_float_by_its_shortest_repr():
    assert to_decimal(0.1) == Decimal("0.1")


def test_currency_codes():
    assert is_currency("EUR")
    assert not is_currency("eur")
    assert not is_currency("XXXX")
    assert not is_currency("ZZZ")
    # ISO codes that are not money anyone invoices in: no currency, testing, gold, special drawing rights
    assert not any(is_currency(code) for code in ("XXX", "XTS", "XAU", "XDR"))
    # while the CFA and CFP francs and the East Caribbean dollar are currencies
    assert all(is_currency(code) for code in ("XAF", "XOF", "XPF", "XCD"))


@given(st.decimals(min_value=-10**9, max_value=10**9, places=6, allow_nan=False))
def test_rounding_moves_at_most_half_a_minor_unit(amount):
    assert abs(round_money(amount, "USD") - amount) <= Decimal("0.005")
