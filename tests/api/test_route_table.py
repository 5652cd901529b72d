"""Walks the route table, so routes added later are covered without editing this file.

* Every route states the permission it needs (or is on the short public list).
* Every route with a record id in its path answers 404 for another tenant's
  record — read, update, delete and action alike — and lists never show it.
"""

from __future__ import annotations

import re
import typing
import uuid

import pytest

from entrepot.api.app import create_app
from entrepot.api.deps import permission_of, route_table
from tests.factories import EXAMPLE_BODIES, FACTORIES, NOT_TENANT_RECORDS, load_all

load_all()
# No tenant permission: public, or (/metrics) authenticated by the operator token.
PUBLIC = {"/", "/api/v1/health", "/health", "/api/v1/docs", "/api/v1/openapi.json", "/metrics"}
PARAM = re.compile(r"{([a-z_]+)(?::[a-z]+)?}")


ROUTES = route_table(create_app())
ID_ROUTES = [
    (method, path) for path, methods, _ in ROUTES for method in sorted(methods)
    if any(p not in NOT_TENANT_RECORDS for p in PARAM.findall(path))
]


@pytest.mark.parametrize("path,methods,route", ROUTES, ids=[f"{','.join(sorted(m))} {p}" for p, m, _ in ROUTES])
def test_every_route_declares_a_permission(path, methods, route):
    if path in PUBLIC:
        return
    assert permission_of(route), f"{path} declares no permission (use Requires(...))"


def test_every_list_read_answers_items_and_a_cursor():
    # The contract: lists return {"items": [...], "next_cursor": ...}, however short they are.
    bare = sorted(path for path, methods, route in ROUTES
                  if "GET" in methods and typing.get_origin(route.response_model) is list)
    assert bare == []


@pytest.mark.parametrize("method,path", ID_ROUTES, ids=[f"{m} {p}" for m, p in ID_ROUTES])
def test_another_tenants_record_is_404(method, path, api, other_api):
    # given records that exist in the other tenant
    values = {}
    for param in PARAM.findall(path):
        if param in NOT_TENANT_RECORDS:
            continue
        make = FACTORIES.get(param)
        assert make, f"no test factory for {{{param}}}: add one under tests/factories/"
        values[param] = make(other_api)
    url = PARAM.sub(lambda m: values.get(m.group(1), m.group(0)), path).removeprefix("/api/v1")
    body_of = EXAMPLE_BODIES.get((method, path))
    body = body_of(api) if body_of else {}
    # when this tenant addresses them
    response = api.client.request(method, "/api/v1" + url, headers=api.headers,
                                  json=body if method in ("POST", "PUT", "PATCH") else None)
    # then they do not exist for it
    assert response.status_code == 404, f"{method} {url}: {response.status_code} {response.text[:300]}"


def test_unknown_ids_are_404_not_500(api):
    for method, path in ID_ROUTES:
        url = PARAM.sub(lambda m: str(uuid.uuid4()), path).removeprefix("/api/v1")
        body_of = EXAMPLE_BODIES.get((method, path))
        response = api.client.request(method, "/api/v1" + url, headers=api.headers,
                                      json=(body_of(api) if body_of else {}) if method != "GET" else None)
        assert response.status_code in (404, 422), f"{method} {url}: {response.status_code}"


LIST_ROUTES = [path for path, methods, _ in ROUTES
               if "GET" in methods and not PARAM.findall(path) and path not in PUBLIC]


def test_lists_never_show_another_tenants_records(api, other_api):
    # given one record of every kind in the other tenant
    foreign_ids = {make(other_api) for make in FACTORIES.values()}
    # when this tenant reads every list
    for path in LIST_ROUTES:
        response = api.client.get(path, headers=api.headers)
        # then none of those ids appears
        assert response.status_code < 500, f"GET {path}: {response.status_code}"
        leaked = [i for i in foreign_ids if i in response.text]
        assert not leaked, f"GET {path} shows another tenant's records {leaked}"
        # and what a list answers is the envelope, whatever its route declares
        if response.headers.get("content-type", "").startswith("application/json"):
            assert not isinstance(response.json(), list), f"GET {path} answers a bare JSON array"


def test_an_action_whose_body_is_all_optional_takes_no_body():
    # A POST whose body could be `{}` (a credit note in full, a new key with the defaults) must also
    # work with no body at all, as ship, reverse and the other actions do.
    from pydantic import TypeAdapter, ValidationError

    demanding = []
    for path, methods, route in ROUTES:
        field = route.body_field
        if "POST" not in methods or field is None or not field.field_info.is_required():
            continue
        try:
            TypeAdapter(field.field_info.annotation).validate_python({})
        except ValidationError:
            continue  # the body has required fields: it must be sent
        demanding.append(path)
    assert demanding == []


def test_no_route_does_database_work_on_the_event_loop():
    # A route given a unit of work (Requires) is a plain `def`, so FastAPI runs it in a worker thread.
    # An `async def` one ran its queries on the event loop: waiting there for a lock (SQLite's write
    # lock) held up every request, the lock's holder included, until the busy timeout. Async routes
    # take the actor only (RequiresActor) and read through api.reads; a raw body comes as RawBody.
    import inspect

    from entrepot.api.deps import _Permission

    def takes_unit_of_work(route) -> bool:  # type: ignore[no-untyped-def]
        return any(type(dep.call) is _Permission for dep in route.dependant.dependencies)

    on_the_loop = sorted(path for path, _, route in ROUTES
                         if inspect.iscoroutinefunction(route.endpoint) and takes_unit_of_work(route))
    assert on_the_loop == []


STATUS_FILTERS = [(path, param.name) for path, methods, route in ROUTES if "GET" in methods
                  for param in route.dependant.query_params
                  if param.name == "status" or param.name.endswith("_status")]


def test_a_status_filter_with_an_unknown_value_is_a_422_naming_it(api):
    # A list filtered by a status no document can have answered 200 with an empty list, so a typo
    # (`?status=shiped`) looked like "none". The filters take the document's states, and say which.
    assert len(STATUS_FILTERS) >= 10, STATUS_FILTERS
    for path, name in STATUS_FILTERS:
        url = PARAM.sub(lambda m: str(uuid.uuid4()), path).removeprefix("/api/v1")
        r = api.get(url, params={name: "bogus"})
        if r.status_code == 404:  # a record's own list (its id is made up here): the filter is checked later
            continue
        assert r.status_code == 422, f"GET {path}?{name}=bogus: {r.status_code} {r.text[:200]}"
        assert [e["field"] for e in r.json()["errors"]] == [name], r.text
