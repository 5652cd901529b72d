"""Every paged list, walked as an integrator syncing data out of Entrepot walks it.

Walks the route table, so lists added later are covered without editing this file:

* a cursor walk, one or two rows a page, returns every row of the list exactly once, in the
  order of the one-page read, and ends with `next_cursor: null`;
* the envelope is `{"items": [...], "next_cursor": ...}` on every page;
* `limit` outside 1–200 is a 422 naming `limit`;
* a cursor this API did not issue for the list is a 422 naming `cursor`, never a 500 and never
  a page read from somewhere else (a walk that silently restarts or ends loses rows).
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any

import pytest

from entrepot.api.app import create_app
from entrepot.api.deps import route_table
from tests.factories import FACTORIES, load_all

load_all()
PARAM = re.compile(r"{([a-z_]+)(?::[a-z]+)?}")
PAGED = sorted(path for path, methods, route in route_table(create_app()) if "GET" in methods
               and {"cursor", "limit"} <= {p.alias for p in route.dependant.query_params})


def _cursor_of(value: Any) -> str:
    """A cursor as the API encodes one (base64 of JSON), holding any value."""
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


@pytest.fixture
def records(api) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    # given three records of every kind a factory makes (most lists hold several rows)
    return {name: [make(api) for _ in range(3)] for name, make in FACTORIES.items()}


@pytest.fixture
def parents(api) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    # given the records the paged lists' paths (and /stock/moves) name
    names = {name for path in PAGED for name in PARAM.findall(path)} | {"product_id"}
    return {name: [FACTORIES[name](api)] for name in names}


def _url(path: str, records: dict[str, list[str]]) -> tuple[str, dict[str, str]]:
    url = PARAM.sub(lambda m: records[m.group(1)][0], path).removeprefix("/api/v1")
    required = {"product_id": records["product_id"][0]} if path == "/api/v1/stock/moves" else {}
    return url, required


def _walk(api, url: str, params: dict[str, str], limit: int) -> list[str]:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    cursor = None
    for _ in range(1000):
        r = api.get(url, params={**params, "limit": limit, **({"cursor": cursor} if cursor else {})})
        assert r.status_code == 200, f"GET {url}: {r.status_code} {r.text[:300]}"
        page = r.json()
        assert set(page) == {"items", "next_cursor"}, f"GET {url} answers {sorted(page)}"
        assert len(page["items"]) <= limit
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
        assert page["items"], f"GET {url}: an empty page with a next_cursor"
    raise AssertionError(f"GET {url}: the walk does not end")


def test_a_cursor_walk_returns_every_row_once_on_every_paged_list(api, records):
    assert len(PAGED) >= 30, PAGED
    walked = []
    for path in PAGED:
        url, params = _url(path, records)
        everything = _walk(api, url, params, 200)
        # when the list is walked a row or two at a time
        for limit in (1, 2):
            rows = _walk(api, url, params, limit)
            # then each row comes once, in the order of the one-page read
            assert rows == everything, f"GET {url} walked {limit} a page"
        if len(everything) >= 2:
            walked.append(path)
    # and the sweep walked lists that had something to page
    assert len(walked) >= 20, sorted(set(PAGED) - set(walked))



def test_rows_created_or_changed_during_a_walk_neither_repeat_nor_go_missing(api):
    # given five products, walked two a page
    from tests.factories.catalog import create_product

    before = [create_product(api, name=f"Walked {i}")["id"] for i in range(5)]
    first = api.get("/products", params={"limit": 2}).json()
    assert [p["id"] for p in first["items"]] == before[:2]
    # when, mid-walk, one already read and one not yet read change, and a new one is created
    for changed in (before[0], before[3]):
        assert api.patch(f"/products/{changed}", json={"name": "Renamed"}).status_code == 200
    created = create_product(api)["id"]
    rest = _walk_from(api, "/products", first["next_cursor"])
    # then the walk reads every product once, in creation order, the new one last
    assert [p["id"] for p in first["items"]] + rest == [*before, created]


def _walk_from(api, url: str, cursor: str) -> list[str]:  # type: ignore[no-untyped-def]
    seen: list[str] = []
    while cursor:
        page = api.get(url, params={"limit": 2, "cursor": cursor}).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
    return seen

def test_a_limit_outside_1_to_200_is_a_422_naming_limit_on_every_paged_list(api, parents):
    for path in PAGED:
        url, params = _url(path, parents)
        for limit in ("0", "-1", "201"):
            r = api.get(url, params={**params, "limit": limit})
            assert r.status_code == 422, f"GET {url}?limit={limit}: {r.status_code} {r.text[:200]}"
            assert [e["field"] for e in r.json()["errors"]] == ["limit"], r.text


TAMPERED = {
    "not base64": "garbage!",
    "not JSON": base64.urlsafe_b64encode(b"{nope").decode(),
    "a list": _cursor_of([1, 2]),
    "an object": _cursor_of({"id": "1000"}),
    "true": _cursor_of(True),
    "null": _cursor_of(None),
    "a fraction": _cursor_of(1.5),
    "past bigint": _cursor_of(10**30),
    "a lone surrogate": base64.urlsafe_b64encode(b'"\\ud800"').decode().rstrip("="),
    "a NUL": _cursor_of("1000\x00"),
}


def test_a_tampered_cursor_is_a_422_naming_cursor_on_every_paged_list(api, parents):
    for path in PAGED:
        url, params = _url(path, parents)
        for what, cursor in TAMPERED.items():
            r = api.get(url, params={**params, "cursor": cursor})
            assert r.status_code == 422, f"GET {url} with {what} as cursor: {r.status_code} {r.text[:200]}"
            assert [e["field"] for e in r.json()["errors"]] == ["cursor"], f"{what}: {r.text}"


def test_a_cursor_of_another_list_is_a_422_not_a_page(api):
    # given a cursor of a list keyed by sequence number (the audit trail) and one keyed by id
    FACTORIES["product_id"](api), FACTORIES["product_id"](api)
    by_seq = api.get("/audit-entries", params={"limit": 1}).json()["next_cursor"]
    by_id = api.get("/products", params={"limit": 1}).json()["next_cursor"]
    assert by_seq and by_id
    # when each is sent to a list of the other kind / then it is refused, naming the cursor
    for url, cursor in (("/products", by_seq), ("/sales-orders", by_seq), ("/ledger/accounts", by_seq),
                        ("/audit-entries", by_id), ("/audit-entries", _cursor_of(str(uuid.uuid4())))):
        r = api.get(url, params={"cursor": cursor})
        assert r.status_code == 422, f"GET {url} with a foreign cursor: {r.status_code} {r.text[:200]}"
        assert [e["field"] for e in r.json()["errors"]] == ["cursor"], r.text


FIXED_FILTERS = [("/ledger/accounts", "type", "revenue", "income"), ("/ledger/accounts", "role", "receivables", "cash"),
                 ("/ledger/journal-entries", "journal", "sale", "inventory"),
                 ("/price-lists", "kind", "promo", "standard")]


@pytest.mark.parametrize("url,name,typo,value", FIXED_FILTERS, ids=[f"{u}?{n}" for u, n, _, _ in FIXED_FILTERS])
def test_a_filter_on_a_fixed_set_of_values_refuses_another_naming_it(api, url, name, typo, value):
    # given rows with the value (the chart, a stock adjustment's entry, a price list)
    FACTORIES["price_list_id"](api)
    FACTORIES["lot_id"](api)
    # when the list is filtered by a value the field cannot hold (`revenue` is a role, the type is `income`)
    r = api.get(url, params={name: typo})
    # then it is a 422 naming the filter and the values it takes, not an empty list that looks like "none"
    assert r.status_code == 422, f"GET {url}?{name}={typo}: {r.status_code} {r.text[:200]}"
    assert [e["field"] for e in r.json()["errors"]] == [name], r.text
    assert value in r.json()["errors"][0]["message"], r.text
    # and a value it can hold still filters
    rows = api.get(url, params={name: value}).json()["items"]
    assert rows, f"GET {url}?{name}={value} is empty"
    assert {row[name] for row in rows} == {value}, rows
