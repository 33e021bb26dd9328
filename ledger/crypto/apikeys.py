"""API key wire format: ``lk_<env>_<key_id><secret><checksum>``.

* ``env``: 2-8 lowercase ASCII letters (``live``, ``test``, ...). Which environments a
  deployment accepts is the caller's policy; this module only checks the shape.
* ``key_id``: 12 base62 characters, public, used to look the key up.
* ``secret``: 40 base62 characters (~238 bits), drawn without modulo bias.
* ``checksum``: CRC32 (``zlib.crc32``) of everything before it, as 6 base62 characters,
  zero-padded. It lets us reject typos and random garbage *before* any storage lookup.

Keys are stored only as their SHA-256 (:func:`hash_api_key`) and compared in constant time
(:func:`hashes_match`). Parsing is a pure function; every malformed token raises the one
:class:`MalformedApiKeyError`, whose message never contains the token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = [
    "BASE62_ALPHABET",
    "CHECKSUM_LENGTH",
    "KEY_ID_LENGTH",
    "MAX_TOKEN_LENGTH",
    "PREFIX",
    "SECRET_LENGTH",
    "GeneratedKey",
    "MalformedApiKeyError",
    "ParsedKey",
    "generate_api_key",
    "hash_api_key",
    "hashes_match",
    "parse_api_key",
]

BASE62_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PREFIX = "lk_"
KEY_ID_LENGTH = 12
SECRET_LENGTH = 40
CHECKSUM_LENGTH = 6
MAX_TOKEN_LENGTH = 128

_BODY_LENGTH = KEY_ID_LENGTH + SECRET_LENGTH + CHECKSUM_LENGTH
_ENV_RE = re.compile(r"[a-z]{2,8}")
_TOKEN_RE = re.compile(rf"lk_([a-z]{{2,8}})_([0-9A-Za-z]{{{_BODY_LENGTH}}})")
# Largest multiple of 62 that fits in a byte: bytes >= 248 are rejected, so b % 62 is uniform.
_UNBIASED_BOUND = 256 - 256 % len(BASE62_ALPHABET)


class MalformedApiKeyError(ValueError):
    """The token is not a well-formed API key (prefix, length, alphabet or checksum).

    ``reason`` is a short, token-free explanation suitable for logs; the message is generic.
    """

    def __init__(self, reason: str) -> None:
        super().__init__("malformed API key")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class GeneratedKey:
    """A freshly generated key. Show ``token`` to the user once; store ``secret_hash``."""

    token: str = field(repr=False)
    key_id: str
    secret_hash: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ParsedKey:
    """A token that passed every offline check; still unauthenticated."""

    env: str
    key_id: str
    token: str = field(repr=False)


def generate_api_key(
    env: str, *, random: Callable[[int], bytes] = secrets.token_bytes
) -> GeneratedKey:
    """Generate a new API key for ``env`` using ``random`` as the entropy source."""
    if not _ENV_RE.fullmatch(env):
        raise ValueError("env must be 2-8 lowercase ASCII letters")
    key_id = _random_base62(KEY_ID_LENGTH, random)
    secret = _random_base62(SECRET_LENGTH, random)
    unchecked = f"{PREFIX}{env}_{key_id}{secret}"
    token = unchecked + _checksum(unchecked)
    return GeneratedKey(token=token, key_id=key_id, secret_hash=hash_api_key(token))


def parse_api_key(token: str) -> ParsedKey:
    """Check a token's shape and checksum without touching storage.

    Raises :class:`MalformedApiKeyError` for anything that is not a well-formed key.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise MalformedApiKeyError("too long")
    if not token.startswith(PREFIX):
        raise MalformedApiKeyError("wrong prefix")
    match = _TOKEN_RE.fullmatch(token)
    if match is None:
        raise MalformedApiKeyError("wrong length or alphabet")
    env, body = match.group(1), match.group(2)
    checked, checksum = token[:-CHECKSUM_LENGTH], token[-CHECKSUM_LENGTH:]
    if _checksum(checked) != checksum:
        raise MalformedApiKeyError("bad checksum")
    return ParsedKey(env=env, key_id=body[:KEY_ID_LENGTH], token=token)


def hash_api_key(token: str) -> str:
    """The stored form of a key: lowercase hex SHA-256 of the whole token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def hashes_match(a_hex: str, b_hex: str) -> bool:
    """Constant-time comparison of two stored hashes."""
    return hmac.compare_digest(a_hex.encode("utf-8"), b_hex.encode("utf-8"))


def _checksum(text: str) -> str:
    return _encode_base62(zlib.crc32(text.encode("ascii")), CHECKSUM_LENGTH)


def _encode_base62(value: int, width: int) -> str:
    digits: list[str] = []
    while value:
        value, rem = divmod(value, len(BASE62_ALPHABET))
        digits.append(BASE62_ALPHABET[rem])
    if len(digits) > width:
        raise ValueError("value does not fit in the requested width")
    return "".join(reversed(digits)).rjust(width, BASE62_ALPHABET[0])


def _random_base62(length: int, random: Callable[[int], bytes]) -> str:
    """``length`` uniform base62 characters, by rejection sampling of random bytes."""
    out: list[str] = []
    while len(out) < length:
        want = length - len(out)
        # Ask for a little more than needed: ~3% of bytes are rejected.
        chunk = random(want + 8)
        if len(chunk) != want + 8:
            raise ValueError("random source returned the wrong number of bytes")
        out.extend(BASE62_ALPHABET[b % len(BASE62_ALPHABET)] for b in chunk if b < _UNBIASED_BOUND)
    return "".join(out[:length])
