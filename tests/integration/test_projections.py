"""Projections: exactly-once, rebuildable row for row, crash-safe under SIGKILL."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ledger.audit.merkle import root
from ledger.domain.records import ValidationRecord
from ledger.domain.validation import Scope
from ledger.domain.values import Actor, RequestContext
from projections.audit import AuditFilter
from projections.audit import metadata as audit_md
from projections.licenses import metadata as licenses_md
from projections.stream import metadata as stream_md

ACTOR = Actor(kind="cli", id="test")
CTX = RequestContext()
TABLES = {"licenses": licenses_md, "stream": stream_md, "audit": audit_md}


def populate(ledger: Any, *, orgs: int = 2, licenses: int = 6, records: int = 50) -> list[Any]:
    made = []
    for o in range(orgs):
        org = ledger.app.create_organization(f"org{o}", ACTOR, CTX)
        policy = ledger.app.create_policy(
            org.id,
            name="p",
            duration_seconds=3600,
            max_machines=2,
            entitlements=["e"],
            actor=ACTOR,
            context=CTX,
        )
        for i in range(licenses):
            issued = ledger.app.issue_license(
                org.id,
                policy_id=policy.id,
                licensee_email=f"u{i}@example.com",
                actor=ACTOR,
                context=CTX,
            )
            lid = issued.license.id
            ledger.app.activate_machine(org.id, lid, f"fp{i}", actor=ACTOR, context=CTX)
            if i % 3 == 0:
                ledger.app.suspend(org.id, lid, "late payment", actor=ACTOR, context=CTX)
            if i % 3 == 1:
                ledger.app.renew(org.id, lid, actor=ACTOR, context=CTX)
            if i % 4 == 0:
                ledger.app.revoke(org.id, lid, actor=ACTOR, context=CTX)
        ledger.app.save(
            *(
                ValidationRecord(
                    org_id=org.id,
                    license_id=None,
                    key_hash=None,
                    valid=False,
                    code="NOT_FOUND",
                    scope={},
                    actor=ACTOR,
                    context=CTX,
                )
                for _ in range(records)
            )
        )
        made.append(org)
    return made


def snapshot(ledger: Any, name: str) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    with ledger.writer.connect() as conn:
        for table in TABLES[name].sorted_tables:
            rows = conn.execute(sa.select(table)).all()
            out[table.name] = sorted(tuple(map(repr, r)) for r in rows)
    return out


def test_rebuilt_views_are_row_for_row_identical(ledger: Any) -> None:
    populate(ledger)
    ledger.runner.catch_up()
    for name in TABLES:
        before = snapshot(ledger, name)
        assert any(before.values()), name
        ledger.runner.rebuild(name)
        assert snapshot(ledger, name) == before, name


def test_each_org_stream_is_numbered_without_gaps_and_its_merkle_root_matches(ledger: Any) -> None:
    orgs = populate(ledger, orgs=3)
    ledger.runner.catch_up()
    total = 0
    for org in orgs:
        events = ledger.stream.page(org.id, after=0, limit=10_000)
        assert [e.org_seq for e in events] == list(range(1, len(events) + 1))
        assert all(e.envelope["org_id"] == str(org.id) for e in events)
        size, head_root = ledger.stream.head(org.id)
        assert size == len(events)
        assert head_root == root([bytes.fromhex(e.leaf_hash) for e in events]).hex()
        total += len(events)
    assert total == ledger.runner.head()


def test_audit_export_streams_every_row_in_both_formats(ledger: Any) -> None:
    orgs = populate(ledger, orgs=1)
    ledger.runner.catch_up()
    rows = list(ledger.audit.iter_rows(orgs[0].id, AuditFilter(), chunk=7))
    jsonl = "".join(ledger.audit.export(orgs[0].id, AuditFilter(), "jsonl")).splitlines()
    parsed = [json.loads(line) for line in jsonl]
    assert [r["id"] for r in parsed] == [r["id"] for r in rows]
    table = list(
        csv.DictReader(io.StringIO("".join(ledger.audit.export(orgs[0].id, AuditFilter(), "csv"))))
    )
    assert [int(r["id"]) for r in table] == [r["id"] for r in rows]
    suspended = ledger.audit.page(orgs[0].id, AuditFilter(action="license.suspended"))
    assert suspended and all(r["action"] == "license.suspended" for r in suspended)
    assert all(r["changes"]["reason"] == "late payment" for r in suspended)


def test_validations_are_recorded_in_the_org_stream(ledger: Any, org: Any) -> None:
    policy = ledger.app.create_policy(org.id, name="p", actor=ACTOR, context=CTX)
    issued = ledger.app.issue_license(org.id, policy_id=policy.id, actor=ACTOR, context=CTX)
    ledger.runner.catch_up()
    now = ledger.app.clock()
    for key in (issued.key, "garbage", issued.key[:-4]):
        ledger.validator.validate_key(org.id, key, Scope(), now)
    ledger.runner.catch_up()
    types = [e.type for e in ledger.stream.page(org.id, limit=100)]
    assert types.count("validation.recorded") == 3
    codes = [
        r["changes"]["code"]
        for r in ledger.audit.page(org.id, AuditFilter(action="validation.recorded"))
    ]
    assert codes == ["VALID", "NOT_FOUND", "NOT_FOUND"]


def test_validations_against_an_unknown_org_are_not_recorded(ledger: Any, org: Any) -> None:
    import uuid

    ledger.runner.catch_up()
    head = ledger.runner.head()
    ledger.validator.validate_key(uuid.uuid4(), "key/x.y", Scope(), ledger.app.clock())
    assert ledger.runner.head() == head


def _worker(settings: Any) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env.update(
        {
            "LEDGER_DATA_DIR": str(settings.data_dir),
            "LEDGER_POLL_INTERVAL": "0.01",
            "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        }
    )
    if settings.database_url:
        env["LEDGER_DATABASE_URL"] = settings.database_url
        env["LEDGER_DATABASE_SCHEMA"] = settings.database_schema
    log = (Path(settings.data_dir) / "worker.log").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-c", "from ledger.cli import main; main()", "worker", "projections"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    finally:
        log.close()


def test_sigkilled_worker_resumes_with_nothing_lost_or_doubled(ledger: Any, settings: Any) -> None:
    populate(ledger, orgs=2, licenses=10, records=6000)
    head = ledger.runner.head()
    proc = _worker(settings)
    try:
        deadline = time.monotonic() + 120
        while True:  # kill it once it is part-way through
            positions = [ledger.runner.position(n) for n in TABLES]
            if any(0 < p < head for p in positions) or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        assert any(p < head for p in positions), "worker finished before it could be killed"
    finally:
        if proc.poll() is None:
            proc.kill()
    proc = _worker(settings)
    try:
        deadline = time.monotonic() + 120
        while any(ledger.runner.position(n) < head for n in TABLES):
            assert time.monotonic() < deadline, "restarted worker did not catch up"
            assert proc.poll() is None, (Path(settings.data_dir) / "worker.log").read_text()
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    caught_up = {name: snapshot(ledger, name) for name in TABLES}
    for name in TABLES:
        ledger.runner.rebuild(name)
        assert snapshot(ledger, name) == caught_up[name], name
