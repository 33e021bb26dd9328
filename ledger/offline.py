"""Offline license-key verifier (Keygen ``ED25519_SIGN`` format).

A key is ``"key/" + E + "." + S`` where ``E`` is padded base64url of the compact JSON claims and
``S`` is padded base64url of the Ed25519 signature over the ASCII bytes ``"key/" + E``.

This module imports only the standard library and PyNaCl, so that it can ship inside client
applications. Every failure to verify a key raises :class:`InvalidLicenseKey` and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, cast

import nacl.bindings
import nacl.exceptions
import nacl.signing

__all__ = [
    "CLAIMS_VERSION",
    "KEY_PREFIX",
    "MAX_KEY_LENGTH",
    "InvalidLicenseKey",
    "InvalidResponse",
    "KeySet",
    "KeySetEntry",
    "check_claims",
    "format_time",
    "key_id",
    "parse_time",
    "verify",
    "verify_now",
    "verify_response",
]

KEY_PREFIX = "key/"
MAX_KEY_LENGTH = 16384
CLAIMS_VERSION = 1
DEFAULT_SKEW = timedelta(minutes=5)

KeyStatus = Literal["active", "verify-only", "retired"]
_STATUSES: frozenset[str] = frozenset({"active", "verify-only", "retired"})
_CLAIM_NAMES = frozenset(
    {
        "v",
        "kid",
        "org_id",
        "license_id",
        "policy_id",
        "issued_at",
        "expires_at",
        "entitlements",
        "max_machines",
    }
)
_B64URL = re.compile(r"(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{2}==|[A-Za-z0-9_-]{3}=)?", re.ASCII)
_TIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})\.([0-9]{3})Z", re.ASCII
)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.ASCII)
_KID = re.compile(r"[0-9a-f]{16}", re.ASCII)
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)


class InvalidLicenseKey(Exception):
    """The license key is malformed, forged, unknown, expired or not yet valid."""


def key_id(public_key: bytes) -> str:
    """Key id: the first 8 bytes of SHA-256 of the raw public key, as 16 hex characters."""
    return hashlib.sha256(public_key).digest()[:8].hex()


def format_time(dt: datetime) -> str:
    """Format an aware datetime as RFC 3339 UTC, milliseconds truncated: ``...T16:43:47.123Z``."""
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("format_time needs an aware datetime")
    u = dt.astimezone(UTC)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
        f".{u.microsecond // 1000:03d}Z"
    )


def parse_time(s: str) -> datetime:
    """Parse exactly ``YYYY-MM-DDTHH:MM:SS.mmmZ`` to an aware UTC datetime, else ValueError."""
    m = _TIME.fullmatch(s) if isinstance(s, str) else None
    if m is None:
        raise ValueError(f"not a YYYY-MM-DDTHH:MM:SS.mmmZ timestamp: {s!r}")
    y, mo, d, h, mi, sec, ms = map(int, m.groups())
    return datetime(y, mo, d, h, mi, sec, ms * 1000, tzinfo=UTC)  # ValueError if out of range


@dataclass(frozen=True, slots=True)
class KeySetEntry:
    """One published signing key."""

    kid: str
    public_key: bytes
    status: KeyStatus
    algorithm: Literal["ED25519"] = "ED25519"


class KeySet:
    """Published license-signing public keys by kid; ``retired`` keys never verify."""

    def __init__(self, entries: Iterable[KeySetEntry]) -> None:
        self._entries: dict[str, KeySetEntry] = {}
        for entry in entries:
            if len(entry.public_key) != 32:
                raise ValueError(f"public key for kid {entry.kid!r} is not 32 bytes")
            if entry.kid != key_id(entry.public_key):
                raise ValueError(f"kid {entry.kid!r} does not match its public key")
            if entry.status not in _STATUSES or entry.algorithm != "ED25519":
                raise ValueError(f"kid {entry.kid!r}: bad status or algorithm")
            if entry.kid in self._entries:
                raise ValueError(f"duplicate kid {entry.kid!r}")
            self._entries[entry.kid] = entry

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KeySet:
        """Build from ``{"keys": [{"kid", "public_key", "status", "algorithm"}, ...]}``."""
        if not isinstance(data, Mapping) or set(data) != {"keys"}:
            raise ValueError('key set must be an object with exactly one field, "keys"')
        keys = data["keys"]
        if not isinstance(keys, list):
            raise ValueError('"keys" must be a list')
        entries = []
        for item in keys:
            if not isinstance(item, Mapping) or set(item) != {
                "kid",
                "public_key",
                "status",
                "algorithm",
            }:
                raise ValueError("each key needs exactly kid, public_key, status, algorithm")
            kid, hex_key, status = item["kid"], item["public_key"], item["status"]
            if not isinstance(kid, str) or _KID.fullmatch(kid) is None:
                raise ValueError(f"bad kid {kid!r}")
            if not isinstance(hex_key, str) or _HEX_KEY.fullmatch(hex_key) is None:
                raise ValueError(f"kid {kid}: public_key must be 64 hex characters")
            if status not in _STATUSES:
                raise ValueError(f"kid {kid}: unknown status {status!r}")
            if item["algorithm"] != "ED25519":
                raise ValueError(f"kid {kid}: unsupported algorithm {item['algorithm']!r}")
            entries.append(KeySetEntry(kid, bytes.fromhex(hex_key), cast(KeyStatus, status)))
        return cls(entries)

    @classmethod
    def from_json(cls, text: str | bytes) -> KeySet:
        """Parse a JSON key set; ValueError if it is malformed."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"key set is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """The published form accepted by :meth:`from_dict`."""
        return {
            "keys": [
                {
                    "kid": e.kid,
                    "public_key": e.public_key.hex(),
                    "status": e.status,
                    "algorithm": e.algorithm,
                }
                for e in self._entries.values()
            ]
        }

    def get(self, kid: str) -> KeySetEntry | None:
        """The entry for ``kid`` whatever its status, or None."""
        return self._entries.get(kid)

    def verifying_key(self, kid: str) -> bytes | None:
        """The raw public key for ``kid`` if it may verify (not retired), else None."""
        entry = self._entries.get(kid)
        if entry is None or entry.status == "retired":
            return None
        return entry.public_key

    def __iter__(self) -> Iterator[KeySetEntry]:
        return iter(self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)


