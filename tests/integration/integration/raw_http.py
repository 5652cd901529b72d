"""Helpers for the raw-socket servers of the HTTP client tests (answers a library server won't give)."""

from __future__ import annotations

import socket


def read_request(conn: socket.socket, data: bytes) -> bytes | None:
    """Read one request with a Content-Length body off `conn`, `data` being what was read past the
    previous one; what was read past this one, or None when the client closed the connection."""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length")))
    while len(rest) < length:
        rest += conn.recv(65536)
    return rest[length:]
