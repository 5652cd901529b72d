"""GET /events, /event-types: the tenant's canonical events and their schemas."""

from __future__ import annotations

import time

import jsonschema

from tests.factories.integration import endpoint_body


def settled_events(api, params: dict | None = None, want: int = 1) -> list[dict]:
    """The feed, waited for: on PostgreSQL the feed holds back events while any older
    transaction of the cluster (other test processes included) is still in flight."""
    deadline = time.monotonic() + 10
    while True:
        items = api.get("/events", params=params or {}).json()["items"]
        if len(items) >= want or time.monotonic() > deadline:
            return items
        time.sleep(0.05)


def _make_events(api, n: int) -> list[str]:
    ids = []
    for i in range(n):
        r = api.post("/webhook-endpoints", json=endpoint_body(description=f"e{i}", enabled=False))
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    return ids


def test_events_are_cloudevents_oldest_first_with_a_stable_cursor(api):
    # given five changes that each emitted an event
    _make_events(api, 5)
    settled_events(api, {"type": "webhook_endpoint.created.v1"}, want=5)
    # when the feed is read two at a time
    seen, cursor = [], None
    for _ in range(10):
        r = api.get("/events", params={"limit": 2, **({"after": cursor} if cursor else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        seen += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    # then every event came once, in order, as a CloudEvent of this tenant
    created = [e for e in seen if e["type"] == "webhook_endpoint.created.v1"]
    assert len(created) == 5
    assert len({e["id"] for e in seen}) == len(seen)
    assert [int(e["sequence"]) for e in seen] == sorted(int(e["sequence"]) for e in seen)
    first = created[0]
    assert first["specversion"] == "1.0"
    assert first["tenantid"] == str(api.tenant.id)
    assert first["dataschema"] == "/api/v1/event-types/webhook_endpoint.created.v1"
    assert {"id", "source", "type", "time", "subject", "datacontenttype", "data"} <= set(first)


def test_after_an_event_id_or_sequence_resumes_after_it(api):
    # given three events
    _make_events(api, 3)
    events = settled_events(api, {"type": "webhook_endpoint.created.v1"}, want=3)
    # when reading after the first one, by id and by sequence
    by_id = api.get("/events", params={"after": events[0]["id"], "type": "webhook_endpoint.created.v1"}).json()
    by_seq = api.get("/events", params={"after": events[0]["sequence"],
                                        "type": "webhook_endpoint.created.v1"}).json()
    # then both give the remaining two
    assert [e["id"] for e in by_id["items"]] == [e["id"] for e in events[1:]]
    assert [e["id"] for e in by_seq["items"]] == [e["id"] for e in events[1:]]


def test_a_caught_up_reader_resumes_from_the_cursor_of_a_short_page(api):
    # given a feed read to its end: the last page is not full
    _make_events(api, 2)
    settled_events(api, {"type": "webhook_endpoint.created.v1"}, want=2)
    first = api.get("/events", params={"limit": 200}).json()
    assert 0 < len(first["items"]) < 200
    cursor = first["next_cursor"]
    # then it still carries the cursor after its last event
    assert cursor
    # and, while nothing new happened, reading after it is an empty page with no cursor
    caught_up = api.get("/events", params={"after": cursor}).json()
    assert caught_up == {"items": [], "next_cursor": None}
    # when more events happen
    new_ids = set(_make_events(api, 2))
    # then reading after the saved cursor gives exactly the new ones
    deadline = time.monotonic() + 10
    while True:
        later = api.get("/events", params={"after": cursor}).json()["items"]
        if len(later) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert {e["data"]["endpoint_id"] for e in later} == new_ids
    assert not {e["id"] for e in later} & {e["id"] for e in first["items"]}


def test_after_zero_reads_from_the_beginning(api):
    _make_events(api, 1)
    settled_events(api, {"type": "webhook_endpoint.created.v1"})
    from_zero = api.get("/events", params={"after": "0"})
    assert from_zero.status_code == 200
    assert from_zero.json()["items"] == api.get("/events").json()["items"]


def test_filters_by_type_and_subject(api):
    # given an endpoint that was created then updated
    endpoint_id = _make_events(api, 2)[0]
    assert api.patch(f"/webhook-endpoints/{endpoint_id}", json={"description": "x"}).status_code == 200
    # when filtering by its subject
    items = settled_events(api, {"subject": f"webhook_endpoint/{endpoint_id}"}, want=2)
    # then only its two events come back, in order
    assert [e["type"] for e in items] == ["webhook_endpoint.created.v1", "webhook_endpoint.updated.v1"]
    updated = api.get("/events", params={"type": "webhook_endpoint.updated.v1"}).json()["items"]
    assert [e["subject"] for e in updated] == [f"webhook_endpoint/{endpoint_id}"]


def test_another_tenants_events_are_invisible(api, other_api):
    # given events in the other tenant
    _make_events(other_api, 2)
    # when this tenant reads its feed
    items = api.get("/events").json()["items"]
    # then none of them is there
    assert all(e["tenantid"] == str(api.tenant.id) for e in items)


def test_a_bad_cursor_is_a_422_not_a_500(api):
    r = api.get("/events", params={"after": "not-a-cursor"})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["errors"][0]["field"] == "after"


def test_event_types_serve_a_json_schema_that_validates_real_events(api):
    # given an event in the feed
    _make_events(api, 1)
    event = settled_events(api, {"type": "webhook_endpoint.created.v1"})[0]
    # when its type is looked up
    listed = api.get("/event-types").json()["items"]
    one = api.get("/event-types/webhook_endpoint.created.v1")
    # then the schema is served and validates the event's data
    assert "webhook.message.exhausted.v1" in {t["type"] for t in listed}
    assert one.status_code == 200
    jsonschema.validate(event["data"], one.json()["schema"])
    assert api.get("/event-types/no_such.thing.v1").status_code == 404


def test_a_cursor_naming_no_event_of_this_tenant_is_a_422_not_a_restart(api, other_api):
    # given an event of this tenant and one of another tenant
    _make_events(api, 1)
    _make_events(other_api, 1)
    mine = settled_events(api, {"type": "webhook_endpoint.created.v1"})[0]
    theirs = settled_events(other_api, {"type": "webhook_endpoint.created.v1"})[0]
    issued = api.get("/events", params={"limit": 1}).json()
    # when reading after cursors that name no event of this tenant, or are not cursors at all
    garbage = [theirs["sequence"], theirs["id"], "999999999999", "99999999999999999999999", "-1", "1.2.3",
               "abc.1", "0x10", "\u0661\u0662", f"{int(mine['sequence']) + 10**9}"]
    if issued["next_cursor"] and "." in issued["next_cursor"]:
        txid, seq = issued["next_cursor"].split(".")
        garbage.append(f"{int(txid) + 1}.{seq}")  # a real sequence with another transaction id
    for cursor in garbage:
        r = api.get("/events", params={"after": cursor})
        # then each is a 422 problem naming the cursor, not the feed from its beginning
        assert r.status_code == 422, (cursor, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"][0]["field"] == "after"
    # while this tenant's own positions still work
    assert api.get("/events", params={"after": mine["sequence"]}).status_code == 200
    assert api.get("/events", params={"after": mine["id"]}).status_code == 200


def test_a_subject_walked_a_page_at_a_time_gives_its_events_once_in_the_timelines_order(api):
    from tests.factories.sales import act, invoiced_order

    # given an order taken through shipping and invoicing, with events of other subjects between its own
    _, order, invoice = invoiced_order(api)
    act(api, f"/invoices/{invoice['id']}/credit-notes", 201, {})
    timeline = api.get(f"/sales-orders/{order['id']}/timeline").json()
    assert timeline["next_cursor"] is None
    subjects = {e["subject"] for e in timeline["items"]}
    assert {f"sales_order/{order['id']}", f"invoice/{invoice['id']}"} <= subjects
    for subject in sorted(subjects):
        told = [e["id"] for e in timeline["items"] if e["subject"] == subject]
        settled_events(api, {"subject": subject, "limit": 200}, want=len(told))
        # when the feed of one subject is walked an event a page
        seen, cursor = [], "0"
        for _ in range(100):
            page = api.get("/events", params={"subject": subject, "limit": 1, "after": cursor}).json()
            if not page["items"]:
                assert page["next_cursor"] is None
                break
            seen += [e["id"] for e in page["items"]]
            cursor = page["next_cursor"]
        # then each event comes once, the order's in the order its timeline tells them (a product's
        # stock subject has the events of its other stock moves too)
        assert len(set(seen)) == len(seen), subject
        assert [e for e in seen if e in told] == told, subject
