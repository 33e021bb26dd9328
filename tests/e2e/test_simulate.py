"""scripts/simulate against a real server: a small workload over two orgs, zero mismatches."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.domain.values import Actor, RequestContext

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "simulate"

pytestmark = pytest.mark.slow


def test_script_is_executable_python() -> None:
    assert SCRIPT.read_text().startswith("#!/usr/bin/env python3\n")
    assert SCRIPT.stat().st_mode & 0o111
    # stdlib and httpx only: nothing from the project
    assert "ledger" not in "".join(
        line for line in SCRIPT.read_text().splitlines() if line.startswith(("import", "from"))
    )


def test_simulate_small_workload(api: httpx.Client, ledger: Any) -> None:
    actor = Actor(kind="cli", id="test")
    other = ledger.app.create_organization("Other", actor, RequestContext())
    _, other_token = ledger.create_api_key(other.id, name="sim", permissions=["admin"], actor=actor)
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--url",
            str(api.base_url).rstrip("/"),
            "--api-key",
            api.token,  # type: ignore[attr-defined]
            "--api-key",
            other_token,
            "--licenses",
            "60",
            "--workers",
            "4",
            "--seed",
            "7",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "mismatches 0" in proc.stdout
    assert "VALID (valid)" in proc.stdout
    assert "activate past limit -> 409 MACHINE_LIMIT_EXCEEDED" in proc.stdout


def test_simulate_refuses_bad_usage() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--url",
            "http://127.0.0.1:9",
            "--orgs",
            "2",
            "--api-key",
            "x",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--orgs" in proc.stderr
