#!/usr/bin/env python3
"""Benchmark the read side.

    .venv/bin/python scripts/bench_projections.py [--events 200000] [--export-rows 1000000]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

1. Catch-up: the validation (licenses) + audit views built from N events, against the raw rate of
   reading the same notification log (select only, no decoding) in the same run.
2. Validations/s sustained, each recorded durably before it is answered, with group commit
   (--threads concurrent validators), against one record per transaction in the same run.
3. Audit export of M rows: peak RSS of a subprocess exporting M rows vs one exporting M/10 rows.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ledger.bootstrap import Ledger, bootstrap  # noqa: E402
from ledger.domain.records import ValidationRecord  # noqa: E402
from ledger.domain.validation import Scope  # noqa: E402
from ledger.domain.values import Actor, RequestContext  # noqa: E402
from ledger.settings import Settings  # noqa: E402
from projections.audit import AuditProjection, audit  # noqa: E402
from projections.licenses import LicenseProjection  # noqa: E402
from projections.runtime import ProjectionRunner  # noqa: E402

ACTOR, CTX = Actor(kind="cli", id="bench"), RequestContext()


def populate(led: Ledger, n: int) -> tuple[Any, str]:
    org = led.app.create_organization("bench", ACTOR, CTX)
    policy = led.app.create_policy(org.id, name="p", max_machines=5, actor=ACTOR, context=CTX)
    keys = []
    for i in range(200):
        issued = led.app.issue_license(org.id, policy_id=policy.id, actor=ACTOR, context=CTX)
        led.app.activate_machine(org.id, issued.license.id, f"m{i}", actor=ACTOR, context=CTX)
        keys.append(issued.key)
    remaining = n - led.runner.head()
    while remaining > 0:
        batch = min(2000, remaining)
        led.app.save(
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
                for _ in range(batch)
            )
        )
        remaining -= batch
    return org, keys[0]


def raw_read_rate(led: Ledger) -> float:
    head = led.runner.head()
    t0 = time.perf_counter()
    pos = 0
    while pos < head:
        got = led.app.recorder.select_notifications(pos + 1, 1000)
        pos = got[-1].id
    return head / (time.perf_counter() - t0)


def catch_up_rate(led: Ledger) -> float:
    runner = ProjectionRunner(
        led.app, led.writer, [LicenseProjection(), AuditProjection()], reader=led.reader
    )
    with led.writer.begin() as conn:
        for p in runner.projections:
            p.clear(conn)
            runner._write_position(conn, p.name, 0, None)
    head = led.runner.head()
    t0 = time.perf_counter()
    runner.catch_up()
    dt = time.perf_counter() - t0
    return head / dt  # events brought into BOTH views per second


def records_rate(
    led: Ledger, org_id: Any, key: str, seconds: float, threads_n: int
) -> tuple[float, float]:
    led.recorder.start()
    stop = time.monotonic() + seconds
    counts = [0] * threads_n

    def work(i: int) -> None:
        scope = Scope(fingerprint="m0")
        while time.monotonic() < stop:
            led.validator.validate_key(
                org_id, key, scope, datetime.now(UTC), actor=ACTOR, context=CTX
            )
            counts[i] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(threads_n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    grouped = sum(counts) / (time.perf_counter() - t0)
    # baseline: the same validations, each record committed in its own transaction
    from ledger.validating import ValidationService

    class OnePerTransaction:
        def record(self, record: Any) -> None:
            led.app.save(record)

    direct = ValidationService(led.licenses, OnePerTransaction())
    counts = [0] * threads_n
    stop = time.monotonic() + seconds

    def single(i: int) -> None:
        scope = Scope(fingerprint="m0")
        while time.monotonic() < stop:
            direct.validate_key(org_id, key, scope, datetime.now(UTC), actor=ACTOR, context=CTX)
            counts[i] += 1

    threads = [threading.Thread(target=single, args=(i,)) for i in range(threads_n)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    single_rate = sum(counts) / (time.perf_counter() - t0)
    return grouped, single_rate


def export_child(data_dir: str, org_id: str, limit_rows: int) -> None:
    """Run in a subprocess: export the org's audit trail to /dev/null, print peak RSS (KiB)."""
    from projections.audit import AuditFilter

    led = bootstrap(Settings(data_dir=Path(data_dir), run_workers=False))
    rows = 0
    t0 = time.perf_counter()
    with open("/dev/null", "w") as sink:
        for line in led.audit.export(uuid.UUID(org_id), AuditFilter(), "jsonl"):
            sink.write(line)
            rows += 1
            if rows >= limit_rows:
                break
    dt = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "rows": rows,
                "seconds": dt,
                "max_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            }
        )
    )
    led.close()


