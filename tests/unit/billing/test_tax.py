"""The built-in tax engine's arithmetic, without a database."""

from __future__ import annotations

from datetime import date
from decimal import Decimal as D

from entrepot.billing.tax import RateRow, TaxableLine, TaxRequest, choose_rate, compute

ON = date(2026, 6, 1)
RATES = [
    RateRow("US", None, "*", D("0"), None, None),
    RateRow("US", "TX", "*", D("6.25"), None, None),
    RateRow("US", "TX", "food", D("0"), None, None),
    RateRow("DE", None, "*", D("19"), None, None),
    RateRow("DE", None, "reduced", D("7"), None, None),
    RateRow("FR", None, "*", D("19.6"), None, date(2013, 12, 31)),
    RateRow("FR", None, "*", D("20"), date(2014, 1, 1), None),
]


def request(lines, country="US", region="TX", **kw):
    return TaxRequest("USD", country, region, [TaxableLine(i, c, D(a)) for i, (c, a) in enumerate(lines)], ON, **kw)


def test_region_rate_wins_over_country_and_class_over_star():
    assert choose_rate(RATES, "US", "TX", "standard", ON) == D("6.25")
    assert choose_rate(RATES, "US", "TX", "food", ON) == D("0")
    assert choose_rate(RATES, "US", "CA", "standard", ON) == D("0")
    assert choose_rate(RATES, "DE", None, "reduced", ON) == D("7")


def test_a_region_is_matched_whatever_its_case_and_spaces():
    assert [choose_rate(RATES, "US", region, "standard", ON) for region in ("tx", " Tx ", "TX")] == [D("6.25")] * 3
    assert choose_rate([RateRow("US", " ny ", "*", D("4"), None, None)], "US", "NY", "standard", ON) == D("4")
    assert choose_rate(RATES, "US", " ", "standard", ON) == D("0")  # blank: no region, the country's rate


def test_rates_have_validity_dates():
    assert choose_rate(RATES, "FR", None, "standard", date(2013, 6, 1)) == D("19.6")
    assert choose_rate(RATES, "FR", None, "standard", date(2014, 1, 1)) == D("20")


def test_of_equally_specific_rates_the_one_that_starts_latest_then_the_last_entered_wins():
    # an open-ended 19 %, a temporary 16 % over it, and a region rate that still wins over both
    rates = [RateRow("DE", None, "*", D("19"), None, None),
             RateRow("DE", None, "*", D("16"), date(2020, 7, 1), date(2020, 12, 31)),
             RateRow("DE", "HE", "*", D("5"), None, None)]
    assert [choose_rate(rates, "DE", None, "standard", date(2020, m, d)) for m, d in ((6, 30), (7, 1), (12, 31))
            ] == [D("19"), D("16"), D("16")]
    assert choose_rate(rates, "DE", None, "standard", date(2021, 1, 1)) == D("19")
    assert choose_rate(rates, "DE", "HE", "standard", date(2020, 7, 1)) == D("5")
    # the same rate entered again (same place, class and first day): the later entry corrects it
    corrected = [*rates, RateRow("DE", None, "*", D("20"), None, None)]
    assert choose_rate(corrected, "DE", None, "standard", date(2021, 1, 1)) == D("20")


def test_no_jurisdiction_or_no_rate_is_zero_tax():
    assert compute(request([("standard", "10.00")], country=None), RATES).tax_total == 0
    assert compute(request([("standard", "10.00")], country="JP"), RATES).tax_total == 0


def test_exclusive_prices_round_per_line():
    # 3 lines of 0.10 at 6.25% = 0.00625 each: per line rounds each to 0.01
    result = compute(request([("standard", "0.10")] * 3), RATES)
    assert [t.tax for t in result.lines] == [D("0.01")] * 3
    assert result.tax_total == D("0.03") and result.net_total == D("0.30")


def test_per_document_rounding_rounds_once_and_lines_still_add_up():
    result = compute(request([("standard", "0.10")] * 3, rounding="document"), RATES)
    assert result.tax_total == D("0.02")  # 0.01875 rounded once
    assert sum(t.tax for t in result.lines) == result.tax_total


def test_exempt_customer_pays_no_tax():
    assert compute(request([("standard", "100.00")], exempt=True), RATES).tax_total == 0


def test_inclusive_prices_split_gross_into_net_and_tax():
    result = compute(request([("standard", "119.00")], country="DE", region=None, prices_include_tax=True), RATES)
    assert result.lines[0].tax == D("19.00") and result.lines[0].net == D("100.00")


def test_mixed_classes_in_one_document():
    result = compute(request([("standard", "100.00"), ("reduced", "100.00")], country="DE", region=None), RATES)
    assert [t.tax for t in result.lines] == [D("19.00"), D("7.00")]
