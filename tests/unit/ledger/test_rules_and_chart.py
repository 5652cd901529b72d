"""The declared posting rules and chart template, checked without a database."""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from entrepot.kernel.errors import InvalidTransition
from entrepot.ledger.chart import CONTROL_ROLES, DISTRIBUTION_CHART, JOURNALS, Role
from entrepot.ledger.posting import CREDIT, DEBIT, RULES, Leg, _evaluate
from entrepot.ledger.states import PERIOD, PeriodState


def test_every_role_has_exactly_one_account_in_the_template():
    roles = Counter(role for _, _, _, role in DISTRIBUTION_CHART if role)
    assert set(roles) == set(Role)
    assert all(n == 1 for n in roles.values())
    codes = [code for code, *_ in DISTRIBUTION_CHART]
    assert len(codes) == len(set(codes))


def test_control_accounts_are_receivable_payable_inventory():
    assert {Role.receivable, Role.payable, Role.inventory} == CONTROL_ROLES


def test_journal_prefixes_are_distinct():
    prefixes = [p for _, _, p in JOURNALS]
    assert len(prefixes) == len(set(prefixes))


@pytest.mark.parametrize("event", sorted(RULES))
def test_each_rule_balances_for_any_amounts(event):
    # a rule with a balancing leg balances by construction; the others must balance term by term
    rule = RULES[event]
    balancing = [leg for leg in rule.legs if leg.balancing]
    assert len(balancing) <= 1
    if balancing:
        return
    weight: Counter[str] = Counter()
    for leg in rule.legs:
        for sign, name in leg.terms():
            weight[name] += sign if leg.side == DEBIT else -sign
    assert all(v == 0 for v in weight.values()), f"{event} does not balance: {dict(weight)}"


@given(st.dictionaries(st.sampled_from(["net", "tax", "amount", "discount"]),
                       st.decimals(min_value=-10**6, max_value=10**6, places=2), min_size=4))
def test_invoice_legs_evaluate_to_a_balanced_entry(amounts):
    rule = RULES["invoice"]
    signed = [sum((s * amounts[n] for s, n in leg.terms()), Decimal(0)) * (1 if leg.side == DEBIT else -1)
              for leg in rule.legs]
    assert sum(signed) == 0


@given(st.dictionaries(st.sampled_from(["net", "tax", "received", "amount", "discount", "discount_tax"]),
                       st.decimals(min_value=-10**6, max_value=10**6, places=4), min_size=6))
def test_every_leg_evaluates_to_the_signed_sum_of_its_terms(amounts):
    # `_evaluate` hands a one-term leg its amount as given; the result must be the plain sum
    for rule in RULES.values():
        for leg in rule.legs:
            if not leg.balancing:
                assert _evaluate(leg, amounts) == sum((s * amounts[n] for s, n in leg.terms()), Decimal(0))
    assert _evaluate(Leg(Role.cash, DEBIT, "-amount"), amounts) == -amounts["amount"]


def test_amount_expressions_parse():
    assert Leg(Role.cash, DEBIT, "net + tax - discount").terms() == [(1, "net"), (1, "tax"), (-1, "discount")]
    with pytest.raises(ValueError):
        Leg(Role.cash, CREDIT, "net * 2").terms()


def test_every_rule_names_known_roles_and_posts_to_a_journal():
    for event, rule in RULES.items():
        assert rule.legs, event
        assert {leg.side for leg in rule.legs if not leg.balancing} == {DEBIT, CREDIT}, event


@pytest.mark.parametrize("state", list(PeriodState))
@pytest.mark.parametrize("action", PERIOD.actions)
def test_period_transitions(state, action):
    class P:
        pass

    p = P()
    p.state = state  # type: ignore[attr-defined]
    allowed = {(PeriodState.open, "close"): PeriodState.closed, (PeriodState.closed, "reopen"): PeriodState.open}
    if (state, action) in allowed:
        PERIOD.apply(p, action)
        assert p.state == allowed[(state, action)]  # type: ignore[attr-defined]
    else:
        with pytest.raises(InvalidTransition):
            PERIOD.apply(p, action)


@pytest.mark.parametrize("event", ["customer_payment", "credit_note"])
def test_a_discounts_tax_part_balances_without_the_fx_leg(event):
    # an early-payment discount's tax part (early_discount_reduces_tax) only moves amounts between
    # sales discounts and tax payable: in one currency the FX leg is never needed
    weight: Counter[str] = Counter()
    for leg in RULES[event].legs:
        if not leg.balancing:
            for sign, name in leg.terms():
                weight[name] += sign if leg.side == DEBIT else -sign
    assert all(v == 0 for v in weight.values()), dict(weight)
    roles = {leg.role for leg in RULES[event].legs for _, name in leg.terms() if name == "discount_tax"}
    assert roles == {Role.sales_discounts, Role.tax_payable}
