"""The offline bundle verifier accepts exactly the bundles the log signed, and nothing else."""

from __future__ import annotations

import base64
import copy
import json
import random
from typing import Any

import pytest
from nacl.signing import SigningKey

from ledger.audit.verify import BundleVerificationError, canonical_bundle, verify_bundle
from tests.unit.audit_bundles import Log


def ok(bundle: dict[str, Any] | bytes, log: Log, **kw: Any) -> Any:
    data = bundle if isinstance(bundle, bytes) else canonical_bundle(bundle)
    return verify_bundle(data, [log.verifier], **kw)


def bad(bundle: dict[str, Any] | bytes, log: Log, reason: str = "", **kw: Any) -> None:
    data = bundle if isinstance(bundle, bytes) else canonical_bundle(bundle)
    with pytest.raises(BundleVerificationError) as info:
        verify_bundle(data, [log.verifier], **kw)
    assert reason in info.value.reason
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 8, 9, 33])
def test_a_signed_bundle_verifies_under_the_trusted_key(n: int) -> None:
    log = Log(n)
    result = ok(log.bundle(), log)
    assert (result.size, result.root_hash, result.org_id) == (n, log.root(n), log.org)


def test_the_bundles_own_key_only_proves_internal_consistency() -> None:
    log = Log(5)
    assert verify_bundle(canonical_bundle(log.bundle()), None).size == 5
    forger = Log(5, seed=b"\x09" * 32, org=log.org)  # same events, attacker's key
    assert verify_bundle(canonical_bundle(forger.bundle()), None).size == 5
    bad(forger.bundle(), log, "not trusted")


def test_every_single_byte_change_fails() -> None:
    log = Log(6)
    data = canonical_bundle(log.bundle(previous=3))
    ok(data, log)
    rng = random.Random(6962)
    for i in range(len(data)):
        for x in (0x01, rng.randrange(1, 256)):
            mutated = data[:i] + bytes([data[i] ^ x]) + data[i + 1 :]
            with pytest.raises(BundleVerificationError):
                verify_bundle(mutated, [log.verifier])


def test_every_single_byte_change_fails_even_without_a_trusted_key() -> None:
    log = Log(3)
    data = canonical_bundle(log.bundle())
    for i in range(len(data)):
        mutated = data[:i] + bytes([data[i] ^ 0x04]) + data[i + 1 :]
        with pytest.raises(BundleVerificationError):
            verify_bundle(mutated, None)


def test_a_reformatted_bundle_is_rejected() -> None:
    log = Log(3)
    pretty = json.dumps(log.bundle(), indent=2, sort_keys=True).encode()
    bad(pretty, log, "canonical")
    bad(canonical_bundle(log.bundle()).rstrip(b"\n"), log, "canonical")


def events_mutations(log: Log) -> dict[str, list[dict[str, Any]]]:
    events = log.bundle()["events"]

    def renumber(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{"org_seq": i + 1, "envelope": e["envelope"]} for i, e in enumerate(evs)]

    swapped = copy.deepcopy(events)
    swapped[2], swapped[5] = swapped[5], swapped[2]
    forged = log.envelope(4, state={"licensee_email": "evil@example.com"})
    return {
        "reordered": swapped,
        "reordered and renumbered": renumber(swapped),
        "dropped": events[:3] + events[4:],
        "dropped and renumbered": renumber(events[:3] + events[4:]),
        "duplicated": [*events[:4], events[3], *events[4:-1]],
        "duplicated and renumbered": renumber([*events[:4], events[3], *events[4:-1]]),
        "inserted forgery": renumber([*events[:3], {"envelope": forged}, *events[3:-1]]),
        "replaced by forgery": [*events[:3], {"org_seq": 4, "envelope": forged}, *events[4:]],
        "appended forgery": [*events, {"org_seq": 11, "envelope": log.envelope(11)}],
        "truncated": events[:-1],
        "emptied": [],
        "other org's event": [
            *events[:3],
            {
                "org_seq": 4,
                "envelope": Log(10, org="00000000-0000-0000-0000-00000000beef").envelopes[3],
            },
            *events[4:],
        ],
        "not a list": {"0": events[0]},  # type: ignore[dict-item]
        "extra field": [dict(events[0], leaf_hash="x"), *events[1:]],
        "seq as string": [dict(events[0], org_seq="1"), *events[1:]],
        "seq as bool": [dict(events[0], org_seq=True), *events[1:]],
    }


