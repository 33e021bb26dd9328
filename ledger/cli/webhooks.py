"""Webhook endpoints, the webhook and NATS workers, and ``tail`` (an example NATS consumer)."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from typing import Any

import typer

from ledger.cli.common import (
    JsonOpt,
    cli_actor,
    cli_context,
    console,
    emit,
    fail,
    opened,
    parse_uuid,
)
from ledger.cli.ops import _wait_for_signal, worker_app

webhook_app = typer.Typer(help="Webhook endpoints and their deliveries.", no_args_is_help=True)
OrgOpt = typer.Option(..., "--org", envvar="LEDGER_ORG", help="organization id")


def _print_endpoint(d: dict[str, Any]) -> None:
    state = "enabled" if d["enabled"] else f"disabled ({d.get('disabled_reason') or ''})"
    console.print(
        f"{d['id']}  {d['url']}  [{', '.join(d['event_types'])}]  {state}", highlight=False
    )
    if d.get("secret"):
        console.print(f"secret (shown once, keep it safe): {d['secret']}", highlight=False)


def _out(ep: Any, **extra: Any) -> dict[str, Any]:
    from ledger.api.routes.webhooks import endpoint_out

    return endpoint_out(ep, **extra)


@webhook_app.command("create")
def create(
    url: str = typer.Argument(..., help="http(s) URL of the receiver"),
    org: str = OrgOpt,
    event_type: list[str] = typer.Option(
        ["license.*"], "--event-type", "-t", help="exact type, '<prefix>.*' or '*'; repeatable"
    ),
    description: str = typer.Option("", "--description"),
    disabled: bool = typer.Option(False, "--disabled", help="create it disabled"),
    json_out: bool = JsonOpt,
) -> None:
    """Register an endpoint; its secret is printed once."""
    org_id = parse_uuid(org, "--org")
    with opened() as ledger:
        ep, secret = ledger.webhooks.create(
            org_id,
            url=url,
            event_types=event_type,
            description=description,
            enabled=not disabled,
            actor=cli_actor(),
            context=cli_context(),
        )
        emit(_out(ep, secret=secret), json_out, _print_endpoint)


@webhook_app.command("list")
def list_endpoints(org: str = OrgOpt, json_out: bool = JsonOpt) -> None:
    """List an organization's endpoints."""
    org_id = parse_uuid(org, "--org")
    with opened() as ledger:
        ledger.webhook_worker().runner.catch_up()  # the endpoint view is the outbox's
        rows = [e.as_dict() for e in ledger.webhook_view.endpoints(org_id)]

        def human(d: list[dict[str, Any]]) -> None:
            for r in d:
                _print_endpoint(r)

        emit(rows, json_out, human)


