"""A lean HTTP/1.1 client for webhook POSTs: keep-alive connections pooled per origin.

Measured on the 2-core bench machine, httpx spends about 0.5-1 ms of CPU per
request (and writes headers and body in two sends); the standard library's
`http.client` sends both in one write and costs a fraction of that, which is
what lets one worker deliver thousands of webhooks a second. Same contract as
the httpx client it replaces in `delivery.send`: HTTP/1.1 with keep-alive, a
timeout on connect and on every read or write, redirects never followed,
certificates verified (certifi's bundle, as httpx does). Deployments that
route egress through a proxy (HTTP(S)_PROXY / ALL_PROXY) keep httpx, which
honours those variables (see `delivery.new_client`).
"""

from __future__ import annotations

import http.client
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

KEEPALIVE_EXPIRY = 5.0  # seconds an idle connection is kept (httpx's default)
# errors that mean a kept-alive connection had been closed by the server before we wrote on it
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


@dataclass
class Response:
    status: int
    location: str | None
    body: bytes  # at most the cap asked for


def _ssl_context() -> ssl.SSLContext:
    try:
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return ssl.create_default_context()


class PooledClient:
    """POSTs over reused HTTP/1.1 connections; safe to share between threads."""

    def __init__(self, *, timeout: float, max_connections: int = 64) -> None:
        self.timeout = timeout
        self.max_idle = max_connections
        self._idle: dict[tuple[str, str, int], list[tuple[float, http.client.HTTPConnection]]] = {}
        self._lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None

    def _connect(self, scheme: str, host: str, port: int) -> http.client.HTTPConnection:
        if scheme == "https":
            if self._ssl is None:
                self._ssl = _ssl_context()
            return http.client.HTTPSConnection(host, port, timeout=self.timeout, context=self._ssl)
        return http.client.HTTPConnection(host, port, timeout=self.timeout)

    def _take(self, origin: tuple[str, str, int]) -> http.client.HTTPConnection | None:
        now = time.monotonic()
        with self._lock:
            idle = self._idle.get(origin)
            while idle:
                since, conn = idle.pop()
                if now - since < KEEPALIVE_EXPIRY:
                    return conn
                conn.close()
        return None

    def _give_back(self, origin: tuple[str, str, int], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self.max_idle:
                idle.append((time.monotonic(), conn))
                return
        conn.close()

    def post(self, url: str, body: bytes, headers: dict[str, str], *, body_cap: int) -> Response:
        """POST `body`; read at most `body_cap` bytes of the answer. Raises OSError/HTTPException."""
        parts = urlsplit(url)
        scheme = parts.scheme
        host = parts.hostname or ""
        port = parts.port or (443 if scheme == "https" else 80)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        origin = (scheme, host, port)
        conn = self._take(origin)
        if conn is not None:
            try:
                return self._exchange(origin, conn, target, body, headers, body_cap)
            except _STALE:
                conn.close()  # the server had dropped it while idle: try once on a fresh one
        return self._exchange(origin, self._connect(scheme, host, port), target, body, headers, body_cap)

    def _exchange(self, origin: tuple[str, str, int], conn: http.client.HTTPConnection, target: str, body: bytes,
                  headers: dict[str, str], body_cap: int) -> Response:
        try:
            conn.request("POST", target, body=body, headers=headers)
            response = conn.getresponse()
            data = response.read(body_cap)
            # reusable only when the whole answer was read and the server keeps the connection
            reusable = not response.will_close and response.isclosed()
        except BaseException:
            conn.close()
            raise
        if reusable:
            self._give_back(origin, conn)
        else:
            conn.close()
        return Response(response.status, response.getheader("location"), data)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for _, conn in connections:
                conn.close()
