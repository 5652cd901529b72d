"""A lean HTTP/1.1 client for webhook POSTs: keep-alive connections pooled per origin.

Measured on the 2-core bench machine, httpx spends about 0.5-1 ms of CPU per
request; the standard library's `http.client` costs a fraction of that, and
writing the request ourselves costs less again: `HTTPConnection` sends the
head and the body in two writes (two segments, two wake-ups of the receiver,
and Nagle's delay between them), where this client sends them in one, with
TCP_NODELAY. Answers are read by `_read_answer`, which follows
`http.client.HTTPResponse` (status line, 100 Continue, chunked or sized
bodies, its keep-alive rules, its limits and errors) but keeps only the
headers a delivery needs: `HTTPResponse` hands every header block to the
`email` package's parser, which cost about a third of a sender's CPU. Same contract as
the httpx client it replaces in `delivery.send`: HTTP/1.1 with keep-alive, a
timeout on connect and on every read or write, redirects never followed,
certificates verified (certifi's bundle, as httpx does). Deployments that
route egress through a proxy (HTTP(S)_PROXY / ALL_PROXY) keep httpx, which
honours those variables (see `delivery.new_client`).
"""

from __future__ import annotations

import functools
import http.client
import io
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO
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
            with conn.makefile("rb") as answer:
                response, reusable = _read_answer(answer, body_cap)
        except BaseException:
            conn.close()
            raise
        if reusable:
            self._give_back(origin, conn)
        else:
            conn.close()
        return response

    # --- the same exchange without waiting, for a caller that multiplexes many (see `start`) ---

    def start(self, url: str, body: bytes, headers: dict[str, str], *, body_cap: int) -> Exchange | None:
        """Send the POST on an idle kept-alive connection without waiting for anything; None when
        there is none or the request did not go out whole at once (then `post` it, on a thread).

        The caller waits for the connection's socket (`Exchange.sock`) to turn readable and calls
        `feed` each time, until it returns the answer. Same request, same answer, same errors as
        `post`; a step that could block (a connection to open, an answer whose end only the
        connection's close or its chunks tell) is handed back as a `Handoff` to run on a thread.
        """
        origin, target, host_header = _parse(url)
        request = _request(target, host_header, body, headers)
        conn = self._take(origin)
        if conn is None:
            return None
        try:
            conn.setblocking(False)
            sent = conn.send(request)
        except OSError:  # a stale connection, or a full buffer: `post` handles both
            sent = 0
        if sent != len(request):
            conn.close()
            return None
        return Exchange(origin, conn, request, body_cap, time.monotonic() + self.timeout)

    def feed(self, exchange: Exchange) -> Response | None:
        """Read what arrived for `exchange`: its answer once whole (the connection kept or closed as
        `post` would), None while it is not. Raises as `post` does, or `Handoff`."""
        conn = exchange.sock
        try:
            data = conn.recv(65536)
            if isinstance(conn, ssl.SSLSocket):
                while conn.pending():
                    data += conn.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError):
            return None
        except _STALE:
            conn.close()
            if not exchange.buffer:
                raise Handoff(functools.partial(self._afresh, exchange)) from None
            raise
        except BaseException:
            conn.close()
            raise
        if not data:  # closed by the server
            conn.close()
            if not exchange.buffer:  # before a byte of the answer: it had dropped the idle connection
                raise Handoff(functools.partial(self._afresh, exchange))
            return _read_answer(io.BytesIO(exchange.buffer), exchange.body_cap)[0]
        exchange.buffer += data
        exchange.deadline = time.monotonic() + self.timeout  # as `post`: a timeout per read
        try:
            found = _sized_answer(exchange.buffer, exchange.body_cap)
        except Exception:
            found = None  # garbled: the blocking reader raises what `post` raises
        if found is None:
            raise Handoff(functools.partial(self._finish, exchange))
        if isinstance(found, int):
            return None
        response, reusable, end = found
        if reusable and end == len(exchange.buffer):
            conn.settimeout(self.timeout)
            self._give_back(exchange.origin, conn)
        else:
            conn.close()
        return response

    def _afresh(self, exchange: Exchange) -> Response:
        """The exchange again on a new connection (as `post` does after a stale one)."""
        scheme, host, port = exchange.origin
        return self._exchange(exchange.origin, self._connect(scheme, host, port), exchange.request,
                              exchange.body_cap)

    def _finish(self, exchange: Exchange) -> Response:
        """The rest of the answer read as `post` reads it, after the bytes `feed` already read."""
        conn = exchange.sock
        try:
            conn.settimeout(self.timeout)
            reader = _Prefixed(conn, exchange.buffer)
            with io.BufferedReader(reader) as answer:
                response, reusable = _read_answer(answer, exchange.body_cap)
                # the buffered reader is dropped with what it read ahead, as `post`'s is
                reusable = reusable and not reader.prefix
        except BaseException:
            conn.close()
            raise
        if reusable:
            self._give_back(exchange.origin, conn)
        else:
            conn.close()
        return response

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for connections in idle.values():
            for _, conn in connections:
                conn.close()


