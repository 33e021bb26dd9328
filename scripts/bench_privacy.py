#!/usr/bin/env python3
"""Benchmark: lifecycle commands/s with encryption at rest on vs off, same process, same machine.

    PYTHONPATH=. .venv/bin/python scripts/bench_privacy.py [--commands 3000] [--rounds 3]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

The workload is bench_ledger.py's (activate / check in across 50 licenses), but every command
carries a request context (IP and user agent: personal data, sealed per subject when on). Rounds
alternate off/on so that noise hits both alike; the best round of each is reported.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any


def commands(settings: Any, n: int) -> float:
    from ledger.bootstrap import bootstrap
    from ledger.domain.values import Actor, RequestContext

    led = bootstrap(settings)
    actor = Actor(kind="api_key", id="bench")
    org = led.app.create_organization("bench", actor, RequestContext())
    ctx = RequestContext.of(org.id, actor, "198.51.100.7", "bench-agent/1.0")
    policy = led.app.create_policy(org.id, name="p", max_machines=1000, actor=actor, context=ctx)
    lics = [
        led.app.issue_license(
            org.id,
            policy_id=policy.id,
            licensee_email=f"u{i}@example.com",
            licensee_name=f"User {i}",
            actor=actor,
            context=ctx,
        ).license.id
        for i in range(50)
    ]
    t0 = time.perf_counter()
    for i in range(n):
        lid = lics[i % 50]
        if (i // 50) % 2 == 0:
            led.app.activate_machine(org.id, lid, f"m{i // 100}", actor=actor, context=ctx)
        else:
            led.app.check_in(org.id, lid, actor=actor, context=ctx)
    dt = time.perf_counter() - t0
    led.close()
    return n / dt


def run(make: Any, n: int, rounds: int) -> tuple[float, float]:
    best = {False: 0.0, True: 0.0}
    for _ in range(rounds):
        for enc in (False, True):
            best[enc] = max(best[enc], commands(make(enc), n))
    return best[True], best[False]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--commands", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default=None)
    args = parser.parse_args()

    from ledger.settings import Settings

    print(f"{'lifecycle commands/s':36} {'encrypted':>10} {'plain':>10} {'cost':>7}")
    with tempfile.TemporaryDirectory() as tmp:

        def sqlite(enc: bool) -> Any:
            return Settings(
                data_dir=Path(tmp) / uuid.uuid4().hex, run_workers=False, encryption=enc
            )

        on, off = run(sqlite, args.commands, args.rounds)
        print(f"{'SQLite (target: cost <= 15%)':36} {on:10.0f} {off:10.0f} {1 - on / off:7.1%}")
    if args.postgres:
        import psycopg

        schemas: list[str] = []

        def pg(enc: bool) -> Any:
            schema = f"bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            schemas.append(schema)
            return Settings(
                data_dir=Path(tempfile.mkdtemp()),
                database_url=args.postgres,
                database_schema=schema,
                run_workers=False,
                encryption=enc,
            )

        try:
            on, off = run(pg, args.commands, args.rounds)
            print(
                f"{'PostgreSQL (target: cost <= 15%)':36} "
                f"{on:10.0f} {off:10.0f} {1 - on / off:7.1%}"
            )
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                for s in schemas:
                    conn.execute(f'DROP SCHEMA "{s}" CASCADE')


if __name__ == "__main__":
    main()
