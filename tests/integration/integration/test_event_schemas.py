"""Every event recorded by the test suite matches the JSON Schema of its type.

The check runs twice: here, over what the databases hold so far, and at the
end of the session (the autouse fixture in conftest.py), over every row the
whole suite wrote — so a payload changed without a new version fails.
"""

from __future__ import annotations

import contextlib

import jsonschema
import pytest

from entrepot.integration.catalog import known_event_types
from entrepot.kernel.events import schema_for
from tests.conftest import make_tenant
from tests.integration.integration.schema_check import invalid_events


def test_every_registered_type_has_a_valid_json_schema():
    for name in known_event_types():
        jsonschema.Draft202012Validator.check_schema(schema_for(name))


def test_every_recorded_event_so_far_matches_its_schema(sqlite_url, request):
    urls = [sqlite_url]
    with contextlib.suppress(pytest.skip.Exception):
        urls.append(request.getfixturevalue("postgres_url"))
    problems = invalid_events(urls)
    assert not problems, "\n".join(problems[:20])


def test_the_check_catches_a_payload_that_drifted(sqlite_only):
    tenant = make_tenant(sqlite_only)
    # given an event whose stored data no longer matches its schema
    from sqlalchemy import update

    from entrepot.db.uow import platform_uow
    from entrepot.identity.services.api_keys import create_api_key
    from entrepot.integration.models import OutboxEvent

    with tenant.uow() as uow:
        key = create_api_key(uow).api_key
        uow.commit()
    with platform_uow(url=sqlite_only) as uow:
        uow.session.execute(update(OutboxEvent).where(OutboxEvent.subject == f"api_key/{key.id}")
                            .values(data={"api_key_id": str(key.id), "prefix": 7, "role": "admin"}))
        uow.commit()
    try:
        # when the check runs, then it names the field
        problems = invalid_events([sqlite_only])
        assert any("prefix" in p for p in problems)
    finally:
        with platform_uow(url=sqlite_only) as uow:
            uow.session.execute(update(OutboxEvent).where(OutboxEvent.subject == f"api_key/{key.id}")
                                .values(data={"api_key_id": str(key.id), "prefix": key.prefix, "role": "admin"}))
            uow.commit()


def test_a_published_schema_changes_only_with_a_new_version():
    from tests.integration.integration.schema_lock import current, locked

    published = locked()
    now = current()
    changed = sorted(name for name in published if name in now and now[name] != published[name])
    removed = sorted(name for name in published if name not in now)
    assert not changed, (
        f"event payloads changed without a new version: {changed}. Publish the change as a new type "
        "(…v2); before the first release, if intended, run "
        "`.venv/bin/python -m tests.integration.integration.schema_lock --write`.")
    assert not removed, f"published event types disappeared: {removed}"
