"""ledger.audit.verify (and its ``python -m`` entry point) runs on the stdlib and PyNaCl only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from ledger.audit.verify import canonical_bundle
from tests.unit.audit_bundles import Log

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import importlib.abc, json, sys
root, bundle, key = sys.argv[1:4]
ALLOWED = set(sys.stdlib_module_names) | {"nacl", "_cffi_backend", "ledger"}
blocked = []

class OnlyStdlibAndNacl(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] not in ALLOWED:
            blocked.append(name)
            raise ImportError(name)
        return None

sys.meta_path.insert(0, OnlyStdlibAndNacl())
sys.path.insert(0, root)
before = set(sys.modules)
from ledger.audit.verify import verify_bundle
result = verify_bundle(open(bundle, "rb").read(), [key])
print(json.dumps({
    "size": result.size,
    "new_top_level": sorted({m.partition(".")[0] for m in set(sys.modules) - before}),
}))
"""


def test_bundle_verifier_loads_and_verifies_with_only_stdlib_and_nacl(tmp_path: Path) -> None:
    log = Log(9)
    bundle = tmp_path / "bundle.json"
    bundle.write_bytes(canonical_bundle(log.bundle()))
    result = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(ROOT), str(bundle), log.verifier],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    assert report["size"] == 9
    allowed = set(sys.stdlib_module_names) | {"nacl", "_sodium", "_cffi_backend", "ledger"}
    assert set(report["new_top_level"]) <= allowed


def test_module_entry_point_prints_one_line_and_exits_non_zero_on_failure(tmp_path: Path) -> None:
    log = Log(4)
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_bytes(canonical_bundle(log.bundle()))
    bad.write_bytes(canonical_bundle(log.bundle()).replace(b'"org_seq":2', b'"org_seq":3'))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this checkout's ledger, not an installed one
    run = lambda path: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "ledger.audit.verify", str(path), "--key", log.verifier],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=60,
        env=env,
    )
    ok, ko = run(good), run(bad)
    assert ok.returncode == 0 and ok.stdout.startswith("ok: "), ok.stderr
    assert ko.returncode == 1 and ko.stderr.count("\n") == 1 and "out of sequence" in ko.stderr
