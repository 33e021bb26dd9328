"""Root command: serve, verify (offline), history, and the command groups."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer

from ledger.cli import admin, licenses, ops, privacy, webhooks
from ledger.cli.common import JsonOpt, console, emit, fail, opened, parse_time, parse_uuid

app = typer.Typer(
    name="license-ledger",
    help="License Ledger: issue, validate and audit software licenses.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(admin.org_app, name="org")
app.add_typer(admin.policy_app, name="policy")
admin.keys_app.command("rotate-kek")(privacy.keys_rotate_kek)
app.add_typer(admin.keys_app, name="keys")
app.add_typer(admin.apikey_app, name="apikey")
app.add_typer(licenses.app, name="license")
app.add_typer(ops.worker_app, name="worker")
app.add_typer(ops.projections_app, name="projections")
app.add_typer(ops.audit_app, name="audit")
app.add_typer(privacy.subject_app, name="subject")
app.command("events")(ops.events_command)
app.add_typer(webhooks.webhook_app, name="webhook")
app.command("tail")(webhooks.tail_command)


@app.command()
def serve(
    host: str = typer.Option(None, help="bind address (default LEDGER_HOST or 127.0.0.1)"),
    port: int = typer.Option(None, help="port (default LEDGER_PORT or 8080)"),
    workers: bool = typer.Option(True, "--workers/--no-workers", help="run projections in-process"),
    first_org: str = typer.Option("Default", help="name of the org created on a fresh store"),
    tls_cert: Path = typer.Option(
        None, "--tls-cert", help="PEM certificate: serve HTTPS, TLS 1.3 only"
    ),
    tls_key: Path = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert"),
    nats_url: str = typer.Option(None, "--nats-url", help="also publish events to NATS JetStream"),
    json_out: bool = JsonOpt,
) -> None:
    """Run the HTTP API (and, by default, the projections) on the configured store."""
    import uvicorn

    from ledger.api.app import create_app
    from ledger.api.serving import server_config

    if (tls_cert is None) != (tls_key is None):
        fail("give both --tls-cert and --tls-key, or neither")

    with opened() as ledger:
        ledger.settings.run_workers = workers
        if nats_url:
            ledger.settings.nats_url = nats_url
        created = ledger.ensure_first_org(first_org)
        if created is not None:
            org, token = created
            emit(
                {"org_id": str(org.id), "org_name": org.name, "admin_api_key": token},
                json_out,
                lambda d: console.print(
                    f"[bold]First organization created[/bold]: {d['org_name']} ({d['org_id']})\n"
                    f"Admin API key (shown once, keep it safe):\n  {d['admin_api_key']}\n"
                ),
            )
        bind_host = host or ledger.settings.host
        bind_port = port or ledger.settings.port
        api = create_app(ledger=ledger)
        if workers:
            ledger.start_maintenance()
        scheme = "https" if tls_cert else "http"
        console.print(
            f"License Ledger listening on {scheme}://{bind_host}:{bind_port}", highlight=False
        )
        config = server_config(
            api, host=bind_host, port=bind_port, tls_cert=tls_cert, tls_key=tls_key
        )
        uvicorn.Server(config).run()


@app.command()
def verify(
    key: str = typer.Argument(..., help="the license key"),
    keyset: Path = typer.Option(..., "--keyset", help="key set JSON file (from 'keys export')"),
    skew: int = typer.Option(300, min=0, max=86_400, help="allowed clock skew in seconds"),
    json_out: bool = JsonOpt,
) -> None:
    """Verify a license key offline with the public key set only."""
    from datetime import timedelta

    from ledger.offline import InvalidLicenseKey, KeySet

    try:
        ks = KeySet.from_json(keyset.read_text())
    except (OSError, ValueError) as exc:
        fail(f"cannot read key set {keyset}: {exc}")
    try:
        claims = _verify(key, ks, skew=timedelta(seconds=skew))
    except InvalidLicenseKey:
        if json_out:
            emit({"valid": False}, True)
        fail("license key is invalid (malformed, forged, expired or signed by an unknown key)")
    emit({"valid": True, "claims": claims}, json_out, lambda d: console.print_json(json.dumps(d)))


def _verify(key: str, ks: Any, *, skew: Any) -> dict[str, Any]:
    from ledger.offline import verify as offline_verify

    return offline_verify(key, ks, now=datetime.now(UTC), skew=skew)


@app.command()
def history(
    license_id: str = typer.Argument(...),
    org: str = typer.Option(..., "--org", envvar="LEDGER_ORG", help="organization id"),
    as_of: str = typer.Option(None, "--as-of", help="RFC 3339 instant; default now"),
    json_out: bool = JsonOpt,
) -> None:
    """Replay a license's events and print its state at a moment (default: now)."""
    from ledger.api.present import license_out

    org_id, lid = parse_uuid(org, "--org"), parse_uuid(license_id, "LICENSE_ID")
    with opened() as ledger:
        now = ledger.app.clock()
        at = parse_time(as_of, "--as-of") if as_of is not None else now
        if at > now:
            fail("--as-of is in the future")
        lic = ledger.app.license_as_of(org_id, lid, at)
        out = license_out(ledger, lic, at, with_key=False)
        out["as_of"] = at
        emit(out, json_out, licenses.print_license)


def main() -> None:
    """Entry point: usage errors become one line on stderr (exit 2), like every other error."""
    import click

    try:
        # Without standalone mode click returns typer.Exit's code instead of exiting.
        rc = app(standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        sys.exit(130)
    except click.ClickException as exc:
        sys.stderr.write(f"error: {exc.format_message()}\n")
        sys.exit(exc.exit_code)
    except OverflowError:
        sys.stderr.write("error: a number or date is out of range\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
