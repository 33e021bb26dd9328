"""End-to-end fixtures: a live server over a ledger built from custom settings."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer


@pytest.fixture
def serve(make_settings: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """``with serve(**settings) as (client, ledger, org_id): ...``: a fresh ledger and server, and a
    client holding the first org's admin key."""
    from ledger.api.app import create_app
    from ledger.bootstrap import bootstrap

    @contextmanager
    def run(**overrides: Any) -> Iterator[tuple[httpx.Client, Any, str]]:
        ledger = bootstrap(make_settings(**overrides))
        try:
            org, token = ledger.ensure_first_org("Acme")
            with (
                LiveServer(create_app(ledger=ledger)) as server,
                httpx.Client(
                    base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
                ) as client,
            ):
                yield client, ledger, str(org.id)
        finally:
            ledger.close()

    yield run


def make_key(client: httpx.Client, **body: Any) -> dict[str, Any]:
    body.setdefault("permissions", ["licenses:read"])
    r = client.post("/v1/api-keys", json=body)
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def as_key(client: httpx.Client, token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}
