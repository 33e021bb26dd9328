"""Operator commands: organizations, policies, signing keys, API keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

org_app = typer.Typer(help="Organizations (tenants).", no_args_is_help=True)
policy_app = typer.Typer(
    help="Policies: the terms licenses are issued under.", no_args_is_help=True
)
keys_app = typer.Typer(help="License-signing keys.", no_args_is_help=True)
apikey_app = typer.Typer(help="API keys for the HTTP API.", no_args_is_help=True)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> None:
    table = Table(*columns)
    for r in rows:
        table.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in columns))
    console.print(table)


@org_app.command("create")
def org_create(
    name: str = typer.Argument(...),
    admin_key: bool = typer.Option(
        True, "--admin-key/--no-admin-key", help="also create an admin API key"
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Create an organization (and, by default, an admin API key shown once)."""
    with opened() as ledger:
        org = ledger.app.create_organization(name, cli_actor(), cli_context())
        out: dict[str, Any] = {"id": str(org.id), "name": org.name}
        if admin_key:
            _, token = ledger.create_api_key(
                org.id, name="admin", permissions=["admin"], actor=cli_actor()
            )
            out["admin_api_key"] = token
        emit(
            out,
            json_out,
            lambda d: console.print(
                f"organization {d['id']} ({d['name']})"
                + (
                    f"\nadmin API key (shown once): {d['admin_api_key']}"
                    if "admin_api_key" in d
                    else ""
                )
            ),
        )


@org_app.command("list")
def org_list(json_out: bool = JsonOpt) -> None:
    """List organizations."""
    with opened(catch_up=True) as ledger:
        rows = ledger.licenses.list_orgs()
        emit(rows, json_out, lambda d: _table(d, ["id", "name", "created_at"]))


@policy_app.command("create")
def policy_create(
    name: str = typer.Argument(...),
    org: str = typer.Option(..., "--org", envvar="LEDGER_ORG"),
    duration: int = typer.Option(
        None, "--duration", help="license duration in seconds (default: perpetual)"
    ),
    max_machines: int = typer.Option(None, "--max-machines"),
    strategy: str = typer.Option("RESTRICT_ACCESS", "--expiration-strategy"),
    grace: int = typer.Option(0, "--grace-period", help="seconds"),
    entitlement: list[str] = typer.Option([], "--entitlement", "-e", help="repeatable"),
    json_out: bool = JsonOpt,
) -> None:
    """Create a policy."""
    from ledger.api.present import policy_out

    org_id = parse_uuid(org, "--org")
    with opened() as ledger:
        policy = ledger.app.create_policy(
            org_id,
            name=name,
            duration_seconds=duration,
            max_machines=max_machines,
            expiration_strategy=strategy,
            grace_period_seconds=grace,
            entitlements=entitlement,
            actor=cli_actor(),
            context=cli_context(),
        )
        emit(
            policy_out(policy), json_out, lambda d: console.print(f"policy {d['id']} ({d['name']})")
        )


@policy_app.command("list")
def policy_list(
    org: str = typer.Option(..., "--org", envvar="LEDGER_ORG"), json_out: bool = JsonOpt
) -> None:
    """List an organization's policies."""
    org_id = parse_uuid(org, "--org")
    with opened(catch_up=True) as ledger:
        rows = ledger.licenses.list_policies(org_id)
        emit(
            rows, json_out, lambda d: _table(d, ["id", "name", "duration_seconds", "max_machines"])
        )


@keys_app.command("list")
def keys_list(json_out: bool = JsonOpt) -> None:
    """List signing keys and their status."""
    with opened() as ledger:
        rows = [k.as_dict() for k in ledger.keyring.list()]
        emit(rows, json_out, lambda d: _table(d, ["kid", "status", "public_key", "created_at"]))


@keys_app.command("rotate")
def keys_rotate(json_out: bool = JsonOpt) -> None:
    """Make a new active signing key; the previous one becomes verify-only."""
    with opened() as ledger:
        kid = ledger.keyring.rotate()
        emit(
            {"active_kid": kid},
            json_out,
            lambda d: console.print(f"new active key {d['active_kid']}"),
        )


@keys_app.command("retire")
def keys_retire(kid: str = typer.Argument(...), json_out: bool = JsonOpt) -> None:
    """Retire a verify-only key: keys it signed stop verifying."""
    with opened() as ledger:
        ledger.keyring.set_status(kid, "retired")
        emit({"kid": kid, "status": "retired"}, json_out, lambda d: console.print(f"retired {kid}"))


