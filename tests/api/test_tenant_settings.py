"""A tenant's business settings over HTTP: read, change, checked, audited, and obeyed by the domains."""

from __future__ import annotations

from decimal import Decimal

import pytest

from entrepot.api.deps import forget_rate_limit
from entrepot.identity.models import Tenant
from entrepot.identity.services.tenant_settings import update_tenant_settings
from entrepot.kernel.errors import ValidationFailed
from tests.api.conftest import Api, key_for
from tests.factories.catalog import create_product
from tests.factories.inventory import adjust, create_warehouse
from tests.factories.sales import act, create_order, order_desk

DEFAULTS = {
    "allocation_policy": "priority", "allow_negative_stock": False, "reallocate_on_release": False,
    "lot_expiry_warning_days": 30,
    "minimum_margin": "0", "prices_include_tax": False, "tax_rounding": "line", "invoice_grouping": "order",
    "early_discount_reduces_tax": False, "invoice_period": "none",
    "valuation_method": "moving_average", "rate_limit_per_minute": None,
}


def test_a_new_tenant_reads_every_setting_at_its_default(api):
    r = api.get("/tenant/settings")
    assert r.status_code == 200, r.text
    assert r.json() == DEFAULTS


def test_changing_settings_keeps_the_others_and_is_audited_with_an_event(api):
    # when
    r = api.patch("/tenant/settings", json={"allocation_policy": "split", "minimum_margin": 0.15})
    # then
    assert r.status_code == 200, r.text
    assert r.json() == {**DEFAULTS, "allocation_policy": "split", "minimum_margin": "0.15"}
    assert api.get("/tenant/settings").json() == r.json()
    entries = api.get("/audit-entries?entity_type=tenant").json()["items"]
    [entry] = [e for e in entries if e["action"] == "tenant.settings.update"]
    assert entry["before"] == {"allocation_policy": None, "minimum_margin": None}
    assert entry["after"] == {"allocation_policy": "split", "minimum_margin": "0.15"}
    events = [e for e in api.get("/events").json()["items"] if e["type"] == "tenant.settings_changed.v1"]
    assert [e["data"]["changed"] for e in events] == [["allocation_policy", "minimum_margin"]]
    assert events[0]["data"]["settings"]["allocation_policy"] == "split"


def test_null_resets_a_setting_and_an_unchanged_value_records_nothing(api):
    api.patch("/tenant/settings", json={"tax_rounding": "document"})
    # when
    same = api.patch("/tenant/settings", json={"tax_rounding": "document"})
    reset = api.patch("/tenant/settings", json={"tax_rounding": None})
    # then
    assert same.status_code == 200 and same.json()["tax_rounding"] == "document"
    assert reset.status_code == 200 and reset.json()["tax_rounding"] == "line"
    changes = [e for e in api.get("/events").json()["items"] if e["type"] == "tenant.settings_changed.v1"]
    assert len(changes) == 2  # set, reset: the repeat changed nothing


@pytest.mark.parametrize("body,field", [
    ({"allocation_policy": "closest"}, "allocation_policy"),
    ({"allow_negative_stock": "yes"}, "allow_negative_stock"),
    ({"minimum_margin": "-0.1"}, "minimum_margin"),
    ({"minimum_margin": "15%"}, "minimum_margin"),
    ({"invoice_grouping": "week"}, "invoice_grouping"),
    ({"invoice_period": "fortnight"}, "invoice_period"),
    ({"prices_include_tax": 1}, "prices_include_tax"),
    ({"early_discount_reduces_tax": "yes"}, "early_discount_reduces_tax"),
    ({"lot_expiry_warning_days": -1}, "lot_expiry_warning_days"),
    ({"lot_expiry_warning_days": "30"}, "lot_expiry_warning_days"),
    ({"lot_expiry_warning_days": 4000}, "lot_expiry_warning_days"),
])
def test_a_bad_value_is_422_naming_the_setting_and_nothing_changes(api, body, field):
    r = api.patch("/tenant/settings", json={"tax_rounding": "document", **body})
    assert r.status_code == 422, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in r.json()["errors"]] == [field]
    assert api.get("/tenant/settings").json() == DEFAULTS


