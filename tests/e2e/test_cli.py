"""End to end through the command line: real subprocesses of this worktree's CLI.

Each test gets its own data directory (and, on PostgreSQL, its own schema). Every command is
called with ``--json`` and its output parsed; errors are exactly one ``error:`` line on stderr.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow  # one Python process per command


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Cli:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, ok: bool = True) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "ledger.cli", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        assert "Traceback" not in proc.stderr, proc.stderr
        if ok:
            assert proc.returncode == 0, f"{args}: {proc.returncode}\n{proc.stderr}"
        return result


def one_error_line(result: Result) -> str:
    assert result.code != 0
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("error: "), result.err
    assert "Traceback" not in result.err
    return lines[0]


@pytest.fixture
def cli(backend: str, tmp_path: Path, pg_schema: Callable[[], str]) -> Cli:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LEDGER_") or k.startswith("LEDGER_TEST_")
    }
    env.update(
        LEDGER_DATA_DIR=str(tmp_path / "data"),
        PYTHONPATH=str(ROOT),
        COLUMNS="200",
        NO_COLOR="1",
        PYTHONWARNINGS="error",
    )
    if backend == "postgres":
        env["LEDGER_DATABASE_URL"] = os.environ["LEDGER_TEST_POSTGRES_URL"]
        env["LEDGER_DATABASE_SCHEMA"] = pg_schema()
    return Cli(env)


@pytest.fixture
def org(cli: Cli) -> dict[str, Any]:
    out = cli("org", "create", "Acme", "--json").json()
    assert set(out) == {"id", "name", "admin_api_key"}
    assert out["name"] == "Acme"
    assert out["admin_api_key"].startswith("lk_")
    return dict(out)


def policy(cli: Cli, org: dict[str, Any], *extra: str) -> dict[str, Any]:
    out = cli("policy", "create", "Pro", "--org", org["id"], *extra, "--json").json()
    assert out["org_id"] == org["id"]
    return dict(out)


def issue(cli: Cli, org: dict[str, Any], policy_id: str, *extra: str) -> dict[str, Any]:
    out = cli("license", "issue", "--org", org["id"], "--policy", policy_id, *extra, "--json")
    lic = out.json()
    assert lic["key"].startswith("key/")
    assert lic["status"] == "ACTIVE"
    return dict(lic)


def test_org_policy_issue_validate_and_list(cli: Cli, org: dict[str, Any]) -> None:
    pol = policy(cli, org, "--duration", "3600", "--max-machines", "2", "-e", "pro")
    assert (pol["duration_seconds"], pol["max_machines"], pol["entitlements"]) == (3600, 2, ["pro"])
    lic = issue(cli, org, pol["id"], "-e", "extra")
    assert lic["entitlements"] == ["extra", "pro"]

    valid = cli("license", "validate", lic["key"], "--org", org["id"], "--json").json()
    assert valid == {"valid": True, "code": "VALID", "license_id": lic["id"]}
    scoped = cli(
        "license", "validate", lic["key"], "--org", org["id"], "-e", "nope", "--json", ok=False
    )
    assert scoped.code == 1
    assert scoped.json()["code"] == "ENTITLEMENTS_MISSING"
    forged = cli("license", "validate", lic["key"][:-8], "--org", org["id"], "--json", ok=False)
    assert forged.code == 1
    assert forged.json() == {"valid": False, "code": "NOT_FOUND", "license_id": None}

    second = issue(cli, org, pol["id"])
    listed = cli("license", "list", "--org", org["id"], "--json").json()
    assert isinstance(listed, list)
    assert {x["id"] for x in listed} == {lic["id"], second["id"]}
    assert all(x["status"] == "ACTIVE" for x in listed)

    orgs = cli("org", "list", "--json").json()
    assert [o["id"] for o in orgs] == [org["id"]]
    pols = cli("policy", "list", "--org", org["id"], "--json").json()
    assert [p["id"] for p in pols] == [pol["id"]]
    shown = cli("license", "show", lic["id"], "--org", org["id"], "--json").json()
    assert shown["key"] == lic["key"]


def test_lifecycle_commands_and_one_line_errors(cli: Cli, org: dict[str, Any]) -> None:
    pol = policy(cli, org, "--duration", "3600", "--max-machines", "1")
    lid = issue(cli, org, pol["id"])["id"]
    o = ("--org", org["id"], "--json")

    assert cli("license", "suspend", lid, *o).json()["status"] == "SUSPENDED"
    again = cli("license", "suspend", lid, *o, ok=False)
    line = one_error_line(again)
    assert "ILLEGAL_TRANSITION" in line
    assert again.out == ""

    assert cli("license", "reinstate", lid, *o).json()["status"] == "ACTIVE"
    one_error_line(cli("license", "reinstate", lid, *o, ok=False))

    act = cli("license", "activate", lid, "--fingerprint", "fp-1", *o).json()
    assert [m["fingerprint"] for m in act["machines"]] == ["fp-1"]
    full = cli("license", "activate", lid, "--fingerprint", "fp-2", *o, ok=False)
    assert "MACHINE_LIMIT_EXCEEDED" in one_error_line(full)
    assert cli("license", "check-in", lid, "--fingerprint", "fp-1", *o).json()["last_check_in"]
    assert cli("license", "deactivate", lid, "--fingerprint", "fp-1", *o).json()["machines"] == []
    ents = cli("license", "entitlements", lid, "--add", "beta", *o).json()
    assert ents["entitlements"] == ["beta"]
    renewed = cli("license", "renew", lid, "--from-now", "--duration", "60", *o).json()
    assert renewed["status"] == "ACTIVE"
    assert cli("license", "revoke", lid, *o).json()["status"] == "REVOKED"
    one_error_line(cli("license", "revoke", lid, *o, ok=False))

    # other one-line errors: unknown license, bad uuid, unknown policy, bad time
    missing = "00000000-0000-4000-8000-000000000000"
    assert "LICENSE_NOT_FOUND" in one_error_line(cli("license", "suspend", missing, *o, ok=False))
    one_error_line(cli("license", "show", "nope", *o, ok=False))
    one_error_line(
        cli("license", "issue", "--org", org["id"], "--policy", missing, "--json", ok=False)
    )
    one_error_line(
        cli(
            "license",
            "issue",
            "--org",
            org["id"],
            "--policy",
            pol["id"],
            "--expires-at",
            "soon",
            "--json",
            ok=False,
        )
    )
    past = (datetime.now(UTC) - timedelta(days=1)).isoformat()
    one_error_line(
        cli(
            "license",
            "issue",
            "--org",
            org["id"],
            "--policy",
            pol["id"],
            "--expires-at",
            past,
            "--json",
            ok=False,
        )
    )


def test_offline_verify_with_exported_key_set_and_rotation(
    cli: Cli, org: dict[str, Any], tmp_path: Path
) -> None:
    pol = policy(cli, org, "--duration", "3600")
    lic = issue(cli, org, pol["id"])
    keyset = tmp_path / "keyset.json"
    exported = cli("keys", "export", "-o", str(keyset), "--json").json()
    assert exported["path"] == str(keyset)
    assert len(exported["kids"]) == 1
    # what a customer's app does: verify with the published key set only
    from ledger.offline import KeySet

    assert len(KeySet.from_json(keyset.read_text())) == 1

    ok = cli("verify", lic["key"], "--keyset", str(keyset), "--json").json()
    assert ok["valid"] is True
    assert ok["claims"]["license_id"] == lic["id"]
    assert ok["claims"]["org_id"] == org["id"]
    assert ok["claims"]["kid"] == exported["kids"][0]

    head, _, sig = lic["key"].rpartition(".")
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    for bad in (f"{head}.{flipped}", lic["key"][:-5]):
        res = cli("verify", bad, "--keyset", str(keyset), "--json", ok=False)
        one_error_line(res)
        assert res.json() == {"valid": False}
    one_error_line(cli("verify", lic["key"], "--keyset", str(tmp_path / "nope.json"), ok=False))
    (tmp_path / "bad.json").write_text("[" * 5000)
    one_error_line(cli("verify", lic["key"], "--keyset", str(tmp_path / "bad.json"), ok=False))

    listed = cli("keys", "list", "--json").json()
    assert [k["status"] for k in listed] == ["active"]
    new_kid = cli("keys", "rotate", "--json").json()["active_kid"]
    assert new_kid != exported["kids"][0]
    statuses = {k["kid"]: k["status"] for k in cli("keys", "list", "--json").json()}
    assert statuses == {exported["kids"][0]: "verify-only", new_kid: "active"}

    rotated = tmp_path / "rotated.json"
    cli("keys", "export", "-o", str(rotated), "--json")
    # the old key still verifies, with the new key set and the old one
    for ks in (rotated, keyset):
        res = cli("verify", lic["key"], "--keyset", str(ks), "--json").json()
        assert res["claims"]["license_id"] == lic["id"]
    # new keys are signed by the new kid
    fresh = issue(cli, org, pol["id"])
    claims = cli("verify", fresh["key"], "--keyset", str(rotated), "--json").json()["claims"]
    assert claims["kid"] == new_kid
    # ... which the old key set does not know
    one_error_line(cli("verify", fresh["key"], "--keyset", str(keyset), "--json", ok=False))

    # retiring the old key: what it signed stops verifying offline
    retired = cli("keys", "retire", exported["kids"][0], "--json").json()
    assert retired == {"kid": exported["kids"][0], "status": "retired"}
    after = tmp_path / "after.json"
    cli("keys", "export", "-o", str(after))
    one_error_line(cli("verify", lic["key"], "--keyset", str(after), "--json", ok=False))
    one_error_line(cli("keys", "retire", new_kid, "--json", ok=False))


def test_history_as_of(cli: Cli, org: dict[str, Any]) -> None:
    pol = policy(cli, org, "--duration", "3600")
    lic = issue(cli, org, pol["id"])
    o = ("--org", org["id"], "--json")
    suspended = cli("license", "suspend", lid := lic["id"], *o).json()
    revoked = cli("license", "revoke", lid, *o).json()

    at_issue = cli("history", lid, "--as-of", lic["created_at"], *o).json()
    assert at_issue["status"] == "ACTIVE"
    assert at_issue["key"] is None
    between = cli("history", lid, "--as-of", suspended["updated_at"], *o).json()
    assert between["status"] == "SUSPENDED"
    now = cli("history", lid, *o).json()
    assert now["status"] == "REVOKED"
    assert now["version"] == revoked["version"]

    before = datetime.fromisoformat(lic["created_at"]) - timedelta(seconds=1)
    res = cli("history", lid, "--as-of", before.isoformat(), *o, ok=False)
    assert "LICENSE_NOT_FOUND" in one_error_line(res)
    for garbage in ("garbage", "2024-01-01T00:00:00", ""):
        one_error_line(cli("history", lid, "--as-of", garbage, *o, ok=False))
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert "future" in one_error_line(cli("history", lid, "--as-of", future, *o, ok=False))


def test_api_keys_and_bad_settings(cli: Cli, org: dict[str, Any]) -> None:
    made = cli("apikey", "create", "--org", org["id"], "-p", "licenses:read", "--json").json()
    assert made["permissions"] == ["licenses:read"]
    assert made["api_key"].startswith("lk_")
    out = cli("apikey", "revoke", made["key_id"], "--org", org["id"], "--json").json()
    assert out == {"key_id": made["key_id"], "revoked": True}
    one_error_line(cli("apikey", "create", "--org", "not-a-uuid", "--json", ok=False))

    bad = Cli({**cli.env, "LEDGER_DATABASE_URL": "mysql://nope"})
    one_error_line(bad("org", "list", "--json", ok=False))
