"""License-key issuing: build version-1 claims and sign them (Keygen ``ED25519_SIGN`` format).

Pure functions; time is passed in. The matching verifier is :mod:`ledger.offline`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import nacl.signing

from ledger.offline import (
    CLAIMS_VERSION,
    KEY_PREFIX,
    MAX_KEY_LENGTH,
    check_claims,
    format_time,
    key_id,
)

__all__ = ["encode_payload", "key_sha256", "license_claims", "sign_license_key"]


def _canonical_uuid(value: uuid.UUID | str, name: str) -> str:
    if isinstance(value, uuid.UUID):
        return str(value)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a UUID or a UUID string")
    return str(uuid.UUID(value))


def license_claims(
    *,
    kid: str,
    org_id: uuid.UUID | str,
    license_id: uuid.UUID | str,
    policy_id: uuid.UUID | str | None,
    issued_at: datetime,
    expires_at: datetime | None,
    entitlements: Iterable[str],
    max_machines: int | None,
) -> dict[str, Any]:
    """Version-1 claims: canonical UUID strings, millisecond UTC times, sorted unique entitlements.

    Raises ValueError (or TypeError) if the result would not pass :func:`check_claims`.
    """
    if isinstance(entitlements, str | bytes):
        raise TypeError("entitlements must be an iterable of strings, not a single string")
    claims: dict[str, Any] = {
        "v": CLAIMS_VERSION,
        "kid": kid,
        "org_id": _canonical_uuid(org_id, "org_id"),
        "license_id": _canonical_uuid(license_id, "license_id"),
        "policy_id": None if policy_id is None else _canonical_uuid(policy_id, "policy_id"),
        "issued_at": format_time(issued_at),
        "expires_at": None if expires_at is None else format_time(expires_at),
        "entitlements": sorted(set(entitlements)),
        "max_machines": max_machines,
    }
    return check_claims(claims)


def encode_payload(claims: Mapping[str, Any]) -> bytes:
    """Compact, key-sorted UTF-8 JSON: the bytes that ``E`` encodes."""
    return json.dumps(
        dict(claims), separators=(",", ":"), sort_keys=True, ensure_ascii=False
    ).encode("utf-8")


def sign_license_key(claims: Mapping[str, Any], signing_key: nacl.signing.SigningKey) -> str:
    """Sign claims into ``key/<E>.<signature>``.

    Raises ValueError if the claims are ill-formed, name a different kid than ``signing_key``,
    or make a key longer than the verifier accepts.
    """
    checked = check_claims(dict(claims))
    if checked["kid"] != key_id(bytes(signing_key.verify_key)):
        raise ValueError("claims kid does not match the signing key")
    encoded = base64.urlsafe_b64encode(encode_payload(checked)).decode("ascii")
    signed = (KEY_PREFIX + encoded).encode("ascii")
    signature = signing_key.sign(signed).signature
    key = f"{KEY_PREFIX}{encoded}.{base64.urlsafe_b64encode(signature).decode('ascii')}"
    if len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"license key is {len(key)} characters; the limit is {MAX_KEY_LENGTH}")
    return key


def key_sha256(key: str) -> str:
    """Hex SHA-256 of the ASCII key: a stable identifier (never use the signature bytes)."""
    return hashlib.sha256(key.encode("ascii")).hexdigest()