def test_every_bad_value_is_named_and_a_margin_is_a_plain_decimal(api):
    # when two settings are bad at once
    r = api.patch("/tenant/settings", json={"allocation_policy": "closest", "tax_rounding": "up",
                                            "invoice_grouping": "customer"})
    # then both are named, and nothing changes
    assert r.status_code == 422, r.text
    assert sorted(e["field"] for e in r.json()["errors"]) == ["allocation_policy", "tax_rounding"]
    assert api.get("/tenant/settings").json() == DEFAULTS
    # a margin given in exponent form reads back as a decimal string
    ok = api.patch("/tenant/settings", json={"minimum_margin": "1e1"})
    assert ok.status_code == 200, ok.text
    assert ok.json()["minimum_margin"] == "10"
    assert api.get("/tenant/settings").json()["minimum_margin"] == "10"


def test_an_unknown_setting_is_422(api):
    r = api.patch("/tenant/settings", json={"allocation_policey": "split"})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in r.json()["errors"]] == ["allocation_policey"]
    assert api.get("/tenant/settings").json() == DEFAULTS


def test_an_unknown_setting_and_a_bad_value_are_named_together(api):
    # when a PATCH misspells one setting and gives another a bad value
    r = api.patch("/tenant/settings", json={"allocation_policey": "split", "tax_rounding": "up"})
    # then one 422 names both (the unknown one with the names that exist), and nothing changes
    assert r.status_code == 422, r.text
    errors = {e["field"]: e for e in r.json()["errors"]}
    assert sorted(errors) == ["allocation_policey", "tax_rounding"]
    assert "allocation_policy" in errors["allocation_policey"]["message"]
    assert api.get("/tenant/settings").json() == DEFAULTS


def test_only_a_role_that_manages_the_tenant_changes_its_settings(api):
    viewer = Api(api.client, api.tenant, key_for(api.tenant, role="viewer"))
    assert viewer.get("/tenant/settings").status_code == 200
    r = viewer.patch("/tenant/settings", json={"allow_negative_stock": True})
    assert r.status_code == 403 and "identity.tenant.manage" in r.text
    assert api.get("/tenant/settings").json()["allow_negative_stock"] is False


def test_one_tenants_settings_do_not_touch_another(api, other_api):
    api.patch("/tenant/settings", json={"allow_negative_stock": True})
    assert other_api.get("/tenant/settings").json() == DEFAULTS


def test_the_valuation_method_is_chosen_before_stock_first_moves(api, other_api):
    # a tenant without stock moves may choose FIFO
    r = api.patch("/tenant/settings", json={"valuation_method": "fifo"})
    assert r.status_code == 200 and r.json()["valuation_method"] == "fifo"
    # one with a stock move may not change its method: 409, nothing changed
    adjust(other_api, create_warehouse(other_api)["id"], create_product(other_api)["id"], 1)
    refused = other_api.patch("/tenant/settings", json={"valuation_method": "fifo", "tax_rounding": "document"})
    assert refused.status_code == 409 and "valuation_method" in refused.json()["detail"]
    assert other_api.get("/tenant/settings").json() == DEFAULTS


def test_negative_stock_allowed_by_the_setting(api):
    product = create_product(api)["id"]
    wh = create_warehouse(api)["id"]
    adjust(api, wh, product, 3)
    body = {"warehouse_id": wh, "product_id": product, "quantity": "-5", "reason": "damage"}
    assert api.post("/stock/adjustments", json=body).status_code == 409
    # when
    api.patch("/tenant/settings", json={"allow_negative_stock": True})
    # then
    assert api.post("/stock/adjustments", json=body).status_code == 201
    assert api.get(f"/stock?product_id={product}").json()["items"][0]["on_hand"] == "-2"


