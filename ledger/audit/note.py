"""C2SP ``signed-note`` and ``tlog-checkpoint`` with Ed25519 (standard library + PyNaCl).

A signed note is a UTF-8 body ending in a newline, a blank line, then one or more lines
``— <key name> <base64(4-byte key id ‖ 64-byte Ed25519 signature)>``. The key id is the
first four bytes of ``SHA-256(name ‖ "\\n" ‖ 0x01 ‖ public key)``. Key strings follow
golang.org/x/mod/sumdb/note: ``<name>+<hex id>+<base64(0x01 ‖ public key)>`` for verifiers
and ``PRIVATE+KEY+<name>+<hex id>+<base64(0x01 ‖ seed)>`` for signers.

``open_note`` mirrors the reference ``note.Open``: signatures by unknown keys are ignored,
a known key's bad signature rejects the whole note, at most 100 signature lines are read,
and at least one known key must have signed. Every malformed or unverified note raises the
one opaque ``NoteVerificationError``; a malformed *key string* raises ``NoteKeyError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

__all__ = [
    "MAX_SIGNATURES",
    "Checkpoint",
    "NoteKeyError",
    "NoteVerificationError",
    "key_id",
    "make_checkpoint",
    "open_checkpoint",
    "open_note",
    "parse_checkpoint",
    "parse_signer_key",
    "parse_verifier_key",
    "sign_note",
    "signature_line",
    "signer_key",
    "verifier_key",
]

ALG_ED25519 = 0x01
MAX_SIGNATURES = 100
MAX_NOTE_BYTES = 1 << 20
_SIG_PREFIX = "\u2014 "  # em dash, space
_HEX_ID = re.compile(r"[0-9a-fA-F]{8}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


class NoteVerificationError(Exception):
    """A signed note or checkpoint is malformed or carries no valid known signature."""


class NoteKeyError(ValueError):
    """A key name or encoded signer / verifier key string is malformed."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A parsed ``tlog-checkpoint`` body."""

    origin: str
    size: int
    root_hash: bytes
    extra: tuple[str, ...] = ()


def _valid_name(name: str) -> bool:
    """Non-empty UTF-8 without spaces, ``+`` or control characters."""
    try:
        name.encode()
    except UnicodeEncodeError:
        return False
    return (
        name != ""
        and "+" not in name
        and not any(ch.isspace() for ch in name)
        and _CONTROL.search(name) is None
    )