@webhook_app.command("rotate-secret")
def rotate_secret(
    endpoint: str = typer.Argument(...),
    org: str = OrgOpt,
    overlap: int = typer.Option(
        None, "--overlap", min=0, help="seconds the old secret still signs"
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Make a new secret (printed once); the current one keeps signing during the overlap."""
    from datetime import timedelta

    org_id, ep_id = parse_uuid(org, "--org"), parse_uuid(endpoint, "ENDPOINT")
    with opened() as ledger:
        ep, secret, until = ledger.webhooks.rotate_secret(
            org_id,
            ep_id,
            overlap=None if overlap is None else timedelta(seconds=overlap),
            actor=cli_actor(),
            context=cli_context(),
        )
        emit(_out(ep, secret=secret, previous_secret_expires_at=until), json_out, _print_endpoint)


@webhook_app.command("disable")
def disable(
    endpoint: str = typer.Argument(...),
    org: str = OrgOpt,
    reason: str = typer.Option("disabled by an operator", "--reason"),
    json_out: bool = JsonOpt,
) -> None:
    """Stop deliveries to an endpoint (its pending deliveries wait)."""
    org_id, ep_id = parse_uuid(org, "--org"), parse_uuid(endpoint, "ENDPOINT")
    with opened() as ledger:
        ep = ledger.webhooks.disable(
            org_id, ep_id, reason, actor=cli_actor(), context=cli_context()
        )
        emit(_out(ep), json_out, _print_endpoint)


@webhook_app.command("enable")
def enable(
    endpoint: str = typer.Argument(...), org: str = OrgOpt, json_out: bool = JsonOpt
) -> None:
    """Resume deliveries to an endpoint."""
    org_id, ep_id = parse_uuid(org, "--org"), parse_uuid(endpoint, "ENDPOINT")
    with opened() as ledger:
        ep = ledger.webhooks.enable(org_id, ep_id, actor=cli_actor(), context=cli_context())
        emit(_out(ep), json_out, _print_endpoint)


@webhook_app.command("deliveries")
def deliveries(
    endpoint: str = typer.Argument(...),
    org: str = OrgOpt,
    status: str = typer.Option(None, "--status", help="pending, delivered or failed"),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    json_out: bool = JsonOpt,
) -> None:
    """Deliveries to an endpoint, newest first, with every attempt."""
    if status not in (None, "pending", "delivered", "failed"):
        fail("--status must be pending, delivered or failed")
    org_id, ep_id = parse_uuid(org, "--org"), parse_uuid(endpoint, "ENDPOINT")
    with opened() as ledger:
        rows = ledger.webhook_view.deliveries(org_id, ep_id, status=status, limit=limit)

        def human(d: list[dict[str, Any]]) -> None:
            for r in d:
                last = r["attempts"][-1] if r["attempts"] else {}
                console.print(
                    f"{r['id']:>8}  seq {r['org_seq']:<6} {r['event_type']:<28} {r['status']:<9} "
                    f"attempts {r['attempt_count']}  {last.get('status_code') or ''} "
                    f"{last.get('error') or ''}",
                    highlight=False,
                )

        emit(rows, json_out, human)


@webhook_app.command("redeliver")
def redeliver(
    endpoint: str = typer.Argument(...),
    delivery: int = typer.Argument(..., help="delivery id (from 'webhook deliveries')"),
    org: str = OrgOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Queue a delivery again, with a fresh retry schedule."""
    org_id, ep_id = parse_uuid(org, "--org"), parse_uuid(endpoint, "ENDPOINT")
    with opened() as ledger:
        ledger.webhook_view.redeliver(org_id, ep_id, delivery, ledger.app.clock())
        emit(
            {"id": delivery, "status": "pending"},
            json_out,
            lambda d: console.print(f"delivery {d['id']} queued again"),
        )


@worker_app.command("webhooks")
def worker_webhooks() -> None:
    """Queue and send webhook deliveries until SIGINT/SIGTERM."""
    with opened() as ledger:
        ledger.start_consumers(webhooks=True, nats=False)
        console.print("webhook worker running (Ctrl-C to stop)", highlight=False)
        _wait_for_signal()


@worker_app.command("nats")
def worker_nats(
    nats_url: str = typer.Option(None, "--nats-url", envvar="LEDGER_NATS_URL"),
) -> None:
    """Publish every event to JetStream stream LEDGER until SIGINT/SIGTERM."""
    if not nats_url:
        fail("give --nats-url or set LEDGER_NATS_URL")
    with opened() as ledger:
        ledger.settings.nats_url = nats_url
        ledger.start_consumers(webhooks=False, nats=True)
        console.print(
            f"NATS publisher running against {nats_url} (Ctrl-C to stop)", highlight=False
        )
        _wait_for_signal()


def tail_command(
    nats_url: str = typer.Option(..., "--nats-url", envvar="LEDGER_NATS_URL"),
    org: str = typer.Option(None, "--org", help="only this organization's events"),
    durable: str = typer.Option("ledger-tail", "--durable", help="durable consumer name"),
) -> None:
    """Follow stream LEDGER with a durable pull consumer; print one JSON line per event."""
    from consumers.nats.tail import tail

    stop = threading.Event()

    def show(_msg_id: str, body: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(body, separators=(",", ":")) + "\n")
        sys.stdout.flush()

    runner = threading.Thread(
        target=lambda: asyncio.run(tail(nats_url, show, org=org, durable=durable, stop=stop)),
        daemon=True,
    )
    runner.start()
    try:
        _wait_for_signal()
    finally:
        stop.set()
        runner.join(5)
