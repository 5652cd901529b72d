"""The webhook sender's HTTP client: keep-alive reuse, capped bodies, stale connections, redirects."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from entrepot.integration.http_client import PooledClient


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


def test_sequential_posts_reuse_one_kept_alive_connection(server):
    # given a client
    client = PooledClient(timeout=5)
    # when it posts three times in a row
    answers = [client.post(server + "/hook", b"{}", {"content-type": "application/json"}, body_cap=100)
               for _ in range(3)]
    # then all succeeded over a single connection
    assert [a.status for a in answers] == [200, 200, 200] and answers[0].body == b"ok"
    assert len(_Handler.connections) == 1
    client.close()


def test_a_body_over_the_cap_is_cut_and_its_connection_not_reused(server):
    # given a server answering more than the cap
    _Handler.body = b"x" * 5000
    client = PooledClient(timeout=5)
    # when posting twice
    first = client.post(server + "/hook", b"{}", {}, body_cap=100)
    second = client.post(server + "/hook", b"{}", {}, body_cap=100)
    # then only the cap was read, and the half-read connection was not used again
    assert first.body == b"x" * 100 and second.status == 200
    assert len(_Handler.connections) == 2
    client.close()


def test_a_connection_the_server_closed_is_replaced(server):
    # given a server that closes after each answer
    _Handler.close_after = True
    client = PooledClient(timeout=5)
    # when posting twice, then both succeed on fresh connections
    assert client.post(server + "/hook", b"{}", {}, body_cap=100).status == 200
    assert client.post(server + "/hook", b"{}", {}, body_cap=100).status == 200
    assert len(_Handler.connections) == 2
    client.close()


def test_redirects_are_returned_not_followed(server):
    client = PooledClient(timeout=5)
    answer = client.post(server + "/moved", b"{}", {}, body_cap=100)
    assert answer.status == 307 and answer.location == "/elsewhere"
    client.close()