def test_split_allocation_policy_set_over_the_api_reserves_across_warehouses(api):
    # given 3 units in each of two warehouses, and an order for 5
    desk = order_desk(api, stock=3)
    adjust(api, create_warehouse(api, code="SECOND")["id"], desk.product_id, 3)
    by_priority = create_order(api, desk, quantity=5)
    act(api, f"/sales-orders/{by_priority['id']}/confirm")
    reserved_by_priority = _reserved(api, desk.product_id)
    act(api, f"/sales-orders/{by_priority['id']}/cancel")
    # when the tenant splits lines across warehouses
    api.patch("/tenant/settings", json={"allocation_policy": "split"})
    split = create_order(api, desk, quantity=5)
    act(api, f"/sales-orders/{split['id']}/confirm")
    # then one warehouse's 3 before, all 5 from both now
    assert reserved_by_priority == Decimal(3)
    assert _reserved(api, desk.product_id) == Decimal(5)


def test_a_setting_back_at_its_default_is_a_reset_and_records_nothing(api):
    r = api.patch("/tenant/settings", json={"allocation_policy": "priority", "allow_negative_stock": False})
    assert r.status_code == 200 and r.json() == DEFAULTS
    assert [e for e in api.get("/events").json()["items"] if e["type"] == "tenant.settings_changed.v1"] == []
    with api.tenant.uow(readonly=True) as uow:
        assert uow.session.get(Tenant, api.tenant.id).settings == {}


def test_a_tenant_cannot_raise_its_own_rate_limit(api):
    r = api.patch("/tenant/settings", json={"rate_limit_per_minute": 1_000_000, "tax_rounding": "document"})
    assert r.status_code == 403, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert "rate_limit_per_minute" in r.json()["detail"]
    assert api.get("/tenant/settings").json() == DEFAULTS


def test_sending_back_the_settings_as_read_is_not_a_change_of_the_rate_limit(api):
    # given a rate limit the operator set
    with api.tenant.uow() as uow:
        update_tenant_settings(uow, {"rate_limit_per_minute": 5_000}, by_operator=True)
        uow.commit()
    # when a client reads the settings and sends the whole body back with one change
    body = api.get("/tenant/settings").json()
    r = api.patch("/tenant/settings", json={**body, "tax_rounding": "document"})
    # then that one change is made, the operator's limit untouched
    assert r.status_code == 200, r.text
    assert r.json() == {**DEFAULTS, "tax_rounding": "document", "rate_limit_per_minute": 5_000}
    # and changing the limit itself is still refused
    r = api.patch("/tenant/settings", json={**body, "rate_limit_per_minute": 5_001})
    assert r.status_code == 403, r.text
    assert api.get("/tenant/settings").json()["rate_limit_per_minute"] == 5_000


@pytest.mark.parametrize("value", [0, 1.5, True, 2_000_000])
def test_the_operator_sets_a_rate_limit_only_within_bounds(api, value):
    with api.tenant.uow() as uow, pytest.raises(ValidationFailed) as refused:
        update_tenant_settings(uow, {"rate_limit_per_minute": value}, by_operator=True)
    assert [e.field for e in refused.value.errors] == ["rate_limit_per_minute"]


def test_a_lower_rate_limit_set_by_the_operator_applies_to_the_api(api):
    assert api.get("/tenant").status_code == 200
    with api.tenant.uow() as uow:
        update_tenant_settings(uow, {"rate_limit_per_minute": 2}, by_operator=True)
        uow.commit()
    forget_rate_limit(api.tenant.id)  # what a serving process does by itself within 30 s
    codes = [api.get("/tenant").status_code for _ in range(4)]
    assert 429 in codes
    assert codes[0] == 200


def _reserved(api: Api, product_id: str) -> Decimal:
    return sum((Decimal(row["reserved"]) for row in api.get(f"/stock?product_id={product_id}").json()["items"]),
               Decimal(0))
