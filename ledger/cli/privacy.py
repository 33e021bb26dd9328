"""Operator commands for personal data and encryption keys: subject erase/export, rotate-kek."""

from __future__ import annotations

import typer

from ledger.cli.common import JsonOpt, console, emit, fail, opened, parse_uuid

subject_app = typer.Typer(help="Data subjects: erasure and export.", no_args_is_help=True)


@subject_app.command("erase")
def subject_erase(
    subject_id: str = typer.Argument(..., help="data subject id"),
    org: str = typer.Option(..., "--org", envvar="LEDGER_ORG"),
    json_out: bool = JsonOpt,
) -> None:
    """Destroy a subject's key, fence it, record Subject.Erased and scrub the views."""
    from ledger.bootstrap import cli_actor
    from ledger.privacy import erase_subject

    org_id = parse_uuid(org, "--org")
    with opened() as ledger:
        out = erase_subject(ledger, org_id, subject_id, cli_actor())
        emit(
            out,
            json_out,
            lambda d: console.print(
                f"subject {d['subject_id']} erased"
                + (" (it already was)" if d["already_erased"] else "")
                + f"; {d['audit_rows_scrubbed']} audit rows scrubbed"
            ),
        )


@subject_app.command("export")
def subject_export(
    subject_id: str = typer.Argument(..., help="data subject id"),
    org: str = typer.Option(..., "--org", envvar="LEDGER_ORG"),
) -> None:
    """Print everything held about a subject, as JSON."""
    from ledger.privacy import export_subject

    org_id = parse_uuid(org, "--org")
    with opened(catch_up=True) as ledger:
        emit(export_subject(ledger, org_id, subject_id), True)


def keys_rotate_kek(
    keep_old: bool = typer.Option(False, "--keep-old", help="keep retired KEKs in the key file"),
    json_out: bool = JsonOpt,
) -> None:
    """Make a new key-encryption key active and re-wrap every data key and signing key under it.

    With the key file, a new KEK is generated and appended (the service keeps running: it reloads
    the file when it meets the new KEK id). With LEDGER_KEK, put the new KEK last in the variable
    first (old ones before it), run this, then drop the old ones.
    """
    from ledger.bootstrap import kek_file
    from ledger.crypto.kek import add_kek_to_file, drop_keks_from_file

    with opened() as ledger:
        new_id = None
        if ledger.settings.kek is None:
            new_id = add_kek_to_file(kek_file(ledger.settings))
        if ledger.keystore is None:
            fail("this ledger has no key store")
        data_keys = ledger.keystore.rewrap_all()
        signing_keys = ledger.keyring.reseal_all()
        if ledger.auditlog is not None:
            signing_keys += ledger.auditlog.signer.reseal_all()
        active = ledger.keystore.keks.active.kek_id
        in_use = ledger.keystore.kek_ids_in_use()
        if set(in_use) - {active}:
            fail(f"some data keys are still under old KEKs: {in_use}; run rotate-kek again")
        dropped: list[str] = []
        if new_id is not None and not keep_old:
            dropped = drop_keks_from_file(kek_file(ledger.settings), {active})
        out = {
            "active_kek": active,
            "rewrapped_data_keys": data_keys,
            "resealed_signing_keys": signing_keys,
            "dropped_keks": dropped,
        }
        emit(
            out,
            json_out,
            lambda d: console.print(
                f"active KEK {d['active_kek']}: "
                f"re-wrapped {d['rewrapped_data_keys']} data keys and "
                f"{d['resealed_signing_keys']} signing keys; dropped {d['dropped_keks'] or 'none'}"
            ),
        )
