"""customer_facts: the one prepared read of a customer that order entry, pricing and billing share."""

from __future__ import annotations

from decimal import Decimal

import pytest

from entrepot.kernel.errors import NotFound
from entrepot.parties.models import CustomerStatus
from entrepot.parties.service import (
    CustomerNotActive,
    add_customer_address,
    archive_customer,
    change_customer_status,
    create_customer,
    customer_facts,
    ensure_can_order,
    update_customer,
)

SHIP_TO = {"kind": "ship_to", "line1": "1 Quay", "city": "Antwerp", "country": "BE"}


def test_facts_carry_status_terms_credit_tax_and_default_ship_to(tenant):
    # given
    with tenant.uow() as uow:
        c = create_customer(uow, {
            "code": "ACME", "name": "Acme", "currency": "EUR", "credit_limit": "1500.50", "customer_group": "dealers",
            "tax_country": "BE", "tax_exempt": True, "exemption_certificate": "EX-1", "payment_terms_days": 45,
            "early_discount_percent": "2", "early_discount_days": 10,
            "addresses": [SHIP_TO, {**SHIP_TO, "line1": "2 Quay", "region": "VAN", "is_default": True},
                          {**SHIP_TO, "kind": "bill_to", "line1": "HQ"}],
        })
        bare = create_customer(uow, {"code": "BARE", "name": "Bare", "currency": "USD"})
        uow.commit()
    # when
    with tenant.uow(readonly=True) as uow:
        facts = customer_facts(uow, c.id)
        bare_facts = customer_facts(uow, str(bare.id))
    # then
    assert (facts.id, facts.code, facts.status, facts.archived_at, facts.currency) == (
        c.id, "ACME", CustomerStatus.ACTIVE, None, "EUR")
    assert facts.credit_limit == Decimal("1500.50") and facts.customer_group == "dealers"
    assert (facts.tax_country, facts.tax_exempt) == ("BE", True)
    assert (facts.payment_terms_days, facts.early_discount_percent, facts.early_discount_days) == (45, Decimal(2), 10)
    assert facts.default_ship_to is not None
    assert (facts.default_ship_to.line1, facts.default_ship_to.region, facts.default_ship_to.country) == (
        "2 Quay", "VAN", "BE")
    assert bare_facts.default_ship_to is None and bare_facts.credit_limit is None
    assert (bare_facts.tax_exempt, bare_facts.payment_terms_days) == (False, 30)


def test_another_tenants_customer_is_not_found(tenant, other_tenant):
    # given
    with other_tenant.uow() as uow:
        theirs = create_customer(uow, {"code": "THEIRS", "name": "Theirs", "currency": "USD",
                                       "addresses": [SHIP_TO]})
        uow.commit()
    with tenant.uow() as uow:
        create_customer(uow, {"code": "OURS", "name": "Ours", "currency": "USD"})
        uow.commit()
    # when / then
    with tenant.uow(readonly=True) as uow, pytest.raises(NotFound):
        customer_facts(uow, theirs.id)
    with other_tenant.uow(readonly=True) as uow:
        assert customer_facts(uow, theirs.id).code == "THEIRS"


def test_unknown_or_malformed_id_is_not_found(tenant):
    with tenant.uow(readonly=True) as uow:
        with pytest.raises(NotFound):
            customer_facts(uow, "not-an-id")
        with pytest.raises(NotFound):
            customer_facts(uow, "0190c4e8-0000-7000-8000-000000000000")


def test_changes_in_the_same_unit_of_work_are_read_again(tenant):
    with tenant.uow() as uow:
        c = create_customer(uow, {"code": "C", "name": "C", "currency": "EUR"})
        ensure_can_order(customer_facts(uow, c.id))
        assert customer_facts(uow, c.id).default_ship_to is None
        # when
        change_customer_status(uow, c.id, "hold")
        # then
        with pytest.raises(CustomerNotActive):
            ensure_can_order(customer_facts(uow, c.id))
        change_customer_status(uow, c.id, "release")
        update_customer(uow, c.id, {"credit_limit": "10"})
        assert customer_facts(uow, c.id).credit_limit == Decimal("10")
        add_customer_address(uow, c.id, SHIP_TO)
        assert customer_facts(uow, c.id).default_ship_to.line1 == "1 Quay"
        archive_customer(uow, c.id)
        with pytest.raises(CustomerNotActive, match="archived"):
            ensure_can_order(customer_facts(uow, c.id))
