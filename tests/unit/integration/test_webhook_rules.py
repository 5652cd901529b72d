"""Webhook rules without a database: schedule, signing, secrets, targets."""

from __future__ import annotations

import base64
import time
from datetime import timedelta

import pytest

from entrepot.db.settings import reset_settings
from entrepot.integration import delivery, secrets, webhooks


def test_the_retry_schedule_is_the_documented_one_with_jitter():
    documented = (timedelta(0), timedelta(seconds=5), timedelta(minutes=5), timedelta(minutes=30),
                  timedelta(hours=2), timedelta(hours=5), timedelta(hours=10), timedelta(hours=10))
    assert documented == delivery.SCHEDULE
    for failed in range(1, 8):
        base = delivery.SCHEDULE[failed]
        delays = {delivery.retry_delay(failed) for _ in range(20)}
        assert all(base * 0.9 <= d <= base * 1.1 for d in delays)
        assert len(delays) > 1  # jittered
    assert delivery.retry_delay(8) is None


def test_secrets_are_whsec_base64_of_32_bytes_and_seal_round_trips():
    secret = secrets.new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    sealed = secrets.seal(secret)
    assert secret not in sealed
    assert secrets.open_sealed(sealed) == secret
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(ValueError):
        secrets.open_sealed(tampered)


def test_signing_matches_the_standard_and_verify_rejects_stale_or_forged():
    secret = secrets.new_secret()
    other = secrets.new_secret()
    payload = '{"id":"evt_1"}'
    headers = webhooks.sign("msg_1", payload, [other, secret])
    # two signatures, space separated, either verifies
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert webhooks.verify(payload, headers, secret) == {"id": "evt_1"}
    assert webhooks.verify(payload, headers, other) == {"id": "evt_1"}
    with pytest.raises(webhooks.WebhookVerificationError):
        webhooks.verify(payload, headers, secrets.new_secret())
    stale = webhooks.sign("msg_1", payload, [secret], at=time.time() - 3600)
    with pytest.raises(webhooks.WebhookVerificationError):
        webhooks.verify(payload, stale, secret)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/x", "http://10.0.0.5/x", "http://192.168.1.1/x", "http://172.16.0.1/x",
    "http://169.254.169.254/", "http://[::1]/", "http://[fe80::1]/", "http://0.0.0.0/", "http://localhost/",
])
def test_private_targets_are_refused_by_default(url, monkeypatch):
    monkeypatch.setenv("ENTREPOT_WEBHOOK_ALLOW_PRIVATE", "0")
    reset_settings()
    try:
        assert webhooks.target_refusal(url) is not None
    finally:
        reset_settings()


def test_malformed_targets_are_refused_even_when_private_is_allowed(monkeypatch):
    monkeypatch.setenv("ENTREPOT_WEBHOOK_ALLOW_PRIVATE", "1")
    reset_settings()
    try:
        assert webhooks.target_refusal("ftp://example.com/") is not None
        assert webhooks.target_refusal("http://user:pw@example.com/") is not None
        assert webhooks.target_refusal("http:///nohost") is not None
        assert webhooks.target_refusal("http://127.0.0.1:8080/hook") is None
    finally:
        reset_settings()
