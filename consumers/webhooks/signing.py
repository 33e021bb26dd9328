"""Sender side of Standard Webhooks v1: endpoint secrets and signature headers.

Pure functions over bytes; the caller passes in randomness and the timestamp. Only
:func:`new_secret` reads the operating system's random source.

A secret is ``"whsec_" + base64(32 random bytes)``. The signature of one delivery attempt is
``"v1," + base64(HMAC-SHA256(secret, f"{msg_id}.{timestamp}.".encode() + body))``; during a
rotation overlap the ``webhook-signature`` header carries one such token per active secret,
separated by spaces. ``X-Signature`` repeats the same value.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
from collections.abc import Sequence

__all__ = [
    "SECRET_BYTES",
    "SECRET_PREFIX",
    "build_headers",
    "generate_secret",
    "new_secret",
    "parse_secret",
    "sign",
    "signature_header",
]

SECRET_PREFIX = "whsec_"  # noqa: S105 -- a format prefix, not a secret
SECRET_BYTES = 32
SIGNATURE_VERSION = "v1"


def generate_secret(random_bytes: bytes) -> str:
    """Format 32 random bytes as an endpoint secret (``whsec_`` + standard base64)."""
    if len(random_bytes) != SECRET_BYTES:
        raise ValueError(f"a webhook secret needs exactly {SECRET_BYTES} random bytes")
    return SECRET_PREFIX + base64.b64encode(random_bytes).decode("ascii")


def new_secret() -> str:
    """Generate a fresh endpoint secret from the operating system's random source."""
    return generate_secret(_secrets.token_bytes(SECRET_BYTES))


def parse_secret(secret: str) -> bytes:
    """Return the 32 key bytes of a ``whsec_`` secret; raise ``ValueError`` if malformed."""
    if not isinstance(secret, str) or not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"a webhook secret starts with {SECRET_PREFIX!r}")
    encoded = secret[len(SECRET_PREFIX) :]
    if not encoded.isascii():
        raise ValueError("a webhook secret is ASCII base64")
    try:
        key = base64.b64decode(encoded, validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is standard base64 after its prefix") from None
    if len(key) != SECRET_BYTES or base64.b64encode(key).decode("ascii") != encoded:
        raise ValueError(f"a webhook secret encodes exactly {SECRET_BYTES} bytes")
    return key


def _signed_content(msg_id: str, timestamp: int, body: bytes) -> bytes:
    return f"{msg_id}.{timestamp}.".encode() + body


def sign(secret_bytes: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``v1,<base64>`` signature of one delivery attempt."""
    if not secret_bytes:
        raise ValueError("a webhook secret may not be empty")
    if isinstance(timestamp, bool) or not isinstance(timestamp, int) or timestamp < 0:
        raise ValueError("the timestamp is a non-negative integer number of seconds")
    mac = hmac.new(secret_bytes, _signed_content(msg_id, timestamp, body), hashlib.sha256)
    return f"{SIGNATURE_VERSION},{base64.b64encode(mac.digest()).decode('ascii')}"


def signature_header(secrets: Sequence[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``webhook-signature`` value: one token per active secret, space-separated."""
    if isinstance(secrets, bytes | bytearray) or not secrets:
        raise ValueError("sign with a non-empty sequence of secrets")
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)


def build_headers(
    secrets: Sequence[bytes], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Return the headers of one delivery attempt (re-signed with each attempt's timestamp)."""
    signature = signature_header(secrets, msg_id, timestamp, body)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
        "X-Signature": signature,
        "content-type": "application/json",
    }
