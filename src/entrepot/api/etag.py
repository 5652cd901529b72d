"""ETag / If-Match: optimistic concurrency for updates."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from sqlalchemy import inspect, select
from sqlalchemy.orm import object_session

from entrepot.kernel.errors import PreconditionFailed


def etag_of(obj: Any) -> str:
    return f'W/"{obj.id}-{obj.version}"'


def set_etag(response: Response, obj: Any) -> None:
    response.headers["ETag"] = etag_of(obj)


def check_if_match(request: Request, obj: Any) -> None:
    """412 when If-Match is given and the record has changed since."""
    header = request.headers.get("if-match")
    if header is None:
        return
    version = obj.version
    session = object_session(obj)
    if session is not None and inspect(obj).persistent:
        # the row locked and its version read again before the comparison: of two changes sent at once
        # with one ETag, the second waits for the first and then sees a new version (412), not a stale write
        model = type(obj)
        version = session.scalar(select(model.version).where(model.id == obj.id).with_for_update(key_share=True))
    candidates = [h.strip() for h in header.split(",")]
    current = f'W/"{obj.id}-{version}"'
    bare = current.removeprefix("W/")
    if "*" in candidates or current in candidates or bare in candidates:
        return
    raise PreconditionFailed(f"the record changed (current ETag {current})", etag=current)
