"""``license-ledger license …``: issue, read, list and every lifecycle command."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from uuid import UUID

import typer
from rich.table import Table

from ledger.cli.common import (
    JsonOpt,
    cli_actor,
    cli_context,
    console,
    emit,
    fail,
    opened,
    parse_time,
    parse_uuid,
)

app = typer.Typer(help="Licenses.", no_args_is_help=True)

OrgOpt = typer.Option(..., "--org", envvar="LEDGER_ORG", help="organization id (or LEDGER_ORG)")


def print_license(d: dict[str, Any]) -> None:
    max_machines = d["max_machines"] if d["max_machines"] is not None else "∞"
    lines = [
        f"[bold]license[/bold] {d['id']}  status [bold]{d['status']}[/bold]",
        f"  policy      {d['policy_id']}",
        f"  expires     {d['expires_at'] or 'never'}",
        f"  machines    {len(d['machines'])}/{max_machines}"
        + "".join(f"\n    - {m['fingerprint']} {m.get('name') or ''}" for m in d["machines"]),
        f"  entitlements {', '.join(d['entitlements']) or '-'}",
    ]
    if d.get("as_of"):
        lines.insert(1, f"  as of       {d['as_of']}")
    if d.get("key"):
        lines.append(f"  key         {d['key']}")
    console.print("\n".join(lines), highlight=False, soft_wrap=True)


def _run(org: str, license_id: str, json_out: bool, op: Callable[[Any, UUID, UUID], Any]) -> None:
    from ledger.api.present import license_out

    org_id, lid = parse_uuid(org, "--org"), parse_uuid(license_id, "LICENSE_ID")
    with opened() as ledger:
        lic = op(ledger, org_id, lid)
        emit(license_out(ledger, lic, ledger.app.clock()), json_out, print_license)


@app.command("issue")
def issue(
    org: str = OrgOpt,
    policy: str = typer.Option(..., "--policy"),
    expires_at: str = typer.Option(None, "--expires-at"),
    max_machines: int = typer.Option(None, "--max-machines"),
    entitlement: list[str] = typer.Option([], "--entitlement", "-e"),
    name: str = typer.Option(None, "--licensee-name"),
    email: str = typer.Option(None, "--licensee-email"),
    metadata: str = typer.Option(None, "--metadata", help="JSON object"),
    json_out: bool = JsonOpt,
) -> None:
    """Issue a license and print its key."""
    from ledger.api.present import license_out

    org_id, policy_id = parse_uuid(org, "--org"), parse_uuid(policy, "--policy")
    expiry = parse_time(expires_at, "--expires-at") if expires_at is not None else None
    meta = None
    if metadata:
        try:
            meta = json.loads(metadata)
        except ValueError:
            fail("--metadata must be a JSON object")
    with opened() as ledger:
        issued = ledger.app.issue_license(
            org_id,
            policy_id=policy_id,
            expires_at=expiry,
            max_machines=max_machines,
            entitlements=entitlement,
            licensee_name=name,
            licensee_email=email,
            metadata=meta,
            actor=cli_actor(),
            context=cli_context(),
        )
        emit(license_out(ledger, issued.license, ledger.app.clock()), json_out, print_license)


@app.command("show")
def show(license_id: str, org: str = OrgOpt, json_out: bool = JsonOpt) -> None:
    """Show a license, with its current key."""
    _run(org, license_id, json_out, lambda led, o, lid: led.app.get_license(o, lid))


@app.command("list")
def list_(
    org: str = OrgOpt,
    limit: int = typer.Option(100, min=1, max=10_000),
    json_out: bool = JsonOpt,
) -> None:
    """List an organization's licenses (from the read model)."""
    org_id = parse_uuid(org, "--org")
    with opened(catch_up=True) as ledger:
        now = ledger.app.clock()
        rows = ledger.licenses.list(org_id, limit=limit)
        out = [
            {
                "id": r["id"],
                "policy_id": r["policy_id"],
                "status": r["state"].status(now).value,
                "expires_at": r["expires_at"],
                "machines": len(r["machines"]),
                "max_machines": r["max_machines"],
                "entitlements": r["entitlements"],
            }
            for r in rows
        ]

        def human(d: list[dict[str, Any]]) -> None:
            table = Table("id", "status", "expires_at", "machines", "entitlements")
            for r in d:
                max_machines = r["max_machines"] if r["max_machines"] is not None else "∞"
                table.add_row(
                    r["id"],
                    r["status"],
                    str(r["expires_at"] or "never"),
                    f"{r['machines']}/{max_machines}",
                    ",".join(r["entitlements"]),
                )
            console.print(table)

        emit(out, json_out, human)


