"""Billing records (invoices, credit notes, payments, tax rates) created through the API of a given tenant."""

from __future__ import annotations

import uuid
from typing import Any

from tests.factories import example_body, factory
from tests.factories.sales import act, invoiced_order


@factory("invoice_id")
def make_invoice(api: Any) -> str:
    return invoiced_order(api)[2]["id"]


@factory("credit_note_id")
def make_credit_note(api: Any) -> str:
    invoice = make_invoice(api)
    return act(api, f"/invoices/{invoice}/credit-notes", 201, {})["id"]


@factory("payment_id")
def make_payment(api: Any) -> str:
    desk, _, invoice = invoiced_order(api)
    body = {"customer_id": desk.customer_id, "amount": "100.00", "currency": "USD",
            "allocations": [{"invoice_id": invoice["id"], "amount": invoice["total"]}]}
    return act(api, "/payments", 201, body)["id"]


@example_body("POST", "/api/v1/payments")
def _payment_body(api: Any) -> dict[str, Any]:
    desk, _, invoice = invoiced_order(api)
    return {"customer_id": desk.customer_id, "amount": invoice["total"], "currency": "USD",
            "allocations": [{"invoice_id": invoice["id"], "amount": invoice["total"]}]}


@example_body("POST", "/api/v1/payments/{payment_id}/apply")
def _apply_body(api: Any) -> dict[str, Any]:
    return {"allocations": [{"invoice_id": str(uuid.uuid4()), "amount": "1.00"}]}


@example_body("POST", "/api/v1/payments/{payment_id}/refund")
def _refund_body(api: Any) -> dict[str, Any]:
    return {"amount": "1.00"}


@example_body("POST", "/api/v1/tax-rates")
def _tax_rate_body(api: Any) -> dict[str, Any]:
    return {"name": "Texas", "country": "US", "region": "TX", "rate_percent": "6.25"}


@example_body("POST", "/api/v1/credit-notes/{credit_note_id}/apply")
def _note_apply_body(api: Any) -> dict[str, Any]:
    return {"allocations": [{"invoice_id": str(uuid.uuid4()), "amount": "1.00"}]}


@example_body("POST", "/api/v1/credit-notes/{credit_note_id}/refund")
def _note_refund_body(api: Any) -> dict[str, Any]:
    return {"amount": "1.00"}
