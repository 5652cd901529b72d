"""Integration API: the event feed, event types, webhook endpoints and deliveries, health, inbound."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from entrepot.api.deps import RawBody, Requires
from entrepot.api.etag import check_if_match, set_etag
from entrepot.api.pagination import Page, check_limit, paginate
from entrepot.db.uow import UnitOfWork
from entrepot.integration import catalog, inbound, messages, webhooks
from entrepot.integration import permissions as perms
from entrepot.integration.feed import Position, events_after, parse_cursor
from entrepot.integration.models import WebhookAttempt, WebhookMessage
from entrepot.integration.outbox import envelope
from entrepot.integration.schemas import (
    EventTypeRead,
    InboundConnectorIssued,
    InboundReceipt,
    RecoverRequest,
    RecoverResult,
    WebhookAttemptRead,
    WebhookEndpointCreate,
    WebhookEndpointIssued,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
    WebhookMessageRead,
)
from entrepot.kernel.errors import NotFound, invalid
from entrepot.kernel.events import registered_types

router = APIRouter(tags=["integration"])
Limit = Annotated[int, Query(ge=1, le=200)]


# --- events ---------------------------------------------------------------------------------------


@router.get("/events", summary="This tenant's events (CloudEvents 1.0 JSON), oldest first")
def list_events(
    uow: Annotated[UnitOfWork, Requires(perms.EVENT_READ)],
    after: Annotated[str | None, Query(description="next_cursor of the previous page, an event's "
                                       "`sequence`, an event id, or 0 for the beginning")] = None,
    type: Annotated[list[str] | None, Query(description="Only these event types")] = None,
    subject: str | None = None,
    limit: Limit = 100,
) -> dict[str, Any]:
    check_limit(limit)
    position = parse_cursor(uow.session, after)
    rows = events_after(uow.session, position, limit=limit, types=type, subject=subject)
    # A feed has no last page: the cursor after the last event returned is where the next poll
    # resumes, even when this page was not full. Only an empty page has none (the reader is
    # caught up and keeps the cursor it sent), so `while next_cursor:` loops still end.
    return {"items": [envelope(r) for r in rows],
            "next_cursor": Position.of(rows[-1]).encode() if rows else None}


@router.get("/event-types", response_model=Page[EventTypeRead], response_model_by_alias=True,
            summary="Every event type with the JSON Schema of its data")
def list_event_types(uow: Annotated[UnitOfWork, Requires(perms.EVENT_TYPE_READ)]) -> dict[str, Any]:
    catalog.load_event_types()
    return {"items": [catalog.describe(name) for name in registered_types()], "next_cursor": None}


@router.get("/event-types/{event_type}", response_model=EventTypeRead, response_model_by_alias=True)
def read_event_type(event_type: str, uow: Annotated[UnitOfWork, Requires(perms.EVENT_TYPE_READ)]) -> dict[str, Any]:
    if event_type not in catalog.known_event_types():
        raise NotFound("event type", event_type)
    return catalog.describe(event_type)


# --- webhook endpoints ----------------------------------------------------------------------------


def _read(endpoint: Any) -> WebhookEndpointRead:
    return WebhookEndpointRead.model_validate(endpoint)


@router.post("/webhook-endpoints", response_model=WebhookEndpointIssued, status_code=201)
def create_webhook_endpoint(
    body: WebhookEndpointCreate, response: Response, uow: Annotated[UnitOfWork, Requires(perms.WEBHOOK_MANAGE)]
) -> WebhookEndpointIssued:
    issued = webhooks.create_endpoint(uow, **body.model_dump())
    uow.commit()
    set_etag(response, issued.endpoint)
    return WebhookEndpointIssued(**_read(issued.endpoint).model_dump(), secret=issued.secret)


@router.get("/webhook-endpoints", response_model=Page[WebhookEndpointRead])
def list_webhook_endpoints(
    uow: Annotated[UnitOfWork, Requires(perms.WEBHOOK_READ)], cursor: str | None = None, limit: Limit = 50
) -> Page[WebhookEndpointRead]:
    from entrepot.integration.models import WebhookEndpoint

    rows, next_cursor = paginate(uow, webhooks.list_endpoints_query(), WebhookEndpoint.id, cursor=cursor,
                                 limit=limit)
    return Page(items=[_read(r) for r in rows], next_cursor=next_cursor)


@router.get("/webhook-endpoints/{endpoint_id}", response_model=WebhookEndpointRead)
def read_webhook_endpoint(
    endpoint_id: str, response: Response, uow: Annotated[UnitOfWork, Requires(perms.WEBHOOK_READ)]
) -> WebhookEndpointRead:
    endpoint = webhooks.get_endpoint(uow, endpoint_id)
    set_etag(response, endpoint)
    return _read(endpoint)


@router.patch("/webhook-endpoints/{endpoint_id}", response_model=WebhookEndpointRead)
def update_webhook_endpoint(
    endpoint_id: str, body: WebhookEndpointUpdate, request: Request, response: Response,
    uow: Annotated[UnitOfWork, Requires(perms.WEBHOOK_MANAGE)],
) -> WebhookEndpointRead:
    endpoint = webhooks.get_endpoint(uow, endpoint_id)
    check_if_match(request, endpoint)
    changes = body.model_dump(exclude_unset=True)
    for field in ("url", "event_types", "enabled"):
        if field in changes and changes[field] is None:
            raise invalid(field, "may not be null", "required")
    endpoint = webhooks.update_endpoint(uow, endpoint, changes)
    uow.commit()
    set_etag(response, endpoint)
    return _read(endpoint)


@router.delete("/webhook-endpoints/{endpoint_id}", status_code=204)
def delete_webhook_endpoint(
    endpoint_id: str, request: Request, uow: Annotated[UnitOfWork, Requires(perms.WEBHOOK_MANAGE)]
) -> Response:
    endpoint = webhooks.get_endpoint(uow, endpoint_id)
    check_if_match(request, endpoint)
    webhooks.delete_endpoint(uow, endpoint)
    uow.commit()
    return Response(status_code=204)


@router.post("/webhook-endpoints/{endpoint_id}/rotate-secret", response_model=WebhookEndpointIssued,
             summary="New signing secret; the previous one keeps signing for 24 h")
def rotate_webhook_secret(
    endpoint_id: str, response: Response, uow: Annotated[UnitOfWork, Requires(perms.WEBHOOK_MANAGE)]
) -> WebhookEndpointIssued:
    issued = webhooks.rotate_secret(uow, webhooks.get_endpoint(uow, endpoint_id))
    uow.commit()
    set_etag(response, issued.endpoint)  # the rotation is a new version: a PATCH goes on from it
    return WebhookEndpointIssued(**_read(issued.endpoint).model_dump(), secret=issued.secret)


@router.post("/webhook-endpoints/{endpoint_id}/recover", response_model=RecoverResult,
             summary="Replay every dead-lettered message since a time")
def recover_webhook_endpoint(
    endpoint_id: str, body: RecoverRequest, uow: Annotated[UnitOfWork, Requires(perms.WEBHOOK_MANAGE)]
) -> RecoverResult:
    if body.since.tzinfo is None:
        raise invalid("since", "give a time zone (e.g. 2026-01-31T12:00:00Z)", "timezone")
    count = messages.recover_endpoint(uow, webhooks.get_endpoint(uow, endpoint_id), body.since)
    uow.commit()
    return RecoverResult(recovered=count)


@router.get("/webhook-endpoints/{endpoint_id}/messages", response_model=Page[WebhookMessageRead])
def list_webhook_messages(
    endpoint_id: str, uow: Annotated[UnitOfWork, Requires(perms.WEBHOOK_READ)],
    status: str | None = None, cursor: str | None = None, limit: Limit = 50,
) -> Page[WebhookMessageRead]:
    endpoint = webhooks.get_endpoint(uow, endpoint_id)
    if status is not None and status not in messages.STATUSES:
        raise invalid("status", f"one of {', '.join(messages.STATUSES)}", "enum")
    rows, next_cursor = paginate(uow, messages.messages_query(endpoint.id, status), WebhookMessage.id,
                                 cursor=cursor, limit=limit)
    return Page(items=[WebhookMessageRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.get("/webhook-messages/{message_id}", response_model=WebhookMessageRead)
def read_webhook_message(
    message_id: str, uow: Annotated[UnitOfWork, Requires(perms.WEBHOOK_READ)]
) -> WebhookMessageRead:
    return WebhookMessageRead.model_validate(messages.get_message(uow, message_id))


@router.get("/webhook-messages/{message_id}/attempts", response_model=Page[WebhookAttemptRead])
def list_webhook_attempts(
    message_id: str, uow: Annotated[UnitOfWork, Requires(perms.WEBHOOK_READ)],
    cursor: str | None = None, limit: Limit = 50,
) -> Page[WebhookAttemptRead]:
    message = messages.get_message(uow, message_id)
    rows, next_cursor = paginate(uow, messages.attempts_query(message.id), WebhookAttempt.id,
                                 cursor=cursor, limit=limit)
    return Page(items=[WebhookAttemptRead.model_validate(r) for r in rows], next_cursor=next_cursor)


@router.post("/webhook-messages/{message_id}/replay", response_model=WebhookMessageRead,
             summary="Deliver one message again")
def replay_webhook_message(
    message_id: str, uow: Annotated[UnitOfWork, Requires(perms.WEBHOOK_MANAGE)]
) -> WebhookMessageRead:
    message = messages.replay_message(uow, messages.get_message(uow, message_id))
    uow.commit()
    return WebhookMessageRead.model_validate(message)


# --- health and metrics ---------------------------------------------------------------------------


@router.get("/integration/health", summary="Outbox backlog, deliveries, dead letters, NATS lag")
def integration_health(uow: Annotated[UnitOfWork, Requires(perms.HEALTH_READ)]) -> dict[str, Any]:
    return messages.health(uow)


# Prometheus metrics span every tenant, so they are served at /metrics to the platform
# operator (ENTREPOT_OPERATOR_TOKEN, see api/app.py), never to a tenant's key.


# --- inbound --------------------------------------------------------------------------------------


@router.put("/inbound-connectors/{connector}", response_model=InboundConnectorIssued,
            summary="Create a connector or give it a new signing secret (shown once)")
def configure_inbound_connector(
    connector: str, uow: Annotated[UnitOfWork, Requires(perms.INBOUND_MANAGE)]
) -> InboundConnectorIssued:
    _, secret = inbound.configure_connector(uow, connector)
    uow.commit()
    return InboundConnectorIssued(connector=connector, secret=secret)


@router.post("/inbound/{connector}", response_model=InboundReceipt, status_code=202,
             summary="A connector callback, Standard Webhooks-signed; deduplicated by webhook-id")
def receive_inbound(
    connector: str, request: Request, body: RawBody, uow: Annotated[UnitOfWork, Requires(perms.INBOUND_RECEIVE)]
) -> JSONResponse:
    receipt = inbound.receive(uow, connector, body, dict(request.headers))
    uow.commit()
    data = InboundReceipt(id=receipt.message.id, message_id=receipt.message.message_id,
                          duplicate=receipt.duplicate)
    return JSONResponse(data.model_dump(mode="json"), status_code=200 if receipt.duplicate else 202)

