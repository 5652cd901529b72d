"""A lean HTTP/1.1 client for webhook POSTs: keep-alive connections pooled per origin.

Measured on the 2-core bench machine, httpx spends about 0.5-1 ms of CPU per
request; the standard library's `http.client` costs a fraction of that, and
writing the request ourselves costs less again: `HTTPConnection` sends the
head and the body in two writes (two segments, two wake-ups of the receiver,
and Nagle's delay between them), where this client sends them in one, with
TCP_NODELAY. Answers are still read by `http.client.HTTPResponse` (status
line, headers, chunked or sized bodies, keep-alive rules). Same contract as
the httpx client it replaces in `delivery.send`: HTTP/1.1 with keep-alive, a
timeout on connect and on every read or write, redirects never followed,
certificates verified (certifi's bundle, as httpx does). Deployments that
route egress through a proxy (HTTP(S)_PROXY / ALL_PROXY) keep httpx, which
honours those variables (see `delivery.new_client`).
"""

from __future__ import annotations

import functools
import http.client
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

KEEPALIVE_EXPIRY = 5.0  # seconds an idle connection is kept (httpx's default)
# errors that mean a kept-alive connection had been closed by the server before we wrote on it
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)
# what http.client's putheader refuses: no header splitting through a name or a value
_LEGAL_NAME = re.compile(r"[^:\s][^:\r\n]*").fullmatch
_ILLEGAL_VALUE = re.compile(r"\n(?![ \t])|\r(?![ \t\n])").search
_ILLEGAL_IN_URL = re.compile("[\x00-\x20\x7f]").search  # as http.client checks the path and host


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
        self._idle: dict[tuple[str, str, int], list[tuple[float, socket.socket]]] = {}
        self._lock = threading.Lock()
        self._ssl: ssl.SSLContext | None = None

    def _connect(self, scheme: str, host: str, port: int) -> socket.socket:
        sock = socket.create_connection((host, port), timeout=self.timeout)
        try:
            # the request goes out in one write: nothing to gain from Nagle's batching
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if scheme == "https":
                if self._ssl is None:
                    self._ssl = _ssl_context()
                sock = self._ssl.wrap_socket(sock, server_hostname=host)
        except BaseException:
            sock.close()
            raise
        return sock

    def _take(self, origin: tuple[str, str, int]) -> socket.socket | None:
        now = time.monotonic()
        with self._lock:
            idle = self._idle.get(origin)
            while idle:
                since, conn = idle.pop()
                if now - since < KEEPALIVE_EXPIRY:
                    return conn
                conn.close()
        return None

    def _give_back(self, origin: tuple[str, str, int], conn: socket.socket) -> None:
        with self._lock:
            idle = self._idle.setdefault(origin, [])
            if len(idle) < self.max_idle:
                idle.append((time.monotonic(), conn))
                return
        conn.close()

    def post(self, url: str, body: bytes, headers: dict[str, str], *, body_cap: int) -> Response:
        """POST `body`; read at most `body_cap` bytes of the answer. Raises OSError/HTTPException.

        A header name or value that would split the request is a ValueError.
        """
        origin, target, host_header = _parse(url)
        scheme, host, port = origin
        request = _request(target, host_header, body, headers)
        conn = self._take(origin)
        if conn is not None:
            try:
                return self._exchange(origin, conn, request, body_cap)
            except _STALE:
                pass  # the server had dropped it while idle: try once on a fresh one
        return self._exchange(origin, self._connect(scheme, host, port), request, body_cap)

    def _exchange(self, origin: tuple[str, str, int], conn: socket.socket, request: bytes,
                  body_cap: int) -> Response:
        try:
            conn.sendall(request)
            response = http.client.HTTPResponse(conn, method="POST")
            response.begin()
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


@functools.lru_cache(maxsize=4096)
def _parse(url: str) -> tuple[tuple[str, str, int], str, str]:
    """(scheme, host, port), the request target and the Host header of a URL (endpoints are few)."""
    parts = urlsplit(url)
    scheme = parts.scheme
    host = parts.hostname or ""
    default = 443 if scheme == "https" else 80
    port = parts.port or default
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    name = f"[{host}]" if ":" in host else host  # an IPv6 literal
    return (scheme, host, port), target, name if port == default else f"{name}:{port}"


def _request(target: str, host: str, body: bytes, headers: dict[str, str]) -> bytes:
    """The request line, headers and body as one buffer (the headers http.client would send)."""
    if _ILLEGAL_IN_URL(target) or _ILLEGAL_IN_URL(host):
        raise http.client.InvalidURL(f"control characters or spaces in {target!r} or {host!r}")
    lines = [f"POST {target} HTTP/1.1", f"Host: {host}", "Accept-Encoding: identity",
             f"Content-Length: {len(body)}"]
    for name, value in headers.items():
        if not _LEGAL_NAME(name) or _ILLEGAL_VALUE(value):
            raise ValueError(f"invalid header {name!r}")
        lines.append(f"{name}: {value}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("latin-1") + body
