"""Architecture rules: the domain stays free of frameworks; every domain error has an API answer."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ledger.api.problems import ERROR_TABLE, status_and_code
from ledger.domain import errors

ROOT = Path(__file__).resolve().parents[2]

DOMAIN_MODULES = (
    "ledger.domain.license",
    "ledger.domain.validation",
    "ledger.domain.apikey",
    "ledger.domain.organization",
    "ledger.domain.webhook",
)
FORBIDDEN = ("fastapi", "sqlalchemy", "nats", "pydantic", "httpx", "starlette", "psycopg")

# Runs in a fresh interpreter, so that modules loaded by other tests cannot hide an import.
PROBE = """
import importlib, json, sys
root, modules = sys.argv[1], sys.argv[2:]
sys.path.insert(0, root)
for name in modules:
    importlib.import_module(name)
print(json.dumps({
    "files": [sys.modules[name].__file__ for name in modules],
    "loaded": sorted(sys.modules),
}))
"""


def loaded_after_importing(*modules: str) -> tuple[list[str], set[str]]:
    result = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(ROOT), *modules],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    return report["files"], set(report["loaded"])


def test_domain_imports_no_framework_database_or_messaging_library() -> None:
    files, loaded = loaded_after_importing(*DOMAIN_MODULES)
    assert all(Path(f).resolve().is_relative_to(ROOT) for f in files), files
    leaked = sorted(m for m in loaded if m.partition(".")[0] in FORBIDDEN)
    assert leaked == []


def test_the_probe_would_notice_a_framework_import() -> None:
    _, loaded = loaded_after_importing("ledger.api.problems")
    assert "fastapi" in loaded
    assert "starlette" in loaded


def all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *all_subclasses(sub)}
    return found


def ledger_errors() -> set[type[errors.LedgerError]]:
    return {errors.LedgerError, *all_subclasses(errors.LedgerError)}


def test_every_domain_error_is_mapped_to_an_http_answer() -> None:
    missing = sorted(c.__qualname__ for c in ledger_errors() - set(ERROR_TABLE))
    assert missing == []


def test_every_domain_error_has_a_distinct_code() -> None:
    codes = [code for _, code in ERROR_TABLE.values()]
    assert len(codes) == len(set(codes))


def test_error_table_maps_only_ledger_errors_to_http_error_statuses() -> None:
    for cls, (status, code) in ERROR_TABLE.items():
        assert issubclass(cls, errors.LedgerError)
        assert 400 <= status < 600 and status != 500  # 503 is "try again", never a bug
        assert code.isupper() and code.replace("_", "").isalpha()


def test_each_error_answers_with_its_own_entry() -> None:
    for cls in ledger_errors():
        assert status_and_code(cls("x")) == ERROR_TABLE[cls]


def test_error_tree_in_the_docstring_names_every_error() -> None:
    doc = errors.__doc__ or ""
    assert all(cls.__name__ in doc for cls in ledger_errors())