class Exchange:
    """A POST sent by `PooledClient.start`, its answer not yet whole."""

    __slots__ = ("body_cap", "buffer", "deadline", "origin", "request", "sock")

    def __init__(self, origin: tuple[str, str, int], sock: socket.socket, request: bytes, body_cap: int,
                 deadline: float) -> None:
        self.origin = origin
        self.sock = sock
        self.request = request
        self.body_cap = body_cap
        self.buffer = b""
        self.deadline = deadline  # monotonic: no byte since then is a timeout


class Handoff(Exception):  # not an error: the rest of an exchange, to run where it may block
    """`PooledClient.feed` cannot finish without waiting: `resume()` (on a thread) gives the
    answer, or raises, as `post` would."""

    def __init__(self, resume: Callable[[], Response]) -> None:
        super().__init__()
        self.resume = resume


class _Prefixed(io.RawIOBase):
    """A socket's stream with bytes already read from it put back in front."""

    def __init__(self, sock: socket.socket, prefix: bytes) -> None:
        self.sock = sock
        self.prefix = prefix

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self.prefix:
            n = min(len(buffer), len(self.prefix))
            buffer[:n] = self.prefix[:n]
            self.prefix = self.prefix[n:]
            return n
        return self.sock.recv_into(buffer)


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


# --- reading the answer, as http.client.HTTPResponse does --------------------------------------------

_MAX_LINE = 65536  # http.client's _MAXLINE
_MAX_HEADERS = 100  # http.client's _MAXHEADERS
_KEPT = ("location", "connection", "keep-alive", "content-length", "transfer-encoding")


def _line(answer: BinaryIO, what: str) -> bytes:
    line = answer.readline(_MAX_LINE + 1)
    if len(line) > _MAX_LINE:
        raise http.client.LineTooLong(what)
    return line


def _status(answer: BinaryIO) -> tuple[int, int]:
    """(HTTP version as 10 or 11, status code) of the status line."""
    raw = _line(answer, "status line")
    if not raw:
        # the server closed the connection first (a kept-alive one it had dropped, say)
        raise http.client.RemoteDisconnected("Remote end closed connection without response")
    line = raw.decode("iso-8859-1")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise http.client.BadStatusLine(line)
    try:
        status = int(parts[1])
    except ValueError:
        raise http.client.BadStatusLine(line) from None
    if not 100 <= status <= 999:
        raise http.client.BadStatusLine(line)
    version = parts[0]
    if version == "HTTP/1.0":
        return 10, status
    if version.startswith("HTTP/1."):
        return 11, status
    raise http.client.UnknownProtocol(version)


def _headers(answer: BinaryIO) -> dict[str, str]:
    """The header block, up to its blank line: only the headers a delivery uses, by lower-case name."""
    found: dict[str, str] = {}
    count = 0
    name = ""
    while True:
        line = _line(answer, "header line")
        if line in (b"\r\n", b"\n", b""):
            return found
        count += 1
        if count > _MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {_MAX_HEADERS} headers")
        text = line.decode("iso-8859-1").rstrip("\r\n")
        if text[:1] in (" ", "\t"):  # a folded continuation of the previous header
            if name in found:
                found[name] += " " + text.strip()
            continue
        name, colon, value = text.partition(":")
        name = name.strip().lower()
        if not colon or name not in _KEPT:
            continue
        value = value.strip()
        found[name] = f"{found[name]}, {value}" if name in found else value


