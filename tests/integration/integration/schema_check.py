"""Validate stored outbox rows against the JSON Schema of their event type."""

from __future__ import annotations

import jsonschema
from sqlalchemy import select

from entrepot.db.uow import platform_uow
from entrepot.integration.catalog import known_event_types
from entrepot.integration.models import OutboxEvent
from entrepot.kernel.events import schema_for


def invalid_events(urls: list[str]) -> list[str]:
    known = set(known_event_types())
    validators: dict[str, jsonschema.protocols.Validator] = {}
    problems: list[str] = []
    for url in urls:
        try:
            with platform_uow(readonly=True, url=url) as uow:
                rows = uow.session.execute(select(OutboxEvent.seq, OutboxEvent.type, OutboxEvent.data)).all()
        except Exception as exc:  # the database is gone or unreachable: say so, don't pass silently
            problems.append(f"{url}: could not read the outbox ({type(exc).__name__}: {exc})")
            continue
        for seq, kind, data in rows:
            if kind not in known:
                problems.append(f"{url} seq {seq}: {kind} is not a registered event type")
                continue
            if kind not in validators:
                schema = schema_for(kind)
                validators[kind] = jsonschema.Draft202012Validator(schema)
            errors = sorted(validators[kind].iter_errors(data), key=lambda e: list(e.path))
            for error in errors[:3]:
                problems.append(f"{url} seq {seq} {kind}: {'/'.join(map(str, error.path)) or '(root)'}: "
                                f"{error.message}")
    return problems
