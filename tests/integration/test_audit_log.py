"""The tamper-evident audit log on a real ledger: checkpoints, bundles, proofs, API and CLI."""

from __future__ import annotations

import base64
import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from ledger.audit import merkle
from ledger.audit.note import open_checkpoint
from ledger.audit.verify import BundleVerificationError, canonical_bundle, verify_bundle
from ledger.bootstrap import bootstrap
from ledger.domain.values import Actor, RequestContext
from projections.checkpoints import CheckpointMismatchError
from projections.stream import org_checkpoints
from tests.integration.test_projections import populate

ACTOR = Actor(kind="cli", id="test")


@pytest.fixture
def small_ledger(make_settings: Any) -> Any:
    led = bootstrap(make_settings(checkpoint_every_events=10))
    led.runner.batch_size = 25
    yield led
    led.close()


def stored_checkpoints(ledger: Any) -> list[Any]:
    with ledger.writer.connect() as conn:
        return conn.execute(
            sa.select(org_checkpoints).order_by(org_checkpoints.c.org_id, org_checkpoints.c.size)
        ).all()


def test_checkpoints_are_signed_in_the_stream_batch_every_n_events(small_ledger: Any) -> None:
    ledger = small_ledger
    orgs = populate(ledger, orgs=2, licenses=4, records=30)
    ledger.runner.catch_up()
    key = ledger.auditlog.verifier_key()
    rows = stored_checkpoints(ledger)
    for org in orgs:
        mine = [r for r in rows if r.org_id == str(org.id)]
        assert len(mine) >= 2
        sizes = [int(r.size) for r in mine]
        assert all(b - a >= 10 for a, b in itertools.pairwise(sizes))
        leaves = ledger.stream.leaf_hashes(org.id, sizes[-1])
        for r in mine:
            cp = open_checkpoint(r.note, [key], origin=f"license-ledger.local/orgs/{org.id}")
            assert cp.size == r.size and cp.root_hash == merkle.root(leaves[: cp.size])


def test_periodic_signing_covers_unsigned_growth_once(ledger: Any, org: Any) -> None:
    ledger.app.create_policy(org.id, name="p", actor=ACTOR, context=RequestContext())
    ledger.runner.catch_up()
    assert ledger.auditlog.checkpoints.latest(org.id) is None  # 2 events < 1000
    assert ledger.sign_checkpoints() == 1
    assert ledger.sign_checkpoints() == 0
    assert ledger.auditlog.checkpoint(org.id).size == ledger.stream.head(org.id)[0] == 2


def test_a_rebuild_keeps_checkpoints_and_refuses_to_diverge_from_them(small_ledger: Any) -> None:
    ledger = small_ledger
    populate(ledger, orgs=1, licenses=4, records=30)
    ledger.runner.catch_up()
    before = stored_checkpoints(ledger)
    ledger.runner.rebuild("stream")
    assert stored_checkpoints(ledger) == before
    with ledger.writer.begin() as conn:  # pretend history was signed with another root
        first = before[0]
        conn.execute(
            sa.update(org_checkpoints)
            .where(org_checkpoints.c.org_id == first.org_id, org_checkpoints.c.size == first.size)
            .values(root="00" * 32)
        )
    with pytest.raises(CheckpointMismatchError):
        ledger.runner.rebuild("stream")


def real_bundle(ledger: Any) -> tuple[Any, dict[str, Any], str]:
    orgs = populate(ledger, orgs=2, licenses=5, records=8)
    ledger.runner.catch_up()
    org = orgs[0]
    ledger.sign_checkpoints()
    first = ledger.auditlog.checkpoint(org.id).size
    ledger.app.create_policy(org.id, name="late", actor=ACTOR, context=RequestContext())
    ledger.runner.catch_up()
    bundle = ledger.auditlog.bundle(org.id, previous_size=first)
    return org, bundle, ledger.auditlog.verifier_key()


