"""ETag / If-Match: optimistic concurrency for updates."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response

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
    candidates = [h.strip() for h in header.split(",")]
    current = etag_of(obj)
    bare = current.removeprefix("W/")
    if "*" in candidates or current in candidates or bare in candidates:
        return
    raise PreconditionFailed(f"the record changed (current ETag {current})", etag=current)
