"""End-to-end: a real `entrepot serve` process, set up only through the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from bench._server import cli, fresh_database, server

from tests.conftest import IN_CI, _pg_available


@dataclass
class Running:
    base: str
    url: str
    key: str
    other_key: str

    def client(self, key: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.base + "/api/v1", timeout=30,
                            headers={"Authorization": f"Bearer {key or self.key}"})


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def running(request: pytest.FixtureRequest) -> Iterator[Running]:
    if request.param == "postgresql":
        problem = _pg_available()
        if problem:
            if IN_CI:
                pytest.fail(f"PostgreSQL is required under CI: {problem}")
            pytest.skip(f"PostgreSQL unavailable: {problem}")
    with fresh_database(request.param) as url:
        cli(url, "init")
        cli(url, "tenant", "create", "acme", "--name", "Acme Supply")
        cli(url, "tenant", "create", "rival", "--name", "Rival Supply")
        key = cli(url, "apikey", "create", "--tenant", "acme")
        other = cli(url, "apikey", "create", "--tenant", "rival")
        with server(url, extra_env={"ENTREPOT_WEBHOOK_ALLOW_PRIVATE": "1"}) as base:
            yield Running(base, url, key, other)
