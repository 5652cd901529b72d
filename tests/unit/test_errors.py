"""How a refusal naming fields picks its status: a body's unknown ids alone are a 404."""

from __future__ import annotations

import pytest

from entrepot.kernel.errors import FieldError, NotFound, UnknownRecord, ValidationFailed, reference, unknown_in_lines


def test_only_unknown_records_make_a_404_naming_the_fields():
    alone = ValidationFailed([UnknownRecord("customer_id", "no such customer"),
                              UnknownRecord("lines[1].product_id", "no such product")])
    assert (alone.status, alone.code) == (404, "not_found")
    assert [e["field"] for e in alone.problem_extra()["errors"]] == ["customer_id", "lines[1].product_id"]
    # with another fault beside it, the request is invalid first: a 422 listing both
    mixed = ValidationFailed([UnknownRecord("customer_id", "no such customer"),
                              FieldError("lines[0].quantity", "must be greater than zero", "positive")])
    assert (mixed.status, mixed.code) == (422, "validation_failed")
    assert len(mixed.problem_extra()["errors"]) == 2


def test_a_lookup_named_by_a_field_is_a_404_naming_it():
    with pytest.raises(ValidationFailed) as refused, reference("sales_order_id"):
        raise NotFound("sales order", "01a2")
    assert refused.value.status == 404 and refused.value.errors[0].field == "sales_order_id"


def test_a_missing_product_names_every_line_holding_it():
    missing = NotFound("product", "p2")
    refused = unknown_in_lines(missing, ["p1", "p2", "p3", "p2"], "lines[{}].product_id")
    assert [e.field for e in refused.errors] == ["lines[1].product_id", "lines[3].product_id"]
    assert refused.status == 404
