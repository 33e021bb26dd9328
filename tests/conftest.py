"""Shared fixtures: stores on SQLite and PostgreSQL, a bootstrapped ledger, a real HTTP server."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

POSTGRES_URL = os.environ.get("LEDGER_TEST_POSTGRES_URL")
REQUIRE_POSTGRES = os.environ.get("LEDGER_TEST_REQUIRE_POSTGRES") == "1"
SKIP_REASON = (
    "PostgreSQL tests need a server: set LEDGER_TEST_POSTGRES_URL="
    "postgresql://postgres@127.0.0.1:5432/test (CI sets it; see .ci/run)"
)


def _postgres_reachable() -> str | None:
    if not POSTGRES_URL:
        return SKIP_REASON
    try:
        import psycopg

        with psycopg.connect(POSTGRES_URL, connect_timeout=3):
            return None
    except Exception as exc:
        return f"PostgreSQL at LEDGER_TEST_POSTGRES_URL is unreachable ({exc}); start it or unset"


_PG_PROBLEM: list[str | None] = []


def postgres_problem() -> str | None:
    if not _PG_PROBLEM:
        _PG_PROBLEM.append(_postgres_reachable())
    return _PG_PROBLEM[0]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        problem = postgres_problem()
        if problem is not None:
            if REQUIRE_POSTGRES:
                pytest.fail(f"CI requires PostgreSQL: {problem}")
            pytest.skip(problem)
    return str(request.param)


@pytest.fixture
def pg_schema() -> Iterator[Callable[[], str]]:
    """Make fresh PostgreSQL schemas for a test and drop them afterwards."""
    import psycopg

    made: list[str] = []

    def make() -> str:
        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        made.append(name)
        return name

    yield make
    if made:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            for name in made:
                conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def make_settings(backend: str, tmp_path: Path, pg_schema: Callable[[], str]) -> Callable[..., Any]:
    """Settings for a fresh, isolated store on the parametrised backend."""
    from ledger.settings import Settings

    schema: list[str] = []

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {"data_dir": tmp_path / "data", "poll_interval": 0.01}
        if backend == "postgres":
            if not schema:
                schema.append(pg_schema())
            values.update(database_url=POSTGRES_URL, database_schema=schema[0])
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Any]) -> Any:
    return make_settings()


@pytest.fixture
def ledger(settings: Any) -> Iterator[Any]:
    from ledger.bootstrap import bootstrap

    led = bootstrap(settings)
    yield led
    led.close()


@pytest.fixture
def org(ledger: Any) -> Any:
    from ledger.domain.values import Actor, RequestContext

    return ledger.app.create_organization("Acme", Actor(kind="cli", id="test"), RequestContext())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """A real uvicorn server on loopback, in a thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # proxy_headers=False: the app resolves X-Forwarded-For itself (LEDGER_TRUSTED_PROXIES).
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", proxy_headers=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)


@pytest.fixture
def api(ledger: Any) -> Iterator[Any]:
    """A running API over ``ledger``, and an httpx client with the first org's admin key."""
    import httpx

    from ledger.api.app import create_app

    created = ledger.ensure_first_org("Acme")
    assert created is not None
    org, token = created
    with (
        LiveServer(create_app(ledger=ledger)) as server,
        httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as client,
    ):
        client.org_id = str(org.id)  # type: ignore[attr-defined]
        client.token = token  # type: ignore[attr-defined]
        yield client
