"""Webhook endpoints through the running API and the CLI."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from consumers.webhooks.verify import Webhook
from tests.conftest import LiveServer
from tests.integration.webhook_receivers import Receiver


@pytest.fixture
def client(make_settings: Callable[..., Any]) -> Iterator[httpx.Client]:
    from ledger.api.app import create_app
    from ledger.bootstrap import bootstrap

    led = bootstrap(make_settings(webhook_allow_loopback=True, webhook_timeout=2))
    org, token = led.ensure_first_org("Acme")
    with (
        LiveServer(create_app(ledger=led)) as server,
        httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as c,
    ):
        c.ledger = led  # type: ignore[attr-defined]
        c.org_id = str(org.id)  # type: ignore[attr-defined]
        yield c
    led.close()


def test_endpoint_lifecycle_and_deliveries_over_http(client: httpx.Client) -> None:
    receiver = Receiver().start()
    try:
        r = client.post(
            "/v1/webhook-endpoints", json={"url": receiver.url, "description": "billing"}
        )
        assert r.status_code == 201, r.text
        ep = r.json()
        assert ep["secret"].startswith("whsec_") and ep["event_types"] == ["license.*"]
        receiver.verify = Webhook(ep["secret"]).verify
        listed = client.get("/v1/webhook-endpoints").json()
        assert [e["id"] for e in listed] == [ep["id"]]
        assert listed[0]["secret"] is None  # shown once, never listed
        policy = client.post("/v1/policies", json={"name": "p"}).json()
        lic = client.post("/v1/licenses", json={"policy_id": policy["id"]}).json()
        deadline = time.monotonic() + 10
        while not receiver.accepted and time.monotonic() < deadline:
            time.sleep(0.02)
        assert json.loads(receiver.accepted[0].body)["license_id"] == lic["id"]
        path = f"/v1/webhook-endpoints/{ep['id']}/deliveries"
        deliveries = client.get(path).json()
        while deliveries[0]["status"] != "delivered" and time.monotonic() < deadline:
            time.sleep(0.02)  # the attempt is recorded just after the receiver answered
            deliveries = client.get(path).json()
        assert deliveries[0]["status"] == "delivered"
        assert deliveries[0]["attempts"][0]["status_code"] == 204
        redo = client.post(
            f"/v1/webhook-endpoints/{ep['id']}/deliveries/{deliveries[0]['id']}/actions/redeliver"
        )
        assert redo.status_code == 202
        rotated = client.post(
            f"/v1/webhook-endpoints/{ep['id']}/actions/rotate-secret", json={"overlap_seconds": 60}
        ).json()
        assert rotated["secret"] != ep["secret"] and len(rotated["secret_ids"]) == 2
        off = client.post(
            f"/v1/webhook-endpoints/{ep['id']}/actions/disable", json={"reason": "maintenance"}
        ).json()
        assert off["enabled"] is False and off["disabled_reason"] == "maintenance"
        assert client.post(f"/v1/webhook-endpoints/{ep['id']}/actions/enable").json()["enabled"]
        patched = client.patch(
            f"/v1/webhook-endpoints/{ep['id']}", json={"event_types": ["license.revoked"]}
        ).json()
        assert patched["event_types"] == ["license.revoked"]
    finally:
        receiver.stop()


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"url": "ftp://example.com/x"}, 422, "INVALID_WEBHOOK_URL"),
        ({"url": "not a url"}, 422, "INVALID_WEBHOOK_URL"),
        ({"url": "http://user:pw@127.0.0.1/x"}, 422, "INVALID_WEBHOOK_URL"),
        ({"url": "http://10.0.0.7/hook"}, 422, "FORBIDDEN_WEBHOOK_DESTINATION"),
        ({"url": "http://169.254.169.254/latest"}, 422, "FORBIDDEN_WEBHOOK_DESTINATION"),
        (
            {"url": "http://127.0.0.1:9/x", "event_types": ["license.exploded"]},
            422,
            "UNKNOWN_EVENT_TYPE",
        ),
        ({"url": "http://127.0.0.1:9/x", "event_types": ["nope.*"]}, 422, "UNKNOWN_EVENT_TYPE"),
    ],
)
def test_bad_input_is_a_problem_and_nothing_is_written(
    client: httpx.Client, body: dict[str, Any], status: int, code: str
) -> None:
    # The key's first use of the minute is recorded (ApiKeyUse); make it before measuring.
    assert client.get("/v1/me").status_code == 200
    before = client.ledger.app.recorder.max_notification_id()  # type: ignore[attr-defined]
    r = client.post("/v1/webhook-endpoints", json=body)
    assert r.status_code == status and r.json()["code"] == code, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert client.ledger.app.recorder.max_notification_id() == before  # type: ignore[attr-defined]


def test_unknown_endpoints_and_missing_permission(client: httpx.Client) -> None:
    from uuid import UUID

    for path in (
        "/v1/webhook-endpoints/0b6f0c1e-1d2c-4b7a-9f00-000000000000",
        "/v1/webhook-endpoints/nope/deliveries",
    ):
        r = client.get(path)
        assert r.status_code == 404 and r.json()["code"] == "WEBHOOK_ENDPOINT_NOT_FOUND"
    led = client.ledger  # type: ignore[attr-defined]
    from ledger.bootstrap import cli_actor

    _, token = led.create_api_key(
        UUID(client.org_id),
        name="ro",  # type: ignore[attr-defined]
        permissions=["licenses:read"],
        actor=cli_actor(),
    )
    r = client.get("/v1/webhook-endpoints", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"


def test_loopback_is_refused_unless_explicitly_allowed(
    make_settings: Callable[..., Any],
) -> None:
    from ledger.bootstrap import bootstrap
    from ledger.domain.errors import ForbiddenWebhookDestinationError
    from ledger.domain.values import Actor, RequestContext

    led = bootstrap(make_settings())
    try:
        org = led.app.create_organization("A", Actor(kind="cli", id="t"), RequestContext())
        with pytest.raises(ForbiddenWebhookDestinationError):
            led.webhooks.create(
                org.id,
                url="http://127.0.0.1:8000/h",
                event_types=["*"],
                actor=Actor(kind="cli", id="t"),
                context=RequestContext(),
            )
    finally:
        led.close()


def test_cli_webhook_commands(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if backend != "sqlite":
        pytest.skip("the CLI is exercised on the embedded store")
    from ledger.cli.main import app

    monkeypatch.setenv("LEDGER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LEDGER_WEBHOOK_ALLOW_LOOPBACK", "true")
    runner = CliRunner()

    def run(*args: str) -> Any:
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    org = run("org", "create", "Acme")["id"]
    ep = run("webhook", "create", "http://127.0.0.1:9/hook", "--org", org, "-t", "license.*")
    assert ep["secret"].startswith("whsec_")
    assert [e["id"] for e in run("webhook", "list", "--org", org)] == [ep["id"]]
    assert run("webhook", "rotate-secret", ep["id"], "--org", org)["secret"] != ep["secret"]
    assert run("webhook", "disable", ep["id"], "--org", org)["enabled"] is False
    assert run("webhook", "enable", ep["id"], "--org", org)["enabled"] is True
    assert run("webhook", "deliveries", ep["id"], "--org", org) == []
    bad = runner.invoke(app, ["webhook", "create", "http://10.1.2.3/x", "--org", org])
    assert bad.exit_code == 1 and "FORBIDDEN_WEBHOOK_DESTINATION" in bad.output
    missing = runner.invoke(app, ["webhook", "redeliver", ep["id"], "99", "--org", org])
    assert missing.exit_code == 1 and "WEBHOOK_DELIVERY_NOT_FOUND" in missing.output
