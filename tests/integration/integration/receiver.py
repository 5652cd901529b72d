"""A real webhook receiver on loopback: verifies every delivery with the Standard Webhooks
library (the receiver's side, not Entrepot's sender code) and records what arrived."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    event: dict[str, Any] | None
    received_at: float


@dataclass
class Receiver:
    """Answers `status` (default 200); `fail_next(n)` makes the next n requests fail first."""

    secrets: list[str] = field(default_factory=list)
    status: int = 200
    delay: float = 0.0
    location: str | None = None
    deliveries: list[Delivery] = field(default_factory=list)
    fail_if: Any = None  # callable(body) -> bool: answer 503 to matching requests
    _failures_left: int = 0
    _failure_status: int = 503
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook"

    def fail_next(self, n: int, status: int = 503) -> None:
        self._failures_left, self._failure_status = n, status

    @property
    def verified_events(self) -> list[dict[str, Any]]:
        return [d.event for d in self.deliveries if d.verified and d.event is not None]

    def _verify(self, body: bytes, headers: dict[str, str]) -> dict[str, Any] | None:
        for secret in self.secrets:
            try:
                return Webhook(secret).verify(body, headers)
            except WebhookVerificationError:
                continue
        return None

    def _answer(self) -> int:
        with self._lock:
            if self._failures_left > 0:
                self._failures_left -= 1
                return self._failure_status
        return self.status

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                if receiver.delay:
                    time.sleep(receiver.delay)
                status = 503 if receiver.fail_if and receiver.fail_if(body) else receiver._answer()
                event = receiver._verify(body, headers) if status < 300 else None
                with receiver._lock:
                    receiver.deliveries.append(Delivery(self.path, headers, body, event is not None, event,
                                                        time.time()))
                self.send_response(status)
                if receiver.location and 300 <= status < 400:
                    self.send_header("Location", receiver.location)
                payload = json.dumps({"ok": status < 300}).encode()
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