@pytest.mark.parametrize("name", sorted(events_mutations(Log(10))))
def test_reordered_dropped_duplicated_inserted_or_truncated_events_fail(name: str) -> None:
    log = Log(10)
    bundle = log.bundle()
    bundle["events"] = events_mutations(log)[name]
    bad(bundle, log)


def test_a_changed_checkpoint_fails() -> None:
    log = Log(10)
    other_key = SigningKey(b"\x01" * 32)
    cases = {
        "other key": log.checkpoint(10, key=other_key),
        "other origin": log.checkpoint(10, origin=log.origin + "x"),
        "other root": log.checkpoint(10, root_hash=bytes(32)),
        "smaller size": log.checkpoint(9),
        "unsigned": log.checkpoint(10).partition("\n\n")[0] + "\n",
        "garbage": "hello",
    }
    for name, note in cases.items():
        bundle = log.bundle()
        bundle["checkpoint"] = note
        with pytest.raises(BundleVerificationError):
            ok(bundle, log)
        assert name


def test_a_truncated_log_with_its_older_checkpoint_is_caught_by_the_previous_checkpoint() -> None:
    log = Log(10)
    older = log.bundle(7)
    assert ok(older, log).size == 7  # a consistent older bundle is still a valid bundle …
    bad(older, log, "larger than", previous=log.checkpoint(10))  # … but not after seeing size 10


def test_a_previous_checkpoint_must_be_a_prefix() -> None:
    log = Log(10)
    assert ok(log.bundle(), log, previous=log.checkpoint(4)).previous_size == 4
    assert ok(log.bundle(), log, previous=log.checkpoint(10)).previous_size == 10
    fork = Log(10, org=log.org)
    fork.envelopes[2] = fork.envelope(3, state={"rewritten": True})
    bad(log.bundle(), log, "not a prefix", previous=fork.checkpoint(4))
    stranger = Log(4, seed=b"\x02" * 32, org=log.org)
    bad(log.bundle(), log, "signature", previous=stranger.checkpoint(4))
    bad(log.bundle(), log, "signature", previous=Log(4).checkpoint(4))  # another org's origin


def test_an_embedded_previous_checkpoint_and_consistency_proof_are_checked() -> None:
    log = Log(10)
    assert ok(log.bundle(previous=3), log).previous_size == 3
    bundle = log.bundle(previous=3)
    bundle["previous"]["consistency"] = bundle["previous"]["consistency"][:-1]
    bad(bundle, log, "consistency proof")
    bundle = log.bundle(previous=3)
    bundle["previous"]["consistency"][0] = base64.b64encode(bytes(32)).decode()
    bad(bundle, log, "consistency proof")
    bundle = log.bundle(previous=3)
    bundle["previous"]["checkpoint"] = log.checkpoint(3, root_hash=bytes(32))
    bad(bundle, log, "not a prefix")


def test_the_verifier_never_reads_the_state() -> None:
    log = Log(3)
    states = (
        {"blob": "AQ" + "A" * 500},
        {},
        {"nested": [[[]]], "n": None},
        {"x": "\u0000"},
        {"org_id": "someone else", "org_seq": 99},  # nested keys of the same name: not the head
    )
    for state in states:
        log.envelopes.append(log.envelope(len(log.envelopes) + 1, state=state))
    assert ok(log.bundle(), log).size == 8


def test_an_envelope_whose_head_is_contradicted_later_is_read_as_json_reads_it() -> None:
    log = Log(2)
    env = log.envelopes[1]
    log.envelopes[1] = env[:-1] + ',"org_seq":7}'  # duplicate key: json.loads keeps the last
    bad(log.bundle(), log, "another position")


def test_malformed_trusted_keys_and_documents_fail_closed() -> None:
    log = Log(2)
    data = canonical_bundle(log.bundle())
    with pytest.raises(BundleVerificationError):
        verify_bundle(data, ["not-a-key"])
    for junk in (b"", b"[]\n", b"\xff\n", b'{"format":1}\n', b"{" * 100_000):
        with pytest.raises(BundleVerificationError):
            verify_bundle(junk, [log.verifier])