def test_a_bundle_exported_from_the_ledger_verifies_and_every_tampering_fails(ledger: Any) -> None:
    org, bundle, key = real_bundle(ledger)
    data = canonical_bundle(bundle)
    result = verify_bundle(data, [key])
    assert result.size == len(bundle["events"]) == ledger.stream.head(org.id)[0]
    assert result.previous_size is not None and result.previous_size < result.size

    rng = random.Random(2024)
    positions = set(range(64)) | set(range(len(data) - 64, len(data)))
    positions |= set(rng.sample(range(len(data)), 600))
    for i in sorted(positions):
        mutated = data[:i] + bytes([data[i] ^ rng.randrange(1, 256)]) + data[i + 1 :]
        with pytest.raises(BundleVerificationError):
            verify_bundle(mutated, [key])

    events = bundle["events"]
    forged = json.loads(events[3]["envelope"])
    forged["state"] = {"note": "forged"}
    forged_text = json.dumps(forged, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    variants = {
        "reordered": [events[1], events[0], *events[2:]],
        "dropped": events[:2] + events[3:],
        "duplicated": [*events[:3], events[2], *events[3:-1]],
        "inserted": [*events[:3], {"org_seq": 4, "envelope": forged_text}, *events[4:]],
        "truncated": events[:-1],
    }
    for name, evs in variants.items():
        with pytest.raises(BundleVerificationError):
            verify_bundle(canonical_bundle({**bundle, "events": evs}), [key])
        assert name
    other = ledger.auditlog.checkpoint(org.id, result.previous_size).note
    with pytest.raises(BundleVerificationError):
        verify_bundle(canonical_bundle({**bundle, "checkpoint": other}), [key])


def test_a_bundle_exported_after_a_simulated_erasure_still_verifies(ledger: Any) -> None:
    """Erasure is crypto-shredding: the subject's key is destroyed, the stored envelopes (personal
    fields as ciphertext) are untouched. Simulated here: forget the plaintext side (the license
    view's rows), keep the stream, export again. The real cross-check lands with encryption."""
    org, bundle, key = real_bundle(ledger)
    before = verify_bundle(canonical_bundle(bundle), [key])
    from projections.licenses import metadata as licenses_md

    with ledger.writer.begin() as conn:  # stand-in for destroying the subject's data key
        for table in reversed(licenses_md.sorted_tables):
            conn.execute(sa.delete(table))
    ledger.app.create_policy(org.id, name="after erasure", actor=ACTOR, context=RequestContext())
    ledger.runner.catch_up()
    after = ledger.auditlog.bundle(org.id)
    result = verify_bundle(canonical_bundle(after), [key], previous=before.checkpoint)
    assert result.size > before.size
    assert after["events"][: before.size] == bundle["events"]  # stored bytes unchanged


def test_log_api_serves_the_key_checkpoints_and_proofs_that_verify(api: Any, ledger: Any) -> None:
    from uuid import UUID

    import httpx

    org_id = UUID(api.org_id)
    ledger.app.create_policy(org_id, name="p", actor=ACTOR, context=RequestContext())
    assert ledger.runner.wait_for(ledger.runner.head(), 20)
    assert api.get("/v1/log/checkpoint").status_code == 404
    ledger.sign_checkpoints()
    small = ledger.auditlog.checkpoint(org_id).size
    for _ in range(3):
        ledger.app.create_policy(org_id, name="q", actor=ACTOR, context=RequestContext())
    assert ledger.runner.wait_for(ledger.runner.head(), 20)
    ledger.sign_checkpoints()

    key = httpx.get(f"{api.base_url}/v1/log/key").json()  # public: no API key
    vkey = key["verifier_key"]
    cp = api.get("/v1/log/checkpoint").json()
    checkpoint = open_checkpoint(cp["note"], [vkey], origin=cp["origin"])
    assert cp["origin"] == f"license-ledger.local/orgs/{org_id}"
    assert cp["size"] == checkpoint.size > small
    old = api.get("/v1/log/checkpoint", params={"size": small}).json()
    old_cp = open_checkpoint(old["note"], [vkey], origin=cp["origin"])

    events = api.get("/v1/events", params={"limit": 1000}).json()["data"]
    raw = ledger.stream.envelopes(org_id, checkpoint.size)
    for seq in range(1, checkpoint.size + 1):
        proof = api.get("/v1/log/proof/inclusion", params={"seq": seq}).json()
        assert proof["size"] == checkpoint.size
        leaf = merkle.leaf_hash(raw[seq - 1][1].encode())
        assert leaf.hex() == events[seq - 1]["leaf_hash"]
        path = [base64.b64decode(h) for h in proof["proof"]]
        merkle.verify_inclusion(leaf, seq - 1, checkpoint.size, path, checkpoint.root_hash)
    cons = api.get("/v1/log/proof/consistency", params={"from": small}).json()
    merkle.verify_consistency(
        old_cp.size,
        checkpoint.size,
        [base64.b64decode(h) for h in cons["proof"]],
        old_cp.root_hash,
        checkpoint.root_hash,
    )
    bad = api.get("/v1/log/proof/inclusion", params={"seq": 99, "size": 99})
    assert bad.status_code == 422

    _, token = ledger.create_api_key(
        org_id, name="no audit", permissions=["licenses:read"], actor=ACTOR
    )
    denied = httpx.get(
        f"{api.base_url}/v1/log/checkpoint", headers={"Authorization": f"Bearer {token}"}
    )
    assert denied.status_code == 403


def test_cli_exports_a_bundle_and_verifies_it_offline(
    ledger: Any, org: Any, settings: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from ledger.cli.main import app

    ledger.app.create_policy(org.id, name="p", actor=ACTOR, context=RequestContext())
    ledger.runner.catch_up()
    ledger.sign_checkpoints()
    first = ledger.auditlog.checkpoint(org.id)
    ledger.app.create_policy(org.id, name="q", actor=ACTOR, context=RequestContext())
    monkeypatch.setenv("LEDGER_DATA_DIR", str(settings.data_dir))
    if settings.database_url:
        monkeypatch.setenv("LEDGER_DATABASE_URL", settings.database_url)
        monkeypatch.setenv("LEDGER_DATABASE_SCHEMA", settings.database_schema)
    runner = CliRunner()
    out = tmp_path / "bundle.json"
    prev = tmp_path / "prev.note"
    prev.write_text(first.note, encoding="utf-8")
    keyfile = tmp_path / "log.key"

    res = runner.invoke(app, ["audit", "log-key"])
    assert res.exit_code == 0, res.output
    keyfile.write_text(res.stdout, encoding="utf-8")
    res = runner.invoke(app, ["audit", "bundle", "--org", str(org.id), "-o", str(out)])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app, ["audit", "verify", str(out), "--key", str(keyfile), "--previous", str(prev), "--json"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert (
        report["valid"]
        and report["size"] == first.size + 1
        and report["previous_size"] == first.size
    )

    out.write_bytes(out.read_bytes().replace(b'"org_seq":2', b'"org_seq":9'))
    res = runner.invoke(app, ["audit", "verify", str(out), "--key", str(keyfile)])
    assert res.exit_code == 1
    assert res.stderr.count("\n") == 1 and "does not verify" in res.stderr