@keys_app.command("export")
def keys_export(
    out: Path = typer.Option(None, "--out", "-o", help="write to a file instead of stdout"),
    json_out: bool = JsonOpt,
) -> None:
    """Export the public key set (JSON) for offline verification."""
    import json

    with opened() as ledger:
        ledger.keyring.active()  # a fresh store gets its first key
        keyset = ledger.keyring.keyset_dict()
    text = json.dumps(keyset, indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)  # the key set is JSON either way
        return
    try:
        out.write_text(text)
    except OSError as exc:
        fail(f"cannot write {out}: {exc.strerror}")
    summary = {"path": str(out), "kids": [k["kid"] for k in keyset["keys"]]}
    emit(
        summary, json_out, lambda d: console.print(f"wrote {len(d['kids'])} key(s) to {d['path']}")
    )


@apikey_app.command("create")
def apikey_create(
    org: str = typer.Option(..., "--org", envvar="LEDGER_ORG"),
    name: str = typer.Option("api key", "--name"),
    permission: list[str] = typer.Option(["admin"], "--permission", "-p", help="repeatable"),
    expires_at: str = typer.Option(None, "--expires-at"),
    json_out: bool = JsonOpt,
) -> None:
    """Create an API key (the secret is shown once)."""
    org_id = parse_uuid(org, "--org")
    expiry = parse_time(expires_at, "--expires-at") if expires_at is not None else None
    with opened() as ledger:
        key, token = ledger.create_api_key(
            org_id, name=name, permissions=permission, actor=cli_actor(), expires_at=expiry
        )
        emit(
            {
                "key_id": key.key_id,
                "org_id": str(org_id),
                "permissions": key.permissions,
                "api_key": token,
            },
            json_out,
            lambda d: console.print(f"API key {d['key_id']} (shown once): {d['api_key']}"),
        )


@apikey_app.command("revoke")
def apikey_revoke(
    key_id: str = typer.Argument(...),
    org: str = typer.Option(..., "--org", envvar="LEDGER_ORG"),
    json_out: bool = JsonOpt,
) -> None:
    """Revoke an API key now."""
    org_id = parse_uuid(org, "--org")
    with opened() as ledger:
        ledger.app.revoke_api_key(org_id, key_id, actor=cli_actor(), context=cli_context())
        emit(
            {"key_id": key_id, "revoked": True},
            json_out,
            lambda d: console.print(f"revoked {key_id}"),
        )


@apikey_app.command("list")
def apikey_list(
    org: str = typer.Option(..., "--org", envvar="LEDGER_ORG"),
    json_out: bool = JsonOpt,
) -> None:
    """List an organization's API keys (never their secrets)."""
    from ledger.api.routes.apikeys import api_key_out
    from ledger.apikey_usage import ApiKeyUsage

    org_id = parse_uuid(org, "--org")
    with opened() as ledger:
        usage = ApiKeyUsage(ledger.writer, ledger.recorder)
        usage.create_tables()
        keys, after = ledger.app.list_api_keys(org_id, limit=500)
        while after is not None:
            more, after = ledger.app.list_api_keys(org_id, after=after, limit=500)
            keys += more
        used = usage.last_used(k.key_id for k in keys)
        rows = [api_key_out(k, last_used=used.get(k.key_id)) for k in keys]
        for r in rows:
            r.pop("api_key")
        emit(
            rows,
            json_out,
            lambda d: _table(
                d, ["key_id", "name", "permissions", "expires_at", "revoked_at", "last_used_at"]
            ),
        )


@apikey_app.command("rotate")
def apikey_rotate(
    key_id: str = typer.Argument(...),
    org: str = typer.Option(..., "--org", envvar="LEDGER_ORG"),
    grace: int = typer.Option(
        None, "--grace", help="seconds the old key keeps working (default 24 h)"
    ),
    json_out: bool = JsonOpt,
) -> None:
    """Replace an API key (the new secret is shown once); the old one works for the grace period."""
    org_id = parse_uuid(org, "--org")
    with opened() as ledger:
        old, new, token = ledger.rotate_api_key(
            org_id, key_id, actor=cli_actor(), context=cli_context(), grace_seconds=grace
        )
        emit(
            {
                "old_key_id": old.key_id,
                "old_key_ends_at": old.revoked_at,
                "key_id": new.key_id,
                "api_key": token,
            },
            json_out,
            lambda d: console.print(
                f"API key {d['key_id']} (shown once): {d['api_key']}\n"
                f"{d['old_key_id']} keeps working until {d['old_key_ends_at']}"
            ),
        )
