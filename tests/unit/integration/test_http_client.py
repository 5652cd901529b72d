"""The webhook sender's HTTP client: keep-alive reuse, capped bodies, stale connections, redirects.

Each test runs twice: with `post` (a blocking exchange, as a helper thread runs it) and with
`start`/`feed` (the worker's I/O thread: the request written on an idle kept-alive connection, the
answer read as it comes under a poll, a `Handoff` finishing what only a blocking read can)."""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from entrepot.integration.http_client import Handoff, PooledClient, Response
from tests.integration.integration.raw_http import accept_each, each_request


def _polled_post(client: PooledClient, url: str, body: bytes, headers: dict[str, str], *,
                 body_cap: int) -> Response:
    """As the worker's I/O thread sends: `post` only when there is no idle connection to write on."""
    exchange = client.start(url, body, headers, body_cap=body_cap)
    if exchange is None:
        return client.post(url, body, headers, body_cap=body_cap)
    poll = select.poll()
    poll.register(exchange.sock, select.POLLIN)
    while True:
        assert poll.poll(5000), "no answer"
        try:
            answer = client.feed(exchange)
        except Handoff as handoff:
            return handoff.resume()
        if answer is not None:
            return answer


@pytest.fixture(params=["blocking", "polled"])
def post(request: pytest.FixtureRequest) -> Callable[..., Response]:
    if request.param == "blocking":
        return lambda client, *args, **kwargs: client.post(*args, **kwargs)
    return _polled_post


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: list[tuple[str, int]] = []  # one entry per accepted connection
    body = b"ok"
    close_after = False

    def setup(self) -> None:
        super().setup()
        type(self).connections.append(self.client_address)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200 if self.path != "/moved" else 307)
        if self.path == "/moved":
            self.send_header("location", "/elsewhere")
        self.send_header("content-length", str(len(self.body)))
        if self.close_after:
            self.send_header("connection", "close")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.connections = []
    _Handler.body = b"ok"
    _Handler.close_after = False
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_sequential_posts_reuse_one_kept_alive_connection(server, post):
    # given a client
    client = PooledClient(timeout=5)
    # when it posts three times in a row
    answers = [post(client, server + "/hook", b"{}", {"content-type": "application/json"}, body_cap=100)
               for _ in range(3)]
    # then all succeeded over a single connection
    assert [a.status for a in answers] == [200, 200, 200] and answers[0].body == b"ok"
    assert len(_Handler.connections) == 1
    client.close()


def test_a_body_over_the_cap_is_cut_and_its_connection_not_reused(server, post):
    # given a server answering more than the cap
    _Handler.body = b"x" * 5000
    client = PooledClient(timeout=5)
    # when posting twice
    first = post(client, server + "/hook", b"{}", {}, body_cap=100)
    second = post(client, server + "/hook", b"{}", {}, body_cap=100)
    # then only the cap was read, and the half-read connection was not used again
    assert first.body == b"x" * 100 and second.status == 200
    assert len(_Handler.connections) == 2
    client.close()


def test_a_connection_the_server_closed_is_replaced(server, post):
    # given a server that closes after each answer
    _Handler.close_after = True
    client = PooledClient(timeout=5)
    # when posting twice, then both succeed on fresh connections
    assert post(client, server + "/hook", b"{}", {}, body_cap=100).status == 200
    assert post(client, server + "/hook", b"{}", {}, body_cap=100).status == 200
    assert len(_Handler.connections) == 2
    client.close()


def test_redirects_are_returned_not_followed(server, post):
    client = PooledClient(timeout=5)
    answer = post(client, server + "/moved", b"{}", {}, body_cap=100)
    assert answer.status == 307 and answer.location == "/elsewhere"
    client.close()


@pytest.fixture
def canned() -> Iterator[tuple[str, list[bytes], list[int]]]:
    """A raw server answering each request with the next canned bytes; counts connections."""
    import socket

    answers: list[bytes] = []
    accepted: list[int] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def handle(conn: socket.socket) -> None:
        accepted.append(1)
        with conn:
            if not answers:
                return
            for _ in each_request(conn):
                conn.sendall(answers.pop(0))
                if not answers:
                    return

    accept_each(listener, handle)
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", answers, accepted
    listener.close()


