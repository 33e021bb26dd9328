"""Raw SQL lives in one module, ``ledger/sql.py``; everything else speaks SQLAlchemy expressions."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOME = ROOT / "ledger" / "sql.py"
RAW = re.compile(
    r"""\btext\(|exec_driver_sql\(|\.execute\(\s*[rbfu]*["']|\bsql\.SQL\(|\.executescript\("""
)


def raw_sql_outside_its_module() -> list[str]:
    found = []
    for package in ("ledger", "projections"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == HOME:
                continue
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if RAW.search(line):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    return found


def test_raw_sql_appears_only_in_ledger_sql() -> None:
    assert raw_sql_outside_its_module() == []


def test_the_scan_recognises_raw_sql() -> None:
    for line in (
        'conn.execute(sa.text("SELECT 1"))',
        "conn.exec_driver_sql('BEGIN')",
        'cur.execute("PRAGMA x")',
        'c.execute(f"DROP {t}")',
        'sql.SQL("LISTEN {}")',
    ):
        assert RAW.search(line), line
    assert not RAW.search("conn.execute(sa.select(t))")
    assert RAW.search(HOME.read_text(encoding="utf-8"))
