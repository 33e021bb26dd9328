#!/usr/bin/env python3
"""Benchmark: offline audit-bundle verification, events/s, vs raw SHA-256 over the same envelopes.

    .venv/bin/python scripts/bench_audit.py [--events 200000] [--repeat 3]

Builds a bundle of realistic envelopes (``ledger.events.envelope`` over a ~400-byte state with an
encrypted-looking personal field), signs a checkpoint, then times in the same process:

- baseline: ``hashlib.sha256`` over every envelope's bytes (no tree, no parsing, no signature);
- verify:   ``ledger.audit.verify.verify_bundle`` on the canonical bundle bytes (JSON parse,
            canonical check, per-event org/seq check, RFC 6962 leaf + tree hashing, signature).

Best of ``--repeat`` runs is reported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nacl.signing import SigningKey

from ledger.audit import merkle
from ledger.audit.note import make_checkpoint, sign_note, verifier_key
from ledger.audit.verify import FORMAT, canonical_bundle, origin_for, verify_bundle
from ledger.events import envelope

NAME = "license-ledger.bench"


def build(n: int) -> tuple[bytes, list[bytes], str]:
    org = str(uuid.uuid4())
    key = SigningKey(b"\x05" * 32)
    envs = []
    for i in range(1, n + 1):
        state = {
            "license_id": str(uuid.UUID(int=i)),
            "policy_id": str(uuid.UUID(int=7)),
            "licensee_email": {
                "v": 1,
                "subject": str(uuid.UUID(int=i % 97)),
                "ciphertext": "AQ" + "x" * 86,
            },
            "entitlements": ["pro", "sso"],
            "expires_at": "2027-01-31T00:00:00.000Z",
            "timestamp": {"_type_": "datetime_iso", "_data_": "2026-01-31T00:00:00.000000+00:00"},
        }
        envs.append(
            envelope(
                org_id=org,
                org_seq=i,
                originator_id=uuid.UUID(int=i // 4),
                originator_version=i % 4 + 1,
                topic="ledger.domain.license:License.MachineActivated",
                state=json.dumps(state).encode(),
            )
        )
    root = merkle.root([merkle.leaf_hash(e) for e in envs])
    origin = origin_for(NAME, org)
    bundle = {
        "format": FORMAT,
        "org_id": org,
        "origin": origin,
        "verifier_key": verifier_key(NAME, key.verify_key),
        "checkpoint": sign_note(make_checkpoint(origin, n, root), NAME, key),
        "events": [{"org_seq": i + 1, "envelope": e.decode()} for i, e in enumerate(envs)],
    }
    return canonical_bundle(bundle), envs, verifier_key(NAME, key.verify_key)


def best(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    data, envs, vkey = build(args.events)
    n = args.events

    def baseline() -> None:
        for e in envs:
            hashlib.sha256(e).digest()

    base = best(baseline, args.repeat)
    ver = best(lambda: verify_bundle(data, [vkey]), args.repeat)
    print(
        f"python {platform.python_version()} on {platform.machine()}; {n} events, "
        f"bundle {len(data) / 1e6:.1f} MB, avg envelope {sum(map(len, envs)) / n:.0f} B"
    )
    print(f"baseline raw sha256 over envelopes : {n / base:>12,.0f} events/s")
    print(
        f"verify_bundle (offline verifier)   : {n / ver:>12,.0f} events/s "
        f"({ver / base:.1f}x the baseline time)"
    )


if __name__ == "__main__":
    main()
