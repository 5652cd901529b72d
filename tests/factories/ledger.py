"""Ledger records created through the API, for the route-table tests and API tests."""

from __future__ import annotations

import uuid
from typing import Any

from tests.factories import example_body, factory


def opening_entry_body(amount: str = "1000.00", day: str = "2026-01-05") -> dict[str, Any]:
    """Owner puts cash in: Dr cash / Cr owner's capital (no control account)."""
    return {"date": day, "description": "Owner's capital paid in",
            "lines": [{"account_code": "1000", "debit": amount}, {"account_code": "3000", "credit": amount}]}


@factory("entry_id")
def make_entry(api) -> str:  # type: ignore[no-untyped-def]
    r = api.post("/ledger/journal-entries", json=opening_entry_body())
    assert r.status_code == 201, r.text
    return r.json()["id"]


@factory("account_id")
def make_account(api) -> str:  # type: ignore[no-untyped-def]
    r = api.post("/ledger/accounts", json={"code": f"6{uuid.uuid4().int % 10**6:06d}"[:7],
                                           "name": "Marketing", "type": "expense"})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@factory("period_id")
def make_period(api) -> str:  # type: ignore[no-untyped-def]
    r = api.post("/ledger/periods", json={"year": 2026, "month": 1})
    assert r.status_code == 201, r.text
    return r.json()["id"]


@example_body("POST", "/api/v1/ledger/accounts")
def account_body(api) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {"code": "6500", "name": "Marketing", "type": "expense"}


@example_body("PATCH", "/api/v1/ledger/accounts/{account_id}")
def account_update_body(api) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {"name": "Advertising"}


@example_body("POST", "/api/v1/ledger/journal-entries")
def entry_body(api) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return opening_entry_body()


@example_body("POST", "/api/v1/ledger/periods")
def period_body(api) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {"year": 2026, "month": 2}


@example_body("POST", "/api/v1/ledger/exchange-rates")
def rate_body(api) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {"currency": "EUR", "date": "2026-01-01", "rate": "1.10"}


@example_body("POST", "/api/v1/ledger/revaluations")
def revaluation_body(api) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {"date": "2026-01-31"}
