"""The worker's senders: POSTs on kept-alive connections written and read by one I/O thread, the
rest (new connections, answers only a blocking read can finish) on helper threads; at most
`threads` at once; an answer that does not come is a timeout."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from entrepot.integration import delivery
from entrepot.integration.http_client import PooledClient
from entrepot.integration.secrets import new_secret
from entrepot.worker.runtime import Senders
from tests.integration.integration.raw_http import accept_each, each_request


class _Server:
    """A raw HTTP/1.1 server: answers each request with `answer(n)` (None: never answers);
    counts connections and the most requests it had in hand at once."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        self.connections = 0
        self.requests = 0
        self.busy = 0
        self.most_busy = 0
        self.delay = 0.0
        self.hang_from: int | None = None  # requests from this number on get no answer
        self.chunked = False
        self._lock = threading.Lock()
        accept_each(self.listener, self._handle)

    def _handle(self, conn: socket.socket) -> None:
        with self._lock:
            self.connections += 1
        with conn:
            for _ in each_request(conn):
                with self._lock:
                    self.requests += 1
                    n = self.requests
                    self.busy += 1
                    self.most_busy = max(self.most_busy, self.busy)
                if self.hang_from is not None and n >= self.hang_from:
                    time.sleep(30)
                    return
                time.sleep(self.delay)
                with self._lock:
                    self.busy -= 1
                if self.chunked:
                    conn.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n")
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def server() -> Iterator[_Server]:
    s = _Server()
    yield s
    s.close()


def _claimed(url: str, n: int) -> delivery.Claimed:
    return delivery.Claimed(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), url, f'{{"n":{n}}}', [new_secret()], 1,
                            f"s/{n}", False)


def _send_all(senders: Senders, items: list[delivery.Claimed]) -> list[delivery.Outcome]:
    for item in items:
        senders.submit(item)
    senders.gather(wait=30)
    assert senders.in_flight == 0
    done, senders.finished = senders.finished, []
    return done


@pytest.mark.parametrize("chunked", [False, True])
def test_many_posts_go_out_at_most_threads_at_once_over_kept_alive_connections(server, chunked):
    # given senders with 4 threads and a server that takes a moment per request
    server.delay = 0.01
    server.chunked = chunked  # (a chunked answer is finished by a helper's blocking read)
    client = PooledClient(timeout=5, max_connections=4)
    senders = Senders(client, 4)
    try:
        # when sending 40 messages in two rounds
        items = [_claimed(server.url, n) for n in range(40)]
        outcomes = _send_all(senders, items[:20]) + _send_all(senders, items[20:])
    finally:
        senders.stop()
        client.close()
    # then every one succeeded, once, never more than 4 at once, over the first 4 connections
    assert sorted(str(o.claimed.message_id) for o in outcomes) == sorted(str(i.message_id) for i in items)
    assert all(o.succeeded and o.status_code == 200 and o.body == "ok" for o in outcomes)
    assert server.requests == 40
    assert server.most_busy <= 4
    assert server.connections <= 4


def test_an_answer_that_does_not_come_on_a_kept_alive_connection_times_out(server):
    # given a server that answers the first request, then no more
    server.hang_from = 2
    client = PooledClient(timeout=0.3, max_connections=2)
    senders = Senders(client, 2)
    try:
        first = _send_all(senders, [_claimed(server.url, 0)])
        # when the next goes out on the kept-alive connection
        started = time.monotonic()
        second = _send_all(senders, [_claimed(server.url, 1)])
        took = time.monotonic() - started
    finally:
        senders.stop()
        client.close()
    # then it failed as timed out, once the client's timeout had passed without a byte
    assert first[0].succeeded
    assert not second[0].succeeded and second[0].error == f"timed out after {delivery.TIMEOUT_SECONDS:g} s"
    assert 0.25 <= took < 5
    assert server.connections == 1  # it went out on the kept connection, not a new one


def test_gathering_for_the_first_outcome_returns_before_the_rest(server):
    # given one slow and one prompt request in flight
    server.delay = 0.0
    client = PooledClient(timeout=5, max_connections=2)
    senders = Senders(client, 2)
    try:
        _send_all(senders, [_claimed(server.url, 0), _claimed(server.url, 1)])  # two kept connections
        server.hang_from = 4  # the 4th request gets no answer
        senders.submit(_claimed(server.url, 2))
        senders.submit(_claimed(server.url, 3))
        # when gathering with every=False, then it returns with the prompt one only
        senders.gather(wait=2, every=False)
        assert len(senders.finished) == 1 and senders.in_flight == 1
    finally:
        senders.stop()
        client.close()


def test_a_host_not_vetted_lately_is_left_to_a_helper_thread(monkeypatch):
    from entrepot.db.settings import reset_settings
    from entrepot.integration import webhooks

    # given private targets refused (so each host is resolved and vetted, at most once a minute)
    monkeypatch.setenv("ENTREPOT_WEBHOOK_ALLOW_PRIVATE", "0")
    reset_settings()
    try:
        url = "http://unvetted.invalid/hook"
        # then a host not resolved lately is not sent by the I/O thread (a lookup may block for
        # seconds, and every other send waits on that thread), but one vetted a moment ago is
        assert delivery.start_send(PooledClient(timeout=5), _claimed(url, 0)) is None
        assert not webhooks.vetted_without_lookup(url)
        webhooks._resolved["unvetted.invalid"] = (time.monotonic(), True)
        assert webhooks.vetted_without_lookup(url)
    finally:
        webhooks._resolved.pop("unvetted.invalid", None)
        monkeypatch.undo()
        reset_settings()
