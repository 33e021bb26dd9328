"""Workers, projections and the audit trail from the command line."""

from __future__ import annotations

import base64
import signal
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ledger.cli.common import JsonOpt, console, emit, fail, opened, parse_time, parse_uuid

worker_app = typer.Typer(help="Run background workers on their own.", no_args_is_help=True)
projections_app = typer.Typer(help="Read models: status and rebuild.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)


def _wait_for_signal() -> None:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set():
        stop.wait(1.0)


@worker_app.command("projections")
def worker_projections() -> None:
    """Follow the ledger and keep every projection up to date until SIGINT/SIGTERM."""
    with opened() as ledger:
        ledger.start_workers()
        ledger.start_maintenance()
        console.print("projections worker running (Ctrl-C to stop)", highlight=False)
        _wait_for_signal()


@projections_app.command("status")
def status(json_out: bool = JsonOpt) -> None:
    """Position and lag (events and seconds) of every projection."""
    with opened() as ledger:
        rows = [
            {
                "name": s.name,
                "position": s.position,
                "head": s.head,
                "lag_events": s.lag_events,
                "lag_seconds": round(s.lag_seconds, 3),
                "updated_at": s.updated_at,
            }
            for s in ledger.runner.status()
        ]

        def human(d: list[dict[str, Any]]) -> None:
            table = Table("projection", "position", "head", "lag (events)", "lag (s)")
            for r in d:
                table.add_row(
                    r["name"],
                    str(r["position"]),
                    str(r["head"]),
                    str(r["lag_events"]),
                    f"{r['lag_seconds']:.3f}",
                )
            console.print(table)

        emit(rows, json_out, human)


@projections_app.command("rebuild")
def rebuild(
    name: str = typer.Argument(..., help="licenses, stream or audit"),
    json_out: bool = JsonOpt,
) -> None:
    """Drop a projection's rows and rebuild it from the whole log, with a progress bar."""
    from ledger.bootstrap import PROJECTION_NAMES

    if name not in PROJECTION_NAMES:
        fail(f"unknown projection {name!r}; choose one of {', '.join(PROJECTION_NAMES)}")
    with opened() as ledger:
        head = ledger.runner.head()
        started = datetime.now(UTC)
        with Progress(
            TextColumn(f"rebuilding {name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            disable=json_out or not sys.stderr.isatty(),
            transient=False,
        ) as progress:
            task = progress.add_task(name, total=head)
            count = ledger.runner.rebuild(
                name, progress=lambda _n, pos, _h: progress.update(task, completed=pos)
            )
        pruned = ledger.prune_audit() if name == "audit" else 0
        seconds = (datetime.now(UTC) - started).total_seconds()
        emit(
            {
                "projection": name,
                "events": count,
                "seconds": round(seconds, 3),
                "events_per_second": round(count / seconds) if seconds else None,
                "pruned_validation_rows": pruned,
            },
            json_out,
            lambda d: console.print(
                f"rebuilt {name}: {d['events']} events in {d['seconds']} s", highlight=False
            ),
        )


@audit_app.command("export")
def audit_export(
    org: str = typer.Option(..., "--org", envvar="LEDGER_ORG"),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv"),
    out: Path = typer.Option(None, "--out", "-o"),
    license_id: str = typer.Option(None, "--license"),
    action: str = typer.Option(None, "--action"),
    since: str = typer.Option(None, "--since"),
    until: str = typer.Option(None, "--until"),
) -> None:
    """Stream the audit trail (flat memory) to stdout or a file."""
    from projections.audit import AuditFilter

    if fmt not in ("jsonl", "csv"):
        fail("--format must be 'jsonl' or 'csv'")
    org_id = parse_uuid(org, "--org")
    f = AuditFilter(
        license_id=license_id,
        action=action,
        since=parse_time(since, "--since") if since else None,
        until=parse_time(until, "--until") if until else None,
    )
    with opened(catch_up=True) as ledger:
        try:
            sink = out.open("w", encoding="utf-8", newline="") if out else sys.stdout
        except OSError as exc:
            fail(f"cannot write {out}: {exc.strerror}")
        try:
            for chunk in ledger.audit.export(org_id, f, fmt):
                sink.write(chunk)
        finally:
            if out:
                sink.close()


@audit_app.command("prune")
def audit_prune(
    days: int = typer.Option(
        None, "--older-than-days", help="default LEDGER_AUDIT_RETENTION_DAYS (90)"
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Remove validation records older than the retention period from the audit view."""
    if days is not None and not 1 <= days <= 36_500:
        fail("--older-than-days must be between 1 and 36500")
    with opened(catch_up=True) as ledger:
        n = ledger.prune_audit(days)
        emit(
            {"pruned": n},
            json_out,
            lambda d: console.print(f"pruned {d['pruned']} validation rows"),
        )


@audit_app.command("log-key")
def audit_log_key(json_out: bool = JsonOpt) -> None:
    """Print the audit log's public verifier key (give it to auditors out of band)."""
    with opened() as ledger:
        signer = ledger.auditlog.signer
        emit(
            {"verifier_key": signer.verifier_key(), "name": signer.name},
            json_out,
            lambda d: print(d["verifier_key"]),
        )


@audit_app.command("bundle")
def audit_bundle(
    org: str = typer.Option(..., "--org", envvar="LEDGER_ORG"),
    out: Path = typer.Option(None, "--out", "-o", help="file to write (default stdout)"),
    size: int = typer.Option(None, "--size", min=0, help="a stored checkpoint's size"),
    previous_size: int = typer.Option(
        None, "--previous-size", min=1, help="embed this older checkpoint + consistency proof"
    ),
) -> None:
    """Export the org's events, a signed checkpoint and proofs for offline verification."""
    from ledger.audit.verify import canonical_bundle

    org_id = parse_uuid(org, "--org")
    with opened(catch_up=True) as ledger:
        data = canonical_bundle(
            ledger.auditlog.bundle(org_id, size=size, previous_size=previous_size)
        )
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
        return
    try:
        out.write_bytes(data)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")


@audit_app.command("verify")
def audit_verify(
    bundle: Path = typer.Argument(..., help="bundle file from 'audit bundle'"),
    previous: Path = typer.Option(None, "--previous", help="an earlier signed checkpoint note"),
    key: list[str] = typer.Option(
        None, "--key", help="trusted verifier key, or a file holding it (repeatable)"
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Verify a bundle offline (no database): events, root, signature, consistency."""
    from ledger.audit.verify import BundleVerificationError, verify_bundle

    try:
        data = bundle.read_bytes()
        prev = previous.read_text(encoding="utf-8") if previous else None
        keys = [_key_arg(k) for k in key] if key else None
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read input: {exc}")
    try:
        result = verify_bundle(data, keys, previous=prev)
    except BundleVerificationError as exc:
        if json_out:
            emit({"valid": False, "reason": exc.reason}, True)
        fail(str(exc))
    emit(
        {
            "valid": True,
            "origin": result.origin,
            "org_id": result.org_id,
            "size": result.size,
            "root": base64.b64encode(result.root_hash).decode(),
            "previous_size": result.previous_size,
            "trusted_key": keys is not None,
        },
        json_out,
        lambda d: console.print(
            f"ok: {d['origin']} size {d['size']} verified"
            + ("" if d["trusted_key"] else " (under the bundle's own key: pass --key to trust)"),
            highlight=False,
        ),
    )


def _key_arg(value: str) -> str:
    """A verifier key string, or the path of a file holding one."""
    path = Path(value)
    return path.read_text(encoding="utf-8").strip() if path.is_file() else value


def events_command(
    org: str = typer.Option(..., "--org", envvar="LEDGER_ORG"),
    after: int = typer.Option(0, "--after", min=0, max=2**62, help="start after this org_seq"),
    limit: int = typer.Option(100, "--limit", min=1, max=100_000),
    json_out: bool = JsonOpt,
) -> None:
    """Page through one organization's stream (org_seq, type, time)."""
    org_id = parse_uuid(org, "--org")
    with opened(catch_up=True) as ledger:
        page = ledger.stream.page(org_id, after=after, limit=limit)
        rows = [
            {
                "org_seq": e.org_seq,
                "event_id": e.event_id,
                "type": e.type,
                "aggregate_id": e.aggregate_id,
                "occurred_at": e.occurred_at,
                "envelope": e.envelope,
            }
            for e in page
        ]

        def human(d: list[dict[str, Any]]) -> None:
            for r in d:
                console.print(
                    f"{r['org_seq']:>8}  {r['occurred_at']:%Y-%m-%dT%H:%M:%S}Z  "
                    f"{r['type']:<32} {r['aggregate_id']}",
                    highlight=False,
                )

        emit(rows, json_out, human)


def retention_cutoff(days: int) -> datetime:
    return datetime.now(UTC) - timedelta(days=days)
