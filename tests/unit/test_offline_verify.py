"""Offline verification: known-answer vectors, mutation, rotation, key sets, opaque failure."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.crypto.licensekey import license_claims, sign_license_key
from ledger.offline import InvalidLicenseKey, KeySet, key_id, parse_time, verify, verify_now

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "license_keys.json").read_text("utf-8")
)
CASES = {case["name"]: case for case in VECTORS["cases"]}
KEYSET = KeySet.from_dict(VECTORS["keyset"])
NOW = parse_time(VECTORS["now"])
SKEW = timedelta(seconds=VECTORS["skew_seconds"])
VALID_KEYS = [c["key"] for c in VECTORS["cases"] if c["valid"] and len(c["key"]) < 1000]

REQUIRED_CASES = {
    "valid_perpetual",
    "valid_with_expiry_policy_and_machine_limit",
    "valid_non_ascii_entitlement",
    "forged_signature_bit_flip",
    "payload_bit_flip",
    "unpadded_payload",
    "unpadded_signature",
    "truncated_key",
    "missing_prefix",
    "wrong_prefix",
    "two_dots",
    "oversized",
    "unknown_kid",
    "retired_kid",
    "expired",
    "issued_in_future",
    "non_json_payload",
    "json_array_payload",
    "standard_base64_alphabet",
    "signature_too_short",
    "signature_too_long",
    "empty_string",
    "non_canonical_payload_base64",
    "non_canonical_signature_base64",
}


def entry(sk: nacl.signing.SigningKey, status: str) -> dict[str, str]:
    pk = bytes(sk.verify_key)
    return {"kid": key_id(pk), "public_key": pk.hex(), "status": status, "algorithm": "ED25519"}


def issue(sk: nacl.signing.SigningKey, **over: Any) -> str:
    args: dict[str, Any] = {
        "kid": key_id(bytes(sk.verify_key)),
        "org_id": uuid.UUID(int=1),
        "license_id": uuid.UUID(int=2),
        "policy_id": None,
        "issued_at": NOW - timedelta(days=1),
        "expires_at": None,
        "entitlements": ["pro"],
        "max_machines": 2,
    }
    args.update(over)
    return sign_license_key(license_claims(**args), sk)


def assert_rejected(key: Any, keyset: KeySet = KEYSET, now: datetime = NOW) -> None:
    with pytest.raises(InvalidLicenseKey) as info:
        verify(key, keyset, now=now, skew=SKEW)
    assert type(info.value) is InvalidLicenseKey
    assert str(info.value) == "invalid license key"
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_vectors_cover_every_required_case() -> None:
    assert CASES.keys() >= REQUIRED_CASES
    assert any(c["valid"] and c["claims"]["expires_at"] is None for c in CASES.values())
    assert any(c["valid"] and c["claims"]["max_machines"] is None for c in CASES.values())
    assert len(CASES["oversized"]["key"]) > 16384


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if c["valid"]))
def test_valid_vector_key_verifies_to_its_claims(name: str) -> None:
    case = CASES[name]
    assert verify(case["key"], KEYSET, now=NOW, skew=SKEW) == case["claims"]


@pytest.mark.parametrize("name", sorted(n for n, c in CASES.items() if not c["valid"]))
def test_invalid_vector_key_is_rejected(name: str) -> None:
    assert_rejected(CASES[name]["key"])


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.data())
def test_any_single_character_substitution_is_rejected(data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(VALID_KEYS))
    i = data.draw(st.integers(0, len(key) - 1))
    char = data.draw(st.characters().filter(lambda c: c != key[i]))
    assert_rejected(key[:i] + char + key[i + 1 :])


@settings(max_examples=300, deadline=None, database=None)
@given(data=st.data())
def test_any_single_byte_mutation_is_rejected(data: st.DataObject) -> None:
    raw = bytearray(data.draw(st.sampled_from(VALID_KEYS)).encode("ascii"))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] = data.draw(st.integers(0, 255).filter(lambda b: b != raw[i]))
    assert_rejected(raw.decode("latin-1"))


@settings(max_examples=100, deadline=None, database=None)
@given(data=st.data())
def test_deleting_or_inserting_one_character_is_rejected(data: st.DataObject) -> None:
    key = data.draw(st.sampled_from(VALID_KEYS))
    i = data.draw(st.integers(0, len(key) - 1))
    assert_rejected(key[:i] + key[i + 1 :])
    j = data.draw(st.integers(0, len(key)))
    assert_rejected(key[:j] + data.draw(st.characters()) + key[j:])


@pytest.mark.parametrize("key", [None, b"key/", 42, ["key/"], {"key": 1}])
def test_non_string_key_is_rejected_as_invalid(key: Any) -> None:
    assert_rejected(key)


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 5000 + b"]" * 5000,
        b'{"kid":' + b"9" * 5000 + b"}",
        b'{"kid":NaN}',
        b'{"kid":"\\ud800"}',
        '{"kid":"x"}'.encode("utf-16"),
    ],
    ids=["deep_nesting", "huge_integer", "nan", "lone_surrogate", "utf16"],
)
def test_hostile_signed_payload_is_rejected_as_invalid(payload: bytes) -> None:
    sk = nacl.signing.SigningKey(bytes(32))
    keyset = KeySet.from_dict({"keys": [entry(sk, "active")]})
    encoded = base64.urlsafe_b64encode(payload).decode()
    signature = sk.sign(f"key/{encoded}".encode()).signature
    assert_rejected(f"key/{encoded}.{base64.urlsafe_b64encode(signature).decode()}", keyset)


def test_naive_now_is_a_caller_error_not_an_invalid_key() -> None:
    with pytest.raises(ValueError):
        verify(CASES["valid_perpetual"]["key"], KEYSET, now=datetime(2027, 1, 1))


def test_keyset_of_wrong_type_is_a_caller_error() -> None:
    with pytest.raises(TypeError):
        verify(CASES["valid_perpetual"]["key"], VECTORS["keyset"], now=NOW)


def test_skew_widens_both_ends_of_the_validity_window() -> None:
    key = CASES["expired_just_beyond_skew"]["key"]
    verify(key, KEYSET, now=NOW, skew=SKEW + timedelta(milliseconds=1))
    key = CASES["issued_just_beyond_skew"]["key"]
    verify(key, KEYSET, now=NOW, skew=SKEW + timedelta(milliseconds=1))


def test_verify_now_accepts_a_current_key_and_rejects_an_expired_one() -> None:
    sk = nacl.signing.SigningKey(bytes(32))
    keyset = KeySet.from_dict({"keys": [entry(sk, "active")]})
    today = datetime.now(UTC)
    assert verify_now(issue(sk, issued_at=today), keyset)["max_machines"] == 2
    expired = issue(sk, issued_at=today - timedelta(days=2), expires_at=today - timedelta(days=1))
    with pytest.raises(InvalidLicenseKey):
        verify_now(expired, keyset)


def test_key_signed_by_verify_only_key_still_verifies_after_rotation() -> None:
    old, new = nacl.signing.SigningKey(bytes(32)), nacl.signing.SigningKey(bytes([1]) * 32)
    key = issue(old)
    before = KeySet.from_dict({"keys": [entry(old, "active")]})
    rotated = KeySet.from_dict({"keys": [entry(new, "active"), entry(old, "verify-only")]})
    assert verify(key, before, now=NOW) == verify(key, rotated, now=NOW)
    assert verify(issue(new), rotated, now=NOW)["kid"] == key_id(bytes(new.verify_key))


def test_key_signed_by_retired_key_no_longer_verifies() -> None:
    old, new = nacl.signing.SigningKey(bytes(32)), nacl.signing.SigningKey(bytes([1]) * 32)
    retired = KeySet.from_dict({"keys": [entry(new, "active"), entry(old, "retired")]})
    assert_rejected(issue(old), retired)


def test_keyset_round_trips_through_dict_and_json() -> None:
    assert KeySet.from_dict(VECTORS["keyset"]).to_dict() == VECTORS["keyset"]
    assert KeySet.from_json(json.dumps(VECTORS["keyset"])).to_dict() == VECTORS["keyset"]
    assert len(KEYSET) == 3
    assert {e.status for e in KEYSET} == {"active", "verify-only", "retired"}


def _keyset_with(**over: Any) -> dict[str, Any]:
    good = entry(nacl.signing.SigningKey(bytes(32)), "active")
    return {"keys": [{**good, **over}]}


@pytest.mark.parametrize(
    "data",
    [
        _keyset_with(kid="0000000000000000"),
        _keyset_with(public_key="00" * 31),
        _keyset_with(public_key="zz" * 32),
        _keyset_with(status="revoked"),
        _keyset_with(algorithm="RSA"),
        _keyset_with(comment="extra field"),
        {"keys": _keyset_with()["keys"] * 2},
        {"keys": {}},
        {"keys": [], "extra": 1},
        {"keys": ["not an object"]},
        [],
    ],
    ids=[
        "kid_mismatch",
        "short_key",
        "not_hex",
        "unknown_status",
        "unknown_algorithm",
        "extra_field",
        "duplicate_kid",
        "keys_not_list",
        "extra_top_level",
        "entry_not_object",
        "not_object",
    ],
)
def test_malformed_keyset_is_a_value_error(data: Any) -> None:
    with pytest.raises(ValueError):
        KeySet.from_dict(data)


def test_keyset_json_that_is_not_json_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        KeySet.from_json("{keys:")


def test_committed_vectors_match_the_generator() -> None:
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, str(root / "scripts" / "gen_license_vectors.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