@app.command("suspend")
def suspend(license_id: str, org: str = OrgOpt, reason: str = "", json_out: bool = JsonOpt) -> None:
    """Suspend a license."""
    _run(
        org,
        license_id,
        json_out,
        lambda led, o, lid: led.app.suspend(
            o, lid, reason, actor=cli_actor(), context=cli_context()
        ),
    )


@app.command("reinstate")
def reinstate(license_id: str, org: str = OrgOpt, json_out: bool = JsonOpt) -> None:
    """Reinstate a suspended license."""
    _run(
        org,
        license_id,
        json_out,
        lambda led, o, lid: led.app.reinstate(o, lid, actor=cli_actor(), context=cli_context()),
    )


@app.command("renew")
def renew(
    license_id: str,
    org: str = OrgOpt,
    from_now: bool = typer.Option(
        False, "--from-now", help="renew from now instead of from expiry"
    ),
    duration: int = typer.Option(None, "--duration", help="seconds; default the policy's duration"),
    json_out: bool = JsonOpt,
) -> None:
    """Renew a license by its policy's duration (or --duration)."""
    basis = "from_now" if from_now else "from_expiry"
    _run(
        org,
        license_id,
        json_out,
        lambda led, o, lid: led.app.renew(
            o, lid, basis=basis, duration_seconds=duration, actor=cli_actor(), context=cli_context()
        ),
    )


@app.command("revoke")
def revoke(license_id: str, org: str = OrgOpt, reason: str = "", json_out: bool = JsonOpt) -> None:
    """Revoke a license (terminal; it stays in the ledger)."""
    _run(
        org,
        license_id,
        json_out,
        lambda led, o, lid: led.app.revoke(
            o, lid, reason, actor=cli_actor(), context=cli_context()
        ),
    )


@app.command("activate")
def activate(
    license_id: str,
    fingerprint: str = typer.Option(..., "--fingerprint"),
    name: str = typer.Option("", "--name"),
    org: str = OrgOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Activate a machine on a license (idempotent per fingerprint)."""
    _run(
        org,
        license_id,
        json_out,
        lambda led, o, lid: led.app.activate_machine(
            o, lid, fingerprint, name, actor=cli_actor(), context=cli_context()
        )[0],
    )


@app.command("deactivate")
def deactivate(
    license_id: str,
    fingerprint: str = typer.Option(..., "--fingerprint"),
    org: str = OrgOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Deactivate a machine."""
    _run(
        org,
        license_id,
        json_out,
        lambda led, o, lid: led.app.deactivate_machine(
            o, lid, fingerprint, actor=cli_actor(), context=cli_context()
        ),
    )


@app.command("entitlements")
def entitlements(
    license_id: str,
    add: list[str] = typer.Option([], "--add"),
    remove: list[str] = typer.Option([], "--remove"),
    org: str = OrgOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Add or remove entitlements."""
    _run(
        org,
        license_id,
        json_out,
        lambda led, o, lid: led.app.change_entitlements(
            o, lid, add=add, remove=remove, actor=cli_actor(), context=cli_context()
        ),
    )


@app.command("check-in")
def check_in(
    license_id: str,
    fingerprint: str = typer.Option(None, "--fingerprint"),
    org: str = OrgOpt,
    json_out: bool = JsonOpt,
) -> None:
    """Record a check-in."""
    _run(
        org,
        license_id,
        json_out,
        lambda led, o, lid: led.app.check_in(
            o, lid, fingerprint, actor=cli_actor(), context=cli_context()
        ),
    )


@app.command("validate")
def validate_cmd(
    key: str = typer.Argument(...),
    org: str = OrgOpt,
    fingerprint: str = typer.Option(None, "--fingerprint"),
    entitlement: list[str] = typer.Option([], "--entitlement", "-e"),
    json_out: bool = JsonOpt,
) -> None:
    """Validate a key online (against the read model), as the HTTP endpoint does."""
    from ledger.domain.validation import Scope

    org_id = parse_uuid(org, "--org")
    with opened(catch_up=True) as ledger:
        result = ledger.validator.validate_key(
            org_id,
            key,
            Scope(fingerprint=fingerprint, entitlements=frozenset(entitlement)),
            ledger.app.clock(),
        )
        emit(
            {"valid": result.valid, "code": result.code.value, "license_id": result.license_id},
            json_out,
            lambda d: console.print(f"{'valid' if d['valid'] else 'invalid'}: {d['code']}"),
        )
        if not result.valid:
            raise typer.Exit(1)
