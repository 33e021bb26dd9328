#!/usr/bin/env python3
"""Benchmark: lifecycle commands/s vs raw eventsourcing saves; offline verify/s vs raw PyNaCl.

    .venv/bin/python scripts/bench_ledger.py [--commands 2000] [--verifies 20000]
        [--postgres postgresql://postgres@127.0.0.1:5432/test]

Each figure is printed next to its baseline, measured in the same process on the same store.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event


class Counter(Aggregate):
    """The baseline: one small event per save, as the library's own examples do."""

    class Started(Aggregate.Created):
        n: int

    class Bumped(Aggregate.Event):
        by: int

    @event(Started)
    def __init__(self, n: int) -> None:
        self.n = n

    @event(Bumped)
    def bump(self, by: int) -> None:
        self.n += by


def raw_saves(env: dict[str, str], n: int) -> float:
    app: Application[Any] = Application(env=env)
    counters = [Counter(n=0) for _ in range(50)]
    app.save(*counters)
    t0 = time.perf_counter()
    for i in range(n):
        c = app.repository.get(counters[i % 50].id)
        c.bump(1)
        app.save(c)
    dt = time.perf_counter() - t0
    app.close()
    return n / dt


def ledger_commands(settings: Any, n: int) -> float:
    from ledger.bootstrap import bootstrap
    from ledger.domain.values import Actor, RequestContext

    led = bootstrap(settings)
    actor, ctx = Actor(kind="cli", id="bench"), RequestContext()
    org = led.app.create_organization("bench", actor, ctx)
    policy = led.app.create_policy(org.id, name="p", max_machines=None, actor=actor, context=ctx)
    lics = [
        led.app.issue_license(org.id, policy_id=policy.id, actor=actor, context=ctx).license.id
        for _ in range(50)
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


def offline(n: int) -> tuple[float, float]:
    from nacl.signing import SigningKey

    from ledger.crypto.licensekey import license_claims, sign_license_key
    from ledger.offline import KeySet, key_id, verify

    sk = SigningKey.generate()
    kid = key_id(bytes(sk.verify_key))
    now = datetime.now(UTC)
    claims = license_claims(
        kid=kid,
        org_id=uuid.uuid4(),
        license_id=uuid.uuid4(),
        policy_id=uuid.uuid4(),
        issued_at=now,
        expires_at=None,
        entitlements=["pro", "sync"],
        max_machines=3,
    )
    key = sign_license_key(claims, sk)
    keyset = KeySet.from_dict(
        {
            "keys": [
                {
                    "kid": kid,
                    "algorithm": "ED25519",
                    "public_key": bytes(sk.verify_key).hex(),
                    "status": "active",
                }
            ]
        }
    )
    signed_part, _, _ = key.rpartition(".")
    message = signed_part.encode()
    signature = sk.sign(message).signature
    vk = sk.verify_key
    # Interleave blocks of both so that noise from other processes hits both alike.
    raw_t = ours_t = 0.0
    block = 500
    for _ in range(max(1, n // block)):
        t0 = time.perf_counter()
        for _ in range(block):
            vk.verify(message, signature)
        t1 = time.perf_counter()
        for _ in range(block):
            verify(key, keyset, now=now)
        t2 = time.perf_counter()
        raw_t += t1 - t0
        ours_t += t2 - t1
    done = max(1, n // block) * block
    return done / ours_t, done / raw_t


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--verifies", type=int, default=20000)
    parser.add_argument("--postgres", default=None, help="PostgreSQL URL to also bench on")
    args = parser.parse_args()

    from ledger.settings import Settings
    from ledger.storage import event_store_env

    print(f"{'what':44} {'ours/s':>10} {'baseline/s':>11} {'ratio':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        s = Settings(data_dir=Path(tmp) / "ledger", run_workers=False)
        raw_env = {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(Path(tmp) / "raw.db"),
        }
        base = raw_saves(raw_env, args.commands)
        ours = ledger_commands(s, args.commands)
        print(
            f"{'lifecycle commands, SQLite (target >= 70%)':44} "
            f"{ours:10.0f} {base:11.0f} {ours / base:7.0%}"
        )
    if args.postgres:
        import psycopg

        schema = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.postgres, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            with tempfile.TemporaryDirectory() as tmp:
                s = Settings(
                    data_dir=Path(tmp),
                    database_url=args.postgres,
                    database_schema=schema,
                    run_workers=False,
                )
                env = event_store_env(s)
                env["POSTGRES_SCHEMA"] = schema
                base = raw_saves({**env, "SQLITE_DBNAME": ""}, args.commands)
                ours = ledger_commands(s, args.commands)
                print(
                    f"{'lifecycle commands, PostgreSQL (target >= 70%)':44} "
                    f"{ours:10.0f} {base:11.0f} {ours / base:7.0%}"
                )
        finally:
            with psycopg.connect(args.postgres, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    ours, raw = offline(args.verifies)
    print(f"{'offline verify (target >= 80%)':44} {ours:10.0f} {raw:11.0f} {ours / raw:7.0%}")


if __name__ == "__main__":
    main()