def _verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Strict Ed25519 verification with libsodium; False on any failure."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    try:
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.CryptoError, ValueError, TypeError):
        return False
    return True


def _b64url_decode(text: str) -> bytes:
    """Strict padded base64url: urlsafe alphabet, exact padding, canonical trailing bits."""
    if _B64URL.fullmatch(text) is None:
        raise ValueError("not padded base64url")
    raw = base64.urlsafe_b64decode(text)
    if base64.urlsafe_b64encode(raw).decode("ascii") != text:
        raise ValueError("non-canonical base64url")
    return raw


def _is_text(value: object) -> bool:
    """True for a str that encodes as UTF-8 (no lone surrogates)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_uuid(value: object) -> bool:
    """True for a canonical lowercase hyphenated UUID string."""
    return isinstance(value, str) and _UUID.fullmatch(value) is not None


def check_claims(claims: object) -> dict[str, Any]:
    """Validate version-1 claims (schema only, not time); ValueError if ill-formed."""
    _check_claims(claims)
    return cast(dict[str, Any], claims)


def _check_claims(claims: object) -> tuple[datetime, datetime | None]:
    """Validate version-1 claims; return (issued_at, expires_at) parsed."""
    if not isinstance(claims, dict) or set(claims) != _CLAIM_NAMES:
        raise ValueError(f"claims must be an object with exactly {sorted(_CLAIM_NAMES)}")
    v = claims["v"]
    if type(v) is not int or v != CLAIMS_VERSION:
        raise ValueError(f"unsupported claims version {v!r}")
    if not isinstance(claims["kid"], str) or _KID.fullmatch(claims["kid"]) is None:
        raise ValueError("kid must be 16 lowercase hex characters")
    for name in ("org_id", "license_id"):
        if not _is_uuid(claims[name]):
            raise ValueError(f"{name} must be a canonical UUID string")
    if claims["policy_id"] is not None and not _is_uuid(claims["policy_id"]):
        raise ValueError("policy_id must be a canonical UUID string or null")
    issued_at = parse_time(claims["issued_at"])
    expires_at = None if claims["expires_at"] is None else parse_time(claims["expires_at"])
    if expires_at is not None and expires_at < issued_at:
        raise ValueError("expires_at is before issued_at")
    entitlements = claims["entitlements"]
    if not isinstance(entitlements, list) or not all(_is_text(e) and e for e in entitlements):
        raise ValueError("entitlements must be a list of non-empty strings")
    if any(a >= b for a, b in itertools.pairwise(entitlements)):
        raise ValueError("entitlements must be sorted and unique")
    max_machines = claims["max_machines"]
    if max_machines is not None and (type(max_machines) is not int or max_machines < 0):
        raise ValueError("max_machines must be a non-negative integer or null")
    return issued_at, expires_at


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("duplicate JSON object key")
    return result


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


_DECODER = json.JSONDecoder(object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)


def _verify(key: object, keyset: KeySet, now: datetime, skew: timedelta) -> dict[str, Any]:
    if not isinstance(key, str) or len(key) > MAX_KEY_LENGTH:
        raise ValueError("not a string of acceptable length")
    if not key.startswith(KEY_PREFIX) or key.count(".") != 1:
        raise ValueError("not key/<payload>.<signature>")
    encoded, _, encoded_signature = key[len(KEY_PREFIX) :].partition(".")
    payload = _b64url_decode(encoded)
    signature = _b64url_decode(encoded_signature)
    if len(signature) != 64:
        raise ValueError("signature is not 64 bytes")
    claims = _DECODER.decode(payload.decode("utf-8"))
    if not isinstance(claims, dict) or not isinstance(claims.get("kid"), str):
        raise ValueError("payload is not a claims object")
    public_key = keyset.verifying_key(claims["kid"])
    if public_key is None:
        raise ValueError("unknown or retired kid")
    if not _verify_signature(public_key, (KEY_PREFIX + encoded).encode("ascii"), signature):
        raise ValueError("bad signature")
    issued_at, expires_at = _check_claims(claims)
    if issued_at > now + skew:
        raise ValueError("issued in the future")
    if expires_at is not None and now > expires_at + skew:
        raise ValueError("expired")
    return claims


def verify(
    key: str, keyset: KeySet, *, now: datetime, skew: timedelta = DEFAULT_SKEW
) -> dict[str, Any]:
    """Verify ``key`` against ``keyset`` at ``now``; return its claims or raise InvalidLicenseKey.

    A non-KeySet ``keyset`` (TypeError) or naive ``now`` (ValueError) is a caller bug, not a bad
    key, and is reported as such before the key is looked at.
    """
    if not isinstance(keyset, KeySet):
        raise TypeError("keyset must be a KeySet")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("verify needs an aware datetime for now")
    try:
        return _verify(key, keyset, now, skew)
    except Exception:
        raise InvalidLicenseKey("invalid license key") from None


def verify_now(key: str, keyset: KeySet, *, skew: timedelta = DEFAULT_SKEW) -> dict[str, Any]:
    """:func:`verify` at the current UTC time."""
    return verify(key, keyset, now=datetime.now(UTC), skew=skew)


# ---------------------------------------------------------------- signed validation answers

SIGNATURE_HEADER = "Ledger-Signature"
KEY_ID_HEADER = "Ledger-Key-Id"
DEFAULT_MAX_AGE = timedelta(minutes=5)
_SIGNATURE = re.compile(r"v1,([A-Za-z0-9+/]{86}==)", re.ASCII)


class InvalidResponse(Exception):
    """The validation answer is unsigned, forged, altered, replayed, stale or malformed."""


def _header(headers: Any, name: str) -> str | None:
    """A header from a mapping (case-insensitive) or a list of (name, value) pairs."""
    items = headers.items() if isinstance(headers, Mapping) else headers
    found = [v for k, v in items if isinstance(k, str) and k.lower() == name.lower()]
    if len(found) != 1 or not isinstance(found[0], str):
        return None
    return found[0]


def _verify_response(
    body: bytes, headers: Any, keyset: KeySet, nonce: str, now: datetime, max_age: timedelta
) -> dict[str, Any]:
    signature = _SIGNATURE.fullmatch(_header(headers, SIGNATURE_HEADER) or "")
    kid = _header(headers, KEY_ID_HEADER) or ""
    public_key = keyset.verifying_key(kid) if _KID.fullmatch(kid) else None
    if signature is None or public_key is None or not isinstance(body, bytes):
        raise ValueError("unsigned or unknown key")
    if not _verify_signature(public_key, body, base64.b64decode(signature.group(1), validate=True)):
        raise ValueError("bad signature")
    answer = json.loads(body, object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    if not isinstance(answer, dict) or not isinstance(answer.get("valid"), bool):
        raise ValueError("not a validation answer")
    got = answer.get("nonce")
    if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
        raise ValueError("nonce mismatch")
    if abs(now - parse_time(str(answer.get("time")))) > max_age:
        raise ValueError("stale or future answer")
    return answer


def verify_response(
    body: bytes,
    headers: Any,
    keyset: KeySet,
    *,
    nonce: str,
    now: datetime,
    max_age: timedelta = DEFAULT_MAX_AGE,
) -> dict[str, Any]:
    """Check a signed validate-key answer; return its JSON object or raise InvalidResponse.

    ``body`` is the exact response body bytes (the signature covers them, nothing else);
    ``headers`` a mapping or (name, value) pairs holding ``Ledger-Signature: v1,<base64>`` and
    ``Ledger-Key-Id``. The answer must carry the ``nonce`` this client sent and a ``time`` within
    ``max_age`` of ``now`` either way, so a replayed or altered answer is refused. Check
    ``answer["valid"]`` yourself: a correctly signed "invalid" answer is returned, not raised.
    """
    if not isinstance(keyset, KeySet):
        raise TypeError("keyset must be a KeySet")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("verify_response needs an aware datetime for now")
    if not isinstance(nonce, str) or not nonce:
        raise ValueError("verify_response needs the nonce the request carried")
    try:
        return _verify_response(body, headers, keyset, nonce, now, max_age)
    except Exception:
        raise InvalidResponse("invalid validation response") from None
