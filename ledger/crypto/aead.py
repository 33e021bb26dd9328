"""AES-256-GCM envelope encryption: sealed blobs, data keys, key-encryption keys.

Blob format (version 1)::

    version (1 byte, 0x01) | data-key id (8 bytes) | nonce (12 bytes) | ciphertext | tag (16)

The GCM associated data is ``version | data-key id | aad``, so the header is authenticated
along with the caller's ``aad`` (org, stream, version, event id, ...): changing either, or
moving a blob to another place, makes :func:`open_` fail. Every failure to open -- a short or
unknown blob, a wrong key, a changed header or AAD -- raises the one :class:`DecryptionError`.

Data keys are wrapped by a :class:`KeyEncryptionKey` (AES-256-GCM, associated data binding the
purpose and the KEK id). Wrapped format: ``0x01 | nonce (12) | encrypted key (32) | tag (16)``.
Nonces are 96 random bits per encryption; :class:`DataKey` counts encryptions and refuses to
exceed :data:`MAX_ENCRYPTIONS` (well under the 2**32 random-nonce bound of SP 800-38D).

Errors: :class:`DecryptionError` (cannot open), :class:`DataKeyExhaustedError` (rotate the data
key), :class:`KeyFileError` (a KEK could not be loaded from a file or an environment value).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = [
    "KEY_ID_SIZE",
    "KEY_SIZE",
    "MAX_ENCRYPTIONS",
    "NONCE_SIZE",
    "VERSION",
    "Blob",
    "DataKey",
    "DataKeyExhaustedError",
    "DecryptionError",
    "KeyEncryptionKey",
    "KeyFileError",
    "kek_from_env",
    "load_or_create_kek_file",
    "open_",
    "parse_blob",
    "seal",
    "unwrap_key",
    "wrap_key",
]

Random = Callable[[int], bytes]

VERSION = 1
KEY_SIZE = 32
KEY_ID_SIZE = 8
NONCE_SIZE = 12
TAG_SIZE = 16
MAX_ENCRYPTIONS = 2**30

_HEADER_SIZE = 1 + KEY_ID_SIZE + NONCE_SIZE
_WRAP_VERSION = 1
_WRAPPED_SIZE = 1 + NONCE_SIZE + KEY_SIZE + TAG_SIZE
_WRAP_PURPOSE = b"license-ledger/wrap-data-key/v1\x00"
_KEK_LINE_PREFIX = "llkek1"
_KEK_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MAX_KEK_FILE_SIZE = 4096


class DecryptionError(Exception):
    """A blob or wrapped key could not be opened. Deliberately says nothing more."""

    def __init__(self) -> None:
        super().__init__("decryption failed")


class DataKeyExhaustedError(Exception):
    """A data key reached :data:`MAX_ENCRYPTIONS`; generate a new one."""


class KeyFileError(Exception):
    """A key-encryption key could not be loaded (permissions, format, value)."""


# --- sealed blobs ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Blob:
    version: int
    key_id: bytes
    nonce: bytes
    ciphertext: bytes
    """Ciphertext followed by the 16-byte tag."""


def parse_blob(blob: bytes) -> Blob:
    """Split a sealed blob into its fields; :class:`DecryptionError` if it cannot be one."""
    if len(blob) < _HEADER_SIZE + TAG_SIZE or blob[0] != VERSION:
        raise DecryptionError()
    return Blob(
        version=blob[0],
        key_id=bytes(blob[1 : 1 + KEY_ID_SIZE]),
        nonce=bytes(blob[1 + KEY_ID_SIZE : _HEADER_SIZE]),
        ciphertext=bytes(blob[_HEADER_SIZE:]),
    )


def seal(key: bytes, plaintext: bytes, aad: bytes, *, nonce: bytes, key_id: bytes) -> bytes:
    """Encrypt ``plaintext`` bound to ``aad``; ``nonce`` must never repeat under ``key``."""
    _check_size("key", key, KEY_SIZE)
    _check_size("nonce", nonce, NONCE_SIZE)
    _check_size("key_id", key_id, KEY_ID_SIZE)
    prefix = bytes([VERSION]) + key_id
    return prefix + nonce + AESGCM(key).encrypt(nonce, plaintext, prefix + aad)


def open_(key: bytes, blob: bytes, aad: bytes) -> bytes:
    """Decrypt a blob made by :func:`seal` with the same ``key`` and ``aad``."""
    _check_size("key", key, KEY_SIZE)
    parsed = parse_blob(blob)
    prefix = bytes([parsed.version]) + parsed.key_id
    try:
        return AESGCM(key).decrypt(parsed.nonce, parsed.ciphertext, prefix + aad)
    except InvalidTag:
        raise DecryptionError() from None


class DataKey:
    """A data-encryption key with its public id and a count of encryptions made with it.

    Persist ``encryptions`` alongside the wrapped key if the key outlives the process.
    """

    __slots__ = ("_encryptions", "_lock", "key", "key_id")

    def __init__(self, key_id: bytes, key: bytes, encryptions: int = 0) -> None:
        _check_size("key_id", key_id, KEY_ID_SIZE)
        _check_size("key", key, KEY_SIZE)
        if encryptions < 0:
            raise ValueError("encryptions must not be negative")
        self.key_id = key_id
        self.key = key
        self._encryptions = encryptions
        self._lock = threading.Lock()

    @classmethod
    def generate(cls, *, random: Random = secrets.token_bytes) -> DataKey:
        return cls(key_id=random(KEY_ID_SIZE), key=random(KEY_SIZE))

    @property
    def encryptions(self) -> int:
        return self._encryptions

    def __repr__(self) -> str:
        return (
            f"DataKey(key_id={self.key_id.hex()!r}, key=<redacted>, "
            f"encryptions={self._encryptions})"
        )

    def check_not_exhausted(self) -> None:
        if self._encryptions >= MAX_ENCRYPTIONS:
            raise DataKeyExhaustedError(f"data key {self.key_id.hex()} is exhausted; rotate it")

    def seal(self, plaintext: bytes, aad: bytes, *, random: Random = secrets.token_bytes) -> bytes:
        """Encrypt under this key with a fresh random nonce, counting the use."""
        with self._lock:
            self.check_not_exhausted()
            self._encryptions += 1
        return seal(self.key, plaintext, aad, nonce=random(NONCE_SIZE), key_id=self.key_id)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """Decrypt a blob sealed under this key; a blob naming another key id fails."""
        if not hmac.compare_digest(parse_blob(blob).key_id, self.key_id):
            raise DecryptionError()
        return open_(self.key, blob, aad)


# --- key wrapping ----------------------------------------------------------------------------


def wrap_key(
    kek: bytes, data_key: bytes, kek_id: str, *, random: Random = secrets.token_bytes
) -> bytes:
    """Encrypt a 32-byte data key under ``kek``, bound to ``kek_id``."""
    _check_size("kek", kek, KEY_SIZE)
    _check_size("data_key", data_key, KEY_SIZE)
    nonce = random(NONCE_SIZE)
    _check_size("nonce", nonce, NONCE_SIZE)
    sealed = AESGCM(kek).encrypt(nonce, data_key, _wrap_aad(kek_id))
    return bytes([_WRAP_VERSION]) + nonce + sealed


def unwrap_key(kek: bytes, wrapped: bytes, kek_id: str) -> bytes:
    """Recover a data key wrapped by :func:`wrap_key`; :class:`DecryptionError` otherwise."""
    _check_size("kek", kek, KEY_SIZE)
    if len(wrapped) != _WRAPPED_SIZE or wrapped[0] != _WRAP_VERSION:
        raise DecryptionError()
    nonce, sealed = wrapped[1 : 1 + NONCE_SIZE], wrapped[1 + NONCE_SIZE :]
    try:
        return AESGCM(kek).decrypt(nonce, sealed, _wrap_aad(kek_id))
    except InvalidTag:
        raise DecryptionError() from None


def _wrap_aad(kek_id: str) -> bytes:
    return _WRAP_PURPOSE + kek_id.encode("utf-8")


@dataclass(frozen=True, slots=True, repr=False, eq=False)
class KeyEncryptionKey:
    """A named 256-bit key-encryption key. Its bytes never appear in ``repr``/``str``."""

    kek_id: str
    key: bytes

    def __post_init__(self) -> None:
        if not _KEK_ID_RE.fullmatch(self.kek_id):
            raise ValueError("kek_id must be 1-64 characters of [A-Za-z0-9._-]")
        _check_size("key", self.key, KEY_SIZE)

    def __repr__(self) -> str:
        return f"KeyEncryptionKey(kek_id={self.kek_id!r}, key=<redacted>)"

    def wrap(self, data_key: DataKey, *, random: Random = secrets.token_bytes) -> bytes:
        return wrap_key(self.key, data_key.key, self.kek_id, random=random)

    def unwrap(self, wrapped: bytes, key_id: bytes, encryptions: int = 0) -> DataKey:
        return DataKey(key_id, unwrap_key(self.key, wrapped, self.kek_id), encryptions)

    def to_line(self) -> str:
        """The ``llkek1:<id>:<base64>`` serialisation (secret!)."""
        return f"{_KEK_LINE_PREFIX}:{self.kek_id}:{base64.b64encode(self.key).decode('ascii')}"


def kek_from_env(value: str) -> KeyEncryptionKey:
    """A KEK from an ``llkek1:<id>:<base64>`` line or bare base64 of 32 bytes.

    A bare key gets the id ``env-`` + 16 hex characters derived from a hash of the key, so the
    id is stable across restarts without being configured.
    """
    text = value.strip()
    if text.startswith(_KEK_LINE_PREFIX + ":"):
        return _parse_kek_line(text)
    key = _decode_key(text)
    digest = hashlib.sha256(b"license-ledger/kek-id/v1\x00" + key).hexdigest()
    return KeyEncryptionKey(kek_id="env-" + digest[:16], key=key)


def load_or_create_kek_file(
    path: Path, *, random: Random = secrets.token_bytes
) -> KeyEncryptionKey:
    """Load the KEK at ``path``, creating it (mode 0600, atomically) if it does not exist.

    Refuses (:class:`KeyFileError`) a file that is not a regular file, is accessible to group
    or others, or is not a single ``llkek1:`` line.
    """
    try:
        return _load_kek_file(path)
    except FileNotFoundError:
        pass
    kek = KeyEncryptionKey(kek_id=random(8).hex(), key=random(KEY_SIZE))
    _create_exclusive(path, (kek.to_line() + "\n").encode("ascii"))
    try:
        return _load_kek_file(path)  # whoever won a creation race, everyone loads the same key
    except FileNotFoundError:
        raise KeyFileError(f"KEK file {path} vanished after creation") from None


def _load_kek_file(path: Path) -> KeyEncryptionKey:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise KeyFileError(f"KEK file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise KeyFileError(
                f"KEK file {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
            )
        content = os.read(fd, _MAX_KEK_FILE_SIZE + 1)
    finally:
        os.close(fd)
    if len(content) > _MAX_KEK_FILE_SIZE:
        raise KeyFileError(f"KEK file {path} is too large")
    try:
        return _parse_kek_line(content.decode("ascii").strip())
    except (UnicodeDecodeError, KeyFileError):
        raise KeyFileError(f"KEK file {path} is not an llkek1 key line") from None


def _create_exclusive(path: Path, content: bytes) -> None:
    """Write ``content`` to a private temporary file, then hard-link it into place.

    The link either creates ``path`` complete or fails because it exists; a crash never leaves
    a half-written key file at ``path``.
    """
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(tmp, flags, 0o600)
        try:
            os.fchmod(fd, 0o600)  # independent of the umask
            os.write(fd, content)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return
    except OSError as exc:
        raise KeyFileError(f"cannot create KEK file {path}: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _parse_kek_line(line: str) -> KeyEncryptionKey:
    parts = line.split(":")
    if len(parts) != 3 or parts[0] != _KEK_LINE_PREFIX or not _KEK_ID_RE.fullmatch(parts[1]):
        raise KeyFileError("invalid KEK line; expected llkek1:<id>:<base64 of 32 bytes>")
    return KeyEncryptionKey(kek_id=parts[1], key=_decode_key(parts[2]))


def _decode_key(text: str) -> bytes:
    try:
        key = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise KeyFileError("invalid KEK value; expected base64 of 32 bytes") from None
    if len(key) != KEY_SIZE:
        raise KeyFileError("invalid KEK value; expected base64 of 32 bytes")
    return key


def _check_size(name: str, value: bytes, size: int) -> None:
    if len(value) != size:
        raise ValueError(f"{name} must be {size} bytes")