def export_bench(rows: int) -> tuple[dict[str, Any], dict[str, Any]]:
    with tempfile.TemporaryDirectory() as tmp:
        led = bootstrap(Settings(data_dir=Path(tmp), run_workers=False))
        org_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        chunk = 50_000
        with led.writer.begin() as conn:
            for start in range(0, rows, chunk):
                conn.execute(
                    audit.insert(),
                    [
                        {
                            "id": i + 1,
                            "org_id": org_id,
                            "occurred_at": now,
                            "event_id": str(uuid.uuid4()),
                            "action": "validation.recorded",
                            "actor": "anonymous:-",
                            "actor_subject": None,
                            "ip": "203.0.113.7",
                            "user_agent": "bench/1.0",
                            "license_id": None,
                            "changes": '{"code":"VALID","valid":true}',
                        }
                        for i in range(start, min(rows, start + chunk))
                    ],
                )
        led.close()
        out = []
        for limit in (rows // 10, rows):
            res = subprocess.run(
                [sys.executable, __file__, "--export-child", tmp, org_id, str(limit)],
                capture_output=True,
                text=True,
                check=True,
            )
            out.append(json.loads(res.stdout.strip().splitlines()[-1]))
        return out[0], out[1]


def run_store(label: str, settings: Settings, events: int, seconds: float, threads: int) -> None:
    led = bootstrap(settings)
    t0 = time.perf_counter()
    org, key = populate(led, events)
    print(f"[{label}] populated {led.runner.head()} events in {time.perf_counter() - t0:.1f} s")
    raw = raw_read_rate(led)
    ours = catch_up_rate(led)
    print(
        f"[{label}] catch-up licenses+audit views: {ours:,.0f} events/s; raw log read "
        f"{raw:,.0f} events/s; ratio {ours / raw:.1%} (target >= 10,000 events/s)"
    )
    grouped, single = records_rate(led, org.id, key, seconds, threads)
    print(
        f"[{label}] recorded validations, {threads} concurrent, group commit: {grouped:,.0f}/s; "
        f"one per transaction {single:,.0f}/s; x{grouped / single:.1f} (target >= 5,000/s)"
    )
    led.close()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--export-child":
        export_child(*sys.argv[2:4], int(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--export-rows", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--postgres", default=None)
    parser.add_argument("--threads", type=int, default=64, help="concurrent validators")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run_store(
            "SQLite",
            Settings(data_dir=Path(tmp), run_workers=False),
            args.events,
            args.seconds,
            args.threads,
        )
    if args.postgres:
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            with tempfile.TemporaryDirectory() as tmp:
                run_store(
                    "PostgreSQL",
                    Settings(
                        data_dir=Path(tmp),
                        database_url=args.postgres,
                        database_schema=schema,
                        run_workers=False,
                    ),
                    args.events,
                    args.seconds,
                    args.threads,
                )
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    small, big = export_bench(args.export_rows)
    print(
        f"[export] {big['rows']:,} rows in {big['seconds']:.1f} s "
        f"({big['rows'] / big['seconds']:,.0f} rows/s), "
        f"peak RSS {big['max_rss_kib'] / 1024:.0f} MiB; {small['rows']:,} rows: peak RSS "
        f"{small['max_rss_kib'] / 1024:.0f} MiB (flat memory: the two should be close)"
    )


if __name__ == "__main__":
    main()