def test_chunked_interim_and_empty_answers_are_read_and_the_connection_kept(canned, post):
    url, answers, accepted = canned
    # given a chunked answer after a 100 Continue, a 204, and a plain answer
    answers += [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
                b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nx-trailer: 1\r\n\r\n",
                b"HTTP/1.1 204 No Content\r\n\r\n",
                b"HTTP/1.1 201 Created\r\ncontent-length: 2\r\n\r\nok"]
    client = PooledClient(timeout=5)
    # when posting three times
    got = [post(client, url + "/hook", b"{}", {}, body_cap=100) for _ in range(3)]
    # then each answer was read whole, over one kept-alive connection
    assert [(r.status, r.body) for r in got] == [(200, b"abcde"), (204, b""), (201, b"ok")]
    assert len(accepted) == 1
    client.close()


def test_http_1_0_and_unframed_answers_are_not_reused(canned, post):
    url, answers, accepted = canned
    # given an HTTP/1.0 answer, then one without a length (its body ends with the connection)
    answers += [b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok"]
    client = PooledClient(timeout=5)
    first = post(client, url + "/hook", b"{}", {}, body_cap=100)
    answers += [b"HTTP/1.1 500 Oops\r\n\r\nbroken"]
    second = post(client, url + "/hook", b"{}", {}, body_cap=3)
    # then both were read, each on its own connection
    assert (first.status, first.body) == (200, b"ok")
    assert second.status == 500 and second.body.startswith(b"bro")
    assert len(accepted) == 2
    client.close()


def test_a_garbled_answer_or_an_injected_header_is_an_error(canned, post):
    import http.client

    url, answers, _ = canned
    answers += [b"SMTP ready\r\n\r\n"]
    client = PooledClient(timeout=5)
    with pytest.raises(http.client.HTTPException):
        post(client, url + "/hook", b"{}", {}, body_cap=100)
    with pytest.raises(ValueError):
        post(client, url + "/hook", b"{}", {"x-bad": "a\r\nx-injected: 1"}, body_cap=100)
    client.close()


def test_a_target_with_a_space_or_control_character_is_refused_before_sending(server, post):
    import http.client

    # given a client
    client = PooledClient(timeout=5)
    # when the target would break the request line, then it is refused (as http.client refuses it)
    with pytest.raises(http.client.InvalidURL):
        post(client, server + "/ho ok", b"{}", {}, body_cap=100)
    # and nothing reached the server
    assert _Handler.connections == []
    client.close()


def test_a_folded_header_is_one_value_and_too_many_headers_an_error(canned, post):
    import http.client

    url, answers, _ = canned
    # given an answer whose location is folded over two lines, then one with too many headers
    answers += [b"HTTP/1.1 308 Permanent Redirect\r\nlocation: /a\r\n  /b\r\nx-other: 1\r\ncontent-length: 0\r\n\r\n",
                b"HTTP/1.1 200 OK\r\n" + b"x-many: 1\r\n" * 101 + b"content-length: 0\r\n\r\n"]
    client = PooledClient(timeout=5)
    # when posting twice
    moved = post(client, url + "/hook", b"{}", {}, body_cap=100)
    # then the folded header reads as one value, and the second answer is refused
    assert (moved.status, moved.location) == (308, "/a /b")
    with pytest.raises(http.client.HTTPException):
        post(client, url + "/hook", b"{}", {}, body_cap=100)
    client.close()


def test_an_answer_arriving_in_pieces_is_read_whole_and_its_connection_kept(post):
    import socket

    # given a server that writes its answers a few bytes at a time
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        conn, _ = listener.accept()
        accepted.append(1)
        with conn:
            for _ in range(3):
                data = b""
                while b"\r\n\r\n" not in data or not data.endswith(b"{}"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello"
                for i in range(0, len(answer), 7):
                    conn.sendall(answer[i:i + 7])
                    time.sleep(0.002)

    threading.Thread(target=serve, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    client = PooledClient(timeout=5)
    # when posting three times
    got = [post(client, url, b"{}", {}, body_cap=100) for _ in range(3)]
    # then each answer was read whole, over one connection
    assert [(r.status, r.body) for r in got] == [(200, b"hello")] * 3
    assert len(accepted) == 1
    client.close()
    listener.close()


def test_a_kept_alive_connection_the_server_dropped_meanwhile_is_replaced(post):
    import socket

    # given a server that answers as if keeping the connection, then closes it
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def answer_once(conn: socket.socket) -> None:
        accepted.append(1)
        with conn:
            data = b""
            while not data.endswith(b"{}"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    accept_each(listener, answer_once, threaded=False)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    client = PooledClient(timeout=5)
    first = post(client, url, b"{}", {}, body_cap=100)
    time.sleep(0.05)  # the server has closed it by now
    # when posting again, then the stale connection is replaced by a fresh one
    second = post(client, url, b"{}", {}, body_cap=100)
    assert (first.status, second.status, second.body) == (200, 200, b"ok")
    assert len(accepted) == 2
    client.close()
    listener.close()
