"""Byte-exact format of issued license keys (Keygen ED25519_SIGN) and the claims builder."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from ledger.crypto.licensekey import encode_payload, key_sha256, license_claims, sign_license_key
from ledger.offline import (
    MAX_KEY_LENGTH,
    KeySet,
    format_time,
    key_id,
    parse_time,
    verify,
)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "license_keys.json"
SIGNER = nacl.signing.SigningKey(bytes(range(32)))
KID = key_id(bytes(SIGNER.verify_key))
ISSUED = datetime(2026, 12, 3, 16, 43, 47, 123456, tzinfo=UTC)


def make_claims(**over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "kid": KID,
        "org_id": uuid.UUID(int=1),
        "license_id": uuid.UUID(int=2),
        "policy_id": None,
        "issued_at": ISSUED,
        "expires_at": None,
        "entitlements": ["pro"],
        "max_machines": None,
    }
    args.update(over)
    return license_claims(**args)


def split(key: str) -> tuple[str, str]:
    encoded, signature = key.removeprefix("key/").split(".")
    return encoded, signature


def vector_signers() -> dict[str, nacl.signing.SigningKey]:
    """The generator's fixed seeds, by kid."""
    keys = (
        nacl.signing.SigningKey(
            hashlib.sha256(f"license-ledger test vectors v1: {name}".encode()).digest()
        )
        for name in ("active", "verify-only", "retired", "unknown")
    )
    return {key_id(bytes(k.verify_key)): k for k in keys}


def test_key_is_prefix_payload_dot_signature() -> None:
    key = sign_license_key(make_claims(), SIGNER)
    assert key.startswith("key/")
    assert key.count(".") == 1
    assert key.isascii()


def test_payload_part_is_padded_base64url_of_compact_sorted_json() -> None:
    claims = make_claims(entitlements=["pro", "x"])
    payload = json.dumps(claims, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    assert len(payload.encode()) % 3 != 0, "pick claims that need padding"
    encoded, _ = split(sign_license_key(claims, SIGNER))
    assert encoded.endswith("=")
    assert len(encoded) % 4 == 0
    assert base64.urlsafe_b64decode(encoded) == payload.encode()
    assert encode_payload(claims) == payload.encode()


def test_non_ascii_entitlement_is_utf8_not_escaped() -> None:
    encoded, _ = split(sign_license_key(make_claims(entitlements=["café"]), SIGNER))
    assert '"café"'.encode() in base64.urlsafe_b64decode(encoded)


def test_signature_is_over_prefix_and_encoded_payload_and_verifies_with_raw_nacl() -> None:
    encoded, signature_part = split(sign_license_key(make_claims(), SIGNER))
    signature = base64.urlsafe_b64decode(signature_part)
    assert len(signature) == 64
    assert signature_part.endswith("==")
    raw = nacl.signing.VerifyKey(bytes(SIGNER.verify_key))
    assert raw.verify(b"key/" + encoded.encode("ascii"), signature) == b"key/" + encoded.encode()


def test_signed_key_round_trips_through_verify() -> None:
    claims = make_claims(expires_at=ISSUED + timedelta(days=30), max_machines=3)
    pk = bytes(SIGNER.verify_key)
    keyset = KeySet.from_dict(
        {"keys": [{"kid": KID, "public_key": pk.hex(), "status": "active", "algorithm": "ED25519"}]}
    )
    key = sign_license_key(claims, SIGNER)
    assert verify(key, keyset, now=ISSUED + timedelta(days=1)) == claims


def test_signer_reproduces_every_valid_vector_byte_for_byte() -> None:
    signers = vector_signers()
    cases = [c for c in json.loads(VECTORS.read_text(encoding="utf-8"))["cases"] if c["valid"]]
    assert cases
    for case in cases:
        assert sign_license_key(case["claims"], signers[case["claims"]["kid"]]) == case["key"]


def test_key_id_is_first_eight_bytes_of_sha256_in_hex() -> None:
    pk = bytes(SIGNER.verify_key)
    assert key_id(pk) == hashlib.sha256(pk).hexdigest()[:16]
    assert len(key_id(pk)) == 16


def test_key_sha256_is_hex_digest_of_ascii_key() -> None:
    key = sign_license_key(make_claims(), SIGNER)
    assert key_sha256(key) == hashlib.sha256(key.encode("ascii")).hexdigest()


def test_format_time_uses_utc_milliseconds_and_z() -> None:
    assert format_time(ISSUED) == "2026-12-03T16:43:47.123Z"
    plus_two = timezone(timedelta(hours=2))
    assert format_time(datetime(2026, 1, 1, 2, 0, tzinfo=plus_two)) == "2026-01-01T00:00:00.000Z"


def test_format_time_rejects_naive_datetime() -> None:
    with pytest.raises(ValueError):
        format_time(datetime(2026, 1, 1))


def test_parse_time_round_trips_format_time() -> None:
    text = "2026-12-03T16:43:47.123Z"
    assert format_time(parse_time(text)) == text
    assert parse_time(text) == datetime(2026, 12, 3, 16, 43, 47, 123000, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-03T16:43:47Z",
        "2026-12-03T16:43:47.123456Z",
        "2026-12-03T16:43:47.123+00:00",
        "2026-12-03t16:43:47.123z",
        "2026-12-03 16:43:47.123Z",
        "2026-13-03T16:43:47.123Z",
        "\uff12026-12-03T16:43:47.123Z",  # fullwidth digit
        " 2026-12-03T16:43:47.123Z",
        "2026-12-03T16:43:47.123Z\n",
        "",
    ],
)
def test_parse_time_rejects_anything_but_the_exact_format(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_license_claims_canonicalises_uuids_and_entitlements() -> None:
    org = uuid.uuid4()
    claims = make_claims(
        org_id=str(org).upper(),
        policy_id="{" + str(uuid.UUID(int=3)) + "}",
        entitlements=iter(["pro", "offline", "pro"]),
        expires_at=None,
    )
    assert claims["org_id"] == str(org)
    assert claims["policy_id"] == str(uuid.UUID(int=3))
    assert claims["entitlements"] == ["offline", "pro"]
    assert claims["issued_at"] == "2026-12-03T16:43:47.123Z"
    assert claims["expires_at"] is None
    assert claims["v"] == 1


def test_license_claims_rejects_a_single_string_as_entitlements() -> None:
    with pytest.raises(TypeError):
        make_claims(entitlements="pro")


@pytest.mark.parametrize(
    "over",
    [
        {"org_id": "not-a-uuid"},
        {"kid": "ABCDEF0123456789"},
        {"max_machines": -1},
        {"max_machines": True},
        {"entitlements": [""]},
        {"expires_at": ISSUED - timedelta(seconds=1)},
    ],
)
def test_license_claims_rejects_ill_formed_values(over: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make_claims(**over)


def test_sign_rejects_claims_naming_another_kid() -> None:
    other = nacl.signing.SigningKey(bytes(32))
    with pytest.raises(ValueError):
        sign_license_key(make_claims(), other)


def test_sign_rejects_claims_with_extra_fields() -> None:
    with pytest.raises(ValueError):
        sign_license_key({**make_claims(), "email": "a@example.com"}, SIGNER)


def test_sign_refuses_a_key_longer_than_the_verifier_accepts() -> None:
    with pytest.raises(ValueError, match="limit"):
        sign_license_key(make_claims(entitlements=["x" * MAX_KEY_LENGTH]), SIGNER)
