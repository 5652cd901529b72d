"""Webhook signing secrets: generated, sealed at rest, opened only to sign.

Sealing is encrypt-then-MAC with keys derived from ENTREPOT_SECRET_KEY (a
SHAKE-256 keystream and an HMAC-SHA256 tag, both from the standard library),
so a database dump alone does not reveal the secrets. Rotating
ENTREPOT_SECRET_KEY makes stored secrets unreadable: rotate endpoint secrets too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _random

from entrepot.db.settings import get_settings

PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """`whsec_` + base64 of 32 random bytes (Standard Webhooks format)."""
    return PREFIX + base64.b64encode(_random.token_bytes(SECRET_BYTES)).decode()


def _keys() -> tuple[bytes, bytes]:
    root = get_settings().secret_key.encode()
    return (hmac.new(root, b"entrepot/webhook-secret/enc", hashlib.sha256).digest(),
            hmac.new(root, b"entrepot/webhook-secret/mac", hashlib.sha256).digest())


def _stream(key: bytes, nonce: bytes, length: int) -> bytes:
    return hashlib.shake_256(key + nonce).digest(length)


def seal(secret: str) -> str:
    enc, mac = _keys()
    nonce = _random.token_bytes(16)
    plain = secret.encode()
    cipher = bytes(a ^ b for a, b in zip(plain, _stream(enc, nonce, len(plain)), strict=True))
    tag = hmac.new(mac, nonce + cipher, hashlib.sha256).digest()
    return "v1." + base64.urlsafe_b64encode(nonce + tag + cipher).decode()


def open_sealed(sealed: str) -> str:
    enc, mac = _keys()
    if not sealed.startswith("v1."):
        raise ValueError("unknown sealed secret format")
    raw = base64.urlsafe_b64decode(sealed[3:])
    nonce, tag, cipher = raw[:16], raw[16:48], raw[48:]
    if not hmac.compare_digest(tag, hmac.new(mac, nonce + cipher, hashlib.sha256).digest()):
        raise ValueError("sealed secret does not match ENTREPOT_SECRET_KEY")
    return bytes(a ^ b for a, b in zip(cipher, _stream(enc, nonce, len(cipher)), strict=True)).decode()