def _b64decode(text: str) -> bytes:
    """Canonical padded standard base64 only; raises ``ValueError`` on anything else."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error) as exc:
        raise ValueError("bad base64") from exc
    if base64.b64encode(raw).decode() != text:  # excess padding, non-zero spare bits
        raise ValueError("non-canonical base64")
    return raw


def key_id(name: str, verify_key: VerifyKey) -> int:
    """32-bit key id: first 4 bytes of ``SHA-256(name ‖ "\\n" ‖ 0x01 ‖ public key)``."""
    digest = hashlib.sha256(
        name.encode() + b"\n" + bytes([ALG_ED25519]) + bytes(verify_key)
    ).digest()
    return int.from_bytes(digest[:4], "big")


def verifier_key(name: str, verify_key: VerifyKey) -> str:
    """Encode ``<name>+<hex id>+<base64(0x01 ‖ public key)>``."""
    if not _valid_name(name):
        raise NoteKeyError("invalid key name")
    encoded = base64.b64encode(bytes([ALG_ED25519]) + bytes(verify_key)).decode()
    return f"{name}+{key_id(name, verify_key):08x}+{encoded}"


def signer_key(name: str, signing_key: SigningKey) -> str:
    """Encode ``PRIVATE+KEY+<name>+<hex id>+<base64(0x01 ‖ seed)>``."""
    if not _valid_name(name):
        raise NoteKeyError("invalid key name")
    encoded = base64.b64encode(bytes([ALG_ED25519]) + bytes(signing_key)).decode()
    return f"PRIVATE+KEY+{name}+{key_id(name, signing_key.verify_key):08x}+{encoded}"


def _parse_key(name: str, hex_id: str, encoded: str) -> tuple[int, bytes]:
    try:
        raw = _b64decode(encoded)
    except ValueError:
        raise NoteKeyError("key is not base64") from None
    if not _valid_name(name) or not _HEX_ID.fullmatch(hex_id):
        raise NoteKeyError("malformed key string")
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise NoteKeyError("not an Ed25519 key")
    return int(hex_id, 16), raw[1:]


def parse_verifier_key(encoded: str) -> tuple[str, int, VerifyKey]:
    """Decode a verifier key string into ``(name, key id, VerifyKey)``; checks the id."""
    parts = encoded.split("+", 2)
    if len(parts) != 3:
        raise NoteKeyError("malformed verifier key")
    kid, raw = _parse_key(*parts)
    key = VerifyKey(raw)
    if kid != key_id(parts[0], key):
        raise NoteKeyError("verifier key id does not match the key")
    return parts[0], kid, key


def parse_signer_key(encoded: str) -> tuple[str, SigningKey]:
    """Decode a ``PRIVATE+KEY+…`` signer key string into ``(name, SigningKey)``."""
    parts = encoded.split("+", 4)
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"]:
        raise NoteKeyError("malformed signer key")
    kid, raw = _parse_key(*parts[2:])
    key = SigningKey(raw)
    if kid != key_id(parts[2], key.verify_key):
        raise NoteKeyError("signer key id does not match the key")
    return parts[2], key


def _check_body(body: str) -> None:
    if not body.endswith("\n") or "\n\n" in body or body.startswith("\n"):
        raise ValueError("note body must be non-empty lines, each ending in a newline")
    if _CONTROL.search(body):
        raise ValueError("note body contains control characters")


def signature_line(body: str, name: str, signing_key: SigningKey) -> str:
    """One ``— <name> <base64(key id ‖ signature)>\\n`` line over ``body``."""
    _check_body(body)
    if not _valid_name(name):
        raise NoteKeyError("invalid key name")
    kid = key_id(name, signing_key.verify_key).to_bytes(4, "big")
    signature = signing_key.sign(body.encode()).signature
    return f"{_SIG_PREFIX}{name} {base64.b64encode(kid + signature).decode()}\n"


def sign_note(body: str, name: str, signing_key: SigningKey) -> str:
    """Sign ``body`` as a note; append further ``signature_line``s to cosign."""
    return body + "\n" + signature_line(body, name, signing_key)


def _known_keys(verifier_keys: Iterable[str]) -> dict[tuple[str, int], VerifyKey]:
    known: dict[tuple[str, int], VerifyKey] = {}
    for encoded in verifier_keys:
        name, kid, key = parse_verifier_key(encoded)
        if known.setdefault((name, kid), key) != key:
            raise NoteKeyError("two verifier keys share a name and key id")
    return known


def open_note(note: str, verifier_keys: Sequence[str]) -> str:
    """Return the body of ``note`` if a known key signed it; else ``NoteVerificationError``.

    ``verifier_keys`` are trusted configuration; a malformed one raises ``NoteKeyError``.
    """
    known = _known_keys(verifier_keys)
    fail = NoteVerificationError("note verification failed")
    try:
        raw = note.encode()
    except UnicodeEncodeError:
        raise fail from None
    if len(raw) > MAX_NOTE_BYTES or _CONTROL.search(note):
        raise fail
    split = note.rfind("\n\n")
    if split < 0:
        raise fail
    body, sigs = note[: split + 1], note[split + 2 :]
    if not sigs.endswith("\n"):
        raise fail
    lines = sigs[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise fail
    message = body.encode()
    seen: set[tuple[str, int]] = set()
    verified = False
    for line in lines:
        name, sep, encoded = line.removeprefix(_SIG_PREFIX).partition(" ")
        if not line.startswith(_SIG_PREFIX) or not sep or not _valid_name(name):
            raise fail
        try:
            blob = _b64decode(encoded)
        except ValueError:
            raise fail from None
        if len(blob) < 5:
            raise fail
        kid = int.from_bytes(blob[:4], "big")
        key = known.get((name, kid))
        if key is None or (name, kid) in seen:
            continue  # unknown signer, or a repeat: the first line per key decides
        seen.add((name, kid))
        try:
            key.verify(message, blob[4:])
        except (BadSignatureError, ValueError):
            raise fail from None
        verified = True
    if not verified:
        raise fail
    return body


def make_checkpoint(origin: str, size: int, root_hash: bytes, extra: Sequence[str] = ()) -> str:
    """Checkpoint body ``origin\\n<size>\\n<base64 root>\\n`` plus optional extension lines."""
    if not 0 <= size < 1 << 64:
        raise ValueError("tree size out of range")
    if len(root_hash) != 32:
        raise ValueError("root hash must be 32 bytes")
    lines = [origin, str(size), base64.b64encode(root_hash).decode(), *extra]
    if any(not line or "\n" in line or _CONTROL.search(line) for line in lines):
        raise ValueError("checkpoint lines must be non-empty single lines")
    return "\n".join(lines) + "\n"


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse a checkpoint body; any malformation raises ``NoteVerificationError``."""
    fail = NoteVerificationError("malformed checkpoint")
    if not body.endswith("\n"):
        raise fail
    lines = body[:-1].split("\n")
    if len(lines) < 3 or any(not line for line in lines) or _CONTROL.search(body):
        raise fail
    origin, size_text, root_text, *extra = lines
    if not _DECIMAL.fullmatch(size_text) or int(size_text) >= 1 << 64:
        raise fail
    try:
        root_hash = _b64decode(root_text)
    except ValueError:
        raise fail from None
    if len(root_hash) != 32:
        raise fail
    return Checkpoint(origin, int(size_text), root_hash, tuple(extra))


def open_checkpoint(note: str, verifier_keys: Sequence[str], *, origin: str) -> Checkpoint:
    """Verify a signed checkpoint note and check it belongs to the log ``origin``."""
    checkpoint = parse_checkpoint(open_note(note, verifier_keys))
    if checkpoint.origin != origin:
        raise NoteVerificationError("checkpoint is for another log")
    return checkpoint
