"""Webhook signing secrets: generated, sealed at rest, opened only to sign.

Sealed at rest (db.sealing: encrypt-then-MAC with keys derived from
ENTREPOT_SECRET_KEY), so a database dump alone does not reveal the secrets. Rotating
ENTREPOT_SECRET_KEY makes stored secrets unreadable: rotate endpoint secrets too.
"""

from __future__ import annotations

import base64
import secrets as _random

from entrepot.db.sealing import Unreadable, open_bytes, seal_bytes

PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes (Standard Webhooks format)."""
    return PREFIX + base64.b64encode(_random.token_bytes(SECRET_BYTES)).decode()


_PURPOSE = b"entrepot/webhook-secret"


def seal(secret: str) -> str:
    return "v1." + base64.urlsafe_b64encode(seal_bytes(secret.encode(), _PURPOSE)).decode()


def open_sealed(sealed: str) -> str:
    if not sealed.startswith("v1."):
        raise ValueError("unknown sealed secret format")
    try:
        return open_bytes(base64.urlsafe_b64decode(sealed[3:]), _PURPOSE).decode()
    except Unreadable as exc:
        raise ValueError("sealed secret does not match ENTREPOT_SECRET_KEY") from exc