_HEAD_END = re.compile(rb"\n\r?\n")  # a line's end, then an empty line (http.client takes bare LF too)


def _sized_answer(buffer: bytes, body_cap: int) -> tuple[Response, bool, int] | int | None:
    """The answer at the start of `buffer` when its head tells its size, as `_read_answer` reads
    it: (the answer, whether the connection may be reused, where the answer ends); -1 while bytes
    are missing; None when only a blocking read can tell its end (chunked, up to the connection's
    close, or a head too large to look for its end). Raises on a garbled head."""
    start = 0
    while True:
        found = _HEAD_END.search(buffer, start)
        if found is None:
            return -1 if len(buffer) - start <= _MAX_LINE else None
        head = io.BytesIO(buffer[start:found.end()])
        version, status = _status(head)
        headers = _headers(head)
        if status != 100:
            break
        start = found.end()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        return None
    length = _body_length(status, headers, chunked=False)
    if length is None:
        return None
    end = found.end() + min(length, body_cap)
    if len(buffer) < end:
        return -1
    will_close = _will_close(version, headers)
    body = buffer[found.end():end]
    return Response(status, headers.get("location"), body), len(body) == length and not will_close, end


def _body_length(status: int, headers: dict[str, str], *, chunked: bool) -> int | None:
    """The body's length the head declares: none for the statuses without one, else a valid
    Content-Length of an answer not sent in chunks; None when the head does not say."""
    if status in (204, 304) or 100 <= status < 200:
        return 0
    if chunked or "content-length" not in headers:
        return None
    try:
        length = int(headers["content-length"])
    except ValueError:
        return None
    return length if length >= 0 else None


def _will_close(version: int, headers: dict[str, str]) -> bool:
    """Whether the server closes the connection after this answer (HTTP/1.1 keeps it by default)."""
    connection = headers.get("connection", "").lower()
    if "close" in connection:
        return True
    if version == 11:
        return False
    return "keep-alive" not in connection and "keep-alive" not in headers


def _read_answer(answer: BinaryIO, body_cap: int) -> tuple[Response, bool]:
    """The answer to a POST, its body cut at `body_cap`; and whether the connection can be reused
    (the whole answer was read and the server keeps the connection open)."""
    version, status = _status(answer)
    while status == 100:  # an interim answer: its headers, then the real one
        _headers(answer)
        version, status = _status(answer)
    headers = _headers(answer)
    will_close = _will_close(version, headers)
    chunked = headers.get("transfer-encoding", "").lower() == "chunked"
    length = _body_length(status, headers, chunked=chunked)
    if not will_close and not chunked and length is None:
        will_close = True  # the body ends with the connection
    if chunked:
        body, complete = _read_chunked(answer, body_cap)
    elif length is not None:
        body = answer.read(min(length, body_cap))
        complete = len(body) == length
    else:
        body, complete = answer.read(body_cap), False
    return Response(status, headers.get("location"), body), complete and not will_close


def _read_chunked(answer: BinaryIO, body_cap: int) -> tuple[bytes, bool]:
    """A chunked body, at most `body_cap` bytes of it; and whether it was read to its end."""
    chunks: list[bytes] = []
    size = 0
    while True:
        line = _line(answer, "chunk size")
        try:
            chunk_size = int(line.split(b";", 1)[0], 16)
        except ValueError:
            raise http.client.IncompleteRead(b"".join(chunks)) from None
        if chunk_size == 0:
            while _line(answer, "trailer line") not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(chunks), True
        wanted = min(chunk_size, body_cap - size)
        data = answer.read(wanted)
        chunks.append(data)
        size += len(data)
        if len(data) < wanted or wanted < chunk_size:
            return b"".join(chunks), False  # cut at the cap, or the connection ended early
        answer.read(2)  # the CRLF after the chunk
