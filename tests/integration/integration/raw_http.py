"""Helpers for the raw-socket servers of the HTTP client tests (answers a library server won't give)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator


def accept_each(listener: socket.socket, handle: Callable[[socket.socket], None], *, threaded: bool = True) -> None:
    """Accept connections on `listener` (on a daemon thread) until it is closed, handing each to
    `handle`: on a thread of its own, or with `threaded=False` one after the other."""

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            if threaded:
                threading.Thread(target=handle, args=(conn,), daemon=True).start()
            else:
                handle(conn)

    threading.Thread(target=serve, daemon=True).start()


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


def each_request(conn: socket.socket) -> Iterator[None]:
    """Read requests off `conn` one after the other, yielding after each, until the client closes it."""
    data = b""
    while (rest := read_request(conn, data)) is not None:
        data = rest
        yield
