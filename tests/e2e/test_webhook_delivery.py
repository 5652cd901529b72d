"""A real `entrepot serve` (with its embedded worker) delivers signed webhooks to a real receiver."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from bench._server import cli, fresh_database, server
from standardwebhooks import Webhook


class Receiver:
    """A loopback HTTP server that verifies each delivery with the standardwebhooks library."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.events: list[dict] = []
        self.rejected = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                try:
                    Webhook(receiver.secret).verify(body, dict(self.headers))
                    receiver.events.append(json.loads(body))
                    self.send_response(204)
                except Exception:
                    receiver.rejected += 1
                    self.send_response(400)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hooks"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


def test_a_product_created_over_http_arrives_signed_at_the_receiver(tmp_path):
    receiver = Receiver()
    try:
        with fresh_database("sqlite") as url:
            cli(url, "init")
            cli(url, "tenant", "create", "acme", "--name", "Acme")
            key = cli(url, "apikey", "create", "--tenant", "acme")
            with server(url, embedded_worker=True, extra_env={"ENTREPOT_WEBHOOK_ALLOW_PRIVATE": "1"}) as base:
                c = httpx.Client(base_url=base + "/api/v1", headers={"Authorization": f"Bearer {key}"})
                # given an endpoint for product events
                endpoint = c.post("/webhook-endpoints", json={"url": receiver.url,
                                                              "event_types": ["product.created.v1"]})
                assert endpoint.status_code == 201, endpoint.text
                receiver.secret = endpoint.json()["secret"]
                # when a product is created
                product = c.post("/products", json={"sku": "HOOK-1", "name": "Hooked", "list_price": "1.00",
                                                    "currency": "USD"})
                assert product.status_code == 201
                # then its event arrives, signed, within seconds
                deadline = time.monotonic() + 30
                while not receiver.events and time.monotonic() < deadline:
                    time.sleep(0.2)
        assert receiver.rejected == 0
        assert [e["type"] for e in receiver.events] == ["product.created.v1"]
        assert receiver.events[0]["data"]["sku"] == "HOOK-1" or product.json()["id"] in json.dumps(receiver.events[0])
    finally:
        receiver.close()
