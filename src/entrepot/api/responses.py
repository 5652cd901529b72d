"""JSON responses built in the route's worker thread.

A sync route that returns a pydantic model makes FastAPI validate it against the
declared `response_model` in a second worker-thread hop before serialising it. The
write routes build their read model from the ORM objects themselves, so they return
it already serialised: one hop per request, the same JSON bytes (pydantic's dump,
by alias), and `response_model` still documents the body in the OpenAPI schema.
"""

from __future__ import annotations

from fastapi import Response
from pydantic import BaseModel


def model_json(model: BaseModel, status_code: int = 200) -> Response:
    """The model as `application/json`, as FastAPI's own serialisation would write it."""
    return Response(model.model_dump_json(by_alias=True), status_code=status_code, media_type="application/json")
