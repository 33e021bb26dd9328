"""ledger.offline must load with only the standard library and PyNaCl."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# Runs in a fresh interpreter. -I (isolated) ignores PYTHONPATH and the working directory but keeps
# the interpreter's own site-packages (where nacl lives), so the repo root is put on sys.path here.
PROBE = """
import importlib.abc, json, sys
root, vectors = sys.argv[1], sys.argv[2]
ALLOWED = set(sys.stdlib_module_names) | {"nacl", "_cffi_backend", "ledger"}
blocked = []

def importer():
    frame = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("importlib"):
        frame = frame.f_back
    return frame.f_globals.get("__name__", "?") if frame is not None else "?"

class OnlyStdlibAndNacl(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top not in ALLOWED:
            blocked.append([importer(), name])
            raise ImportError(f"ledger.offline may not import {name}")
        return None

sys.meta_path.insert(0, OnlyStdlibAndNacl())
sys.path.insert(0, root)
before = set(sys.modules)

import ledger.offline as offline

data = json.load(open(vectors, encoding="utf-8"))
case = next(c for c in data["cases"] if c["valid"])
claims = offline.verify(
    case["key"],
    offline.KeySet.from_dict(data["keyset"]),
    now=offline.parse_time(data["now"]),
)
print(json.dumps({
    "file": offline.__file__,
    "verified": claims == case["claims"],
    "blocked": blocked,
    "new_top_level": sorted({m.partition(".")[0] for m in set(sys.modules) - before}),
    "loaded": sorted(sys.modules),
}))
"""


def run_probe() -> dict[str, Any]:
    vectors = ROOT / "tests" / "vectors" / "license_keys.json"
    result = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(ROOT), str(vectors)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_offline_verifier_loads_and_verifies_with_only_stdlib_and_nacl() -> None:
    report = run_probe()
    assert Path(str(report["file"])).resolve().is_relative_to(ROOT)
    assert report["verified"] is True
    # The standard library probes optional modules (e.g. copy tries Jython's "org"); none of the
    # refused imports may come from ledger itself, even one it would survive.
    blocked = report["blocked"]
    assert isinstance(blocked, list)
    assert [b for b in blocked if b[0].partition(".")[0] in {"ledger", "nacl"}] == []
    # "_sodium" is nacl's compiled binding; cffi registers it under its bare name.
    allowed = set(sys.stdlib_module_names) | {"nacl", "_sodium", "_cffi_backend", "ledger"}
    assert set(report["new_top_level"]) <= allowed


def test_offline_verifier_does_not_load_server_dependencies() -> None:
    loaded = set(run_probe()["loaded"])
    for heavy in ("cryptography", "eventsourcing", "fastapi", "sqlalchemy", "pydantic"):
        assert heavy not in loaded
        assert not any(name.startswith(heavy + ".") for name in loaded)
