"""Connector callbacks: signed like our own webhooks (Standard Webhooks), kept once per message id."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from standardwebhooks import Webhook, WebhookVerificationError

from entrepot.db.audit_trail import audit
from entrepot.db.insert_if_missing import insert_if_missing
from entrepot.db.uow import UnitOfWork
from entrepot.integration import secrets
from entrepot.integration.events import InboundMessageReceived
from entrepot.integration.models import InboundConnector, InboundMessage
from entrepot.integration.outbox import record_event
from entrepot.kernel import clock
from entrepot.kernel.errors import DomainError, NotFound, invalid
from entrepot.kernel.ids import new_id

CONNECTOR_NAME = re.compile(r"^[a-z][a-z0-9_-]{1,59}$")


class BadSignature(DomainError):
    code = "bad_signature"
    status = 401
    title = "Signature verification failed"


@dataclass(frozen=True)
class Receipt:
    message: InboundMessage
    duplicate: bool


def configure_connector(uow: UnitOfWork, name: str) -> tuple[InboundConnector, str]:
    """Create the connector, or give it a new secret. Returns the secret (shown once)."""
    if not CONNECTOR_NAME.match(name):
        raise invalid("connector", "lowercase letters, digits, '-' or '_' (2-60), starting with a letter", "pattern")
    secret = secrets.new_secret()
    connector = uow.session.scalar(select(InboundConnector).where(InboundConnector.name == name))
    if connector is None:
        connector = InboundConnector(name=name, sealed_secret=secrets.seal(secret))
        uow.session.add(connector)
    else:
        connector.sealed_secret = secrets.seal(secret)
    uow.session.flush()
    audit(uow, "inbound_connector.configure", "inbound_connector", connector.id, after={"name": name})
    return connector, secret


def receive(uow: UnitOfWork, name: str, body: bytes, headers: Mapping[str, str]) -> Receipt:
    """Verify the callback's signature, then store it unless its message id was seen before."""
    connector = uow.session.scalar(select(InboundConnector).where(InboundConnector.name == name))
    if connector is None:
        raise NotFound("inbound connector", name)
    try:
        Webhook(secrets.open_sealed(connector.sealed_secret)).verify(body, dict(headers), json_parse=False)
    except (WebhookVerificationError, ValueError) as exc:
        raise BadSignature(str(exc) or "signature does not match") from exc
    message_id = {k.lower(): v for k, v in headers.items()}["webhook-id"][:200]
    try:
        payload = json.loads(body or b"{}")
    except ValueError as exc:
        raise invalid("body", "must be JSON", "json") from exc
    if not isinstance(payload, dict):
        payload = {"value": payload}
    new = insert_if_missing(
        uow.session, InboundMessage,
        {"id": new_id(), "tenant_id": uow.tenant_id, "connector": name, "message_id": message_id,
         "received_at": clock.now(), "payload": payload},
        key=["tenant_id", "connector", "message_id"], returning=[InboundMessage.id]).scalar()
    message = uow.session.scalar(select(InboundMessage).where(
        InboundMessage.connector == name, InboundMessage.message_id == message_id))
    assert message is not None
    if new is not None:
        record_event(uow, InboundMessageReceived(connector=name, message_id=message_id,
                                                 inbound_message_id=str(message.id)),
                     subject=f"inbound/{name}/{message.id}")
    return Receipt(message, new is None)
