"""license-ledger apikey create | list | rotate | revoke."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ledger.cli.main import app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LEDGER_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()

    def run(*args: str) -> Any:
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    return run


def test_cli_lists_and_rotates_api_keys_without_showing_secrets(cli: Any) -> None:
    org = cli("org", "create", "Acme")
    made = cli("apikey", "create", "--org", org["id"], "--permission", "licenses:read")
    listed = cli("apikey", "list", "--org", org["id"])
    assert {k["key_id"] for k in listed} >= {made["key_id"]}
    assert made["api_key"] not in json.dumps(listed)
    rotated = cli("apikey", "rotate", made["key_id"], "--org", org["id"], "--grace", "60")
    assert rotated["api_key"].startswith("lk_live_") and rotated["old_key_id"] == made["key_id"]
    after = {k["key_id"]: k for k in cli("apikey", "list", "--org", org["id"])}
    assert after[made["key_id"]]["successor_key_id"] == rotated["key_id"]
    assert after[rotated["key_id"]]["permissions"] == ["licenses:read"]
    cli("apikey", "revoke", rotated["key_id"], "--org", org["id"])
