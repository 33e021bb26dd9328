"""Key-encryption keys (KEKs): which one wraps new keys, which ones can still unwrap old ones.

A :class:`KekSet` holds one *active* KEK (it wraps every new data key) and any number of older
KEKs kept readable until ``keys rotate-kek`` has re-wrapped everything under the active one.

Sources:

- the key file (default ``data_dir/kek.key``, mode 0600): one ``llkek1:<id>:<base64>`` line per KEK,
  the **last** line active. :func:`add_kek_to_file` appends a fresh KEK atomically (rotation);
  :func:`drop_keks_from_file` removes retired ones once nothing is wrapped under them.
- ``LEDGER_KEK``: one or more KEK values separated by whitespace or commas, the last active.
- :class:`VaultTransitKek` (optional): wrapping is done by HashiCorp Vault's transit engine.

A :class:`KekSet` re-reads its source when asked for a KEK id it does not know, so a running
service picks up a KEK added by ``rotate-kek`` in another process without a restart.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import stat
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ledger.crypto import aead

__all__ = [
    "Kek",
    "KekSet",
    "VaultTransitKek",
    "add_kek_to_file",
    "drop_keks_from_file",
    "kek_set_from_env",
    "load_kek_set_file",
]

_SPLIT = re.compile(r"[\s,]+")
_MAX_FILE = 64 * 1024


class Kek(Protocol):
    """What the key store needs of a KEK: an id, and wrapping of 32-byte keys bound to it."""

    @property
    def kek_id(self) -> str: ...

    def wrap_bytes(self, key: bytes) -> bytes: ...

    def unwrap_bytes(self, wrapped: bytes) -> bytes: ...


class LocalKek:
    """A local AES-256-GCM KEK (``aead.wrap_key``/``unwrap_key``)."""

    def __init__(self, kek: aead.KeyEncryptionKey) -> None:
        self.key = kek

    @property
    def kek_id(self) -> str:
        return self.key.kek_id

    def wrap_bytes(self, key: bytes) -> bytes:
        return aead.wrap_key(self.key.key, key, self.key.kek_id)

    def unwrap_bytes(self, wrapped: bytes) -> bytes:
        return aead.unwrap_key(self.key.key, wrapped, self.key.kek_id)

    def __repr__(self) -> str:
        return f"LocalKek({self.key.kek_id!r})"


class VaultTransitKek:
    """A KEK that never leaves HashiCorp Vault: wrap/unwrap through the transit engine.

    ``kek_id`` is ``vault-<key name>``; Vault versions the key itself (``vault:vN:`` prefixes), so
    ``vault write -f transit/keys/<name>/rotate`` rotates it and ``rotate-kek`` re-wraps data keys
    with the newest version. Uses the HTTP API through ``httpx`` (a ``client`` may be injected for
    tests, e.g. an ``httpx.Client`` over ``httpx.MockTransport``).
    """

    def __init__(
        self, url: str, token: str, key_name: str, *, mount: str = "transit", client: Any = None
    ) -> None:
        import httpx

        self._name = key_name
        self._mount = mount
        self._client = client or httpx.Client(base_url=url, timeout=10.0)
        self._headers = {"X-Vault-Token": token}

    @property
    def kek_id(self) -> str:
        return f"vault-{self._name}"

    def _post(self, op: str, body: dict[str, str]) -> dict[str, Any]:
        r = self._client.post(
            f"/v1/{self._mount}/{op}/{self._name}", json=body, headers=self._headers
        )
        if r.status_code != 200:
            raise aead.DecryptionError()
        data: dict[str, Any] = r.json()["data"]
        return data

    def wrap_bytes(self, key: bytes) -> bytes:
        ct = self._post("encrypt", {"plaintext": base64.b64encode(key).decode()})["ciphertext"]
        return str(ct).encode("ascii")

    def unwrap_bytes(self, wrapped: bytes) -> bytes:
        pt = self._post("decrypt", {"ciphertext": wrapped.decode("ascii")})["plaintext"]
        return base64.b64decode(pt)


class KekSet:
    """The active KEK plus older readable ones; reloads its source on an unknown id."""

    def __init__(self, keks: list[Kek], *, reload: Callable[[], list[Kek]] | None = None) -> None:
        if not keks:
            raise aead.KeyFileError("no key-encryption key configured")
        self._lock = threading.Lock()
        self._reload = reload
        self._set(keks)

    def _set(self, keks: list[Kek]) -> None:
        self._keks = {k.kek_id: k for k in keks}
        self._active = keks[-1]

    @property
    def active(self) -> Kek:
        return self._active

    @property
    def ids(self) -> list[str]:
        return list(self._keks)

    def get(self, kek_id: str) -> Kek:
        with self._lock:
            kek = self._keks.get(kek_id)
            if kek is None and self._reload is not None:
                self._set(self._reload())
                kek = self._keks.get(kek_id)
        if kek is None:
            raise aead.KeyFileError(f"key-encryption key {kek_id!r} is not configured")
        return kek

    def refresh(self) -> None:
        if self._reload is not None:
            with self._lock:
                self._set(self._reload())

    def legacy(self) -> aead.KeyEncryptionKey:
        """The active KEK as an ``aead.KeyEncryptionKey`` (for the signing keyring)."""
        kek = self._active
        if not isinstance(kek, LocalKek):
            raise aead.KeyFileError("the signing keyring needs a local KEK")
        return kek.key


def kek_set_from_env(value: str) -> KekSet:
    parts = [p for p in _SPLIT.split(value.strip()) if p]
    return KekSet([LocalKek(aead.kek_from_env(p)) for p in parts])


def _read_lines(path: Path) -> list[str]:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise aead.KeyFileError(f"KEK file {path} is not a regular file")
        if info.st_mode & 0o077:
            raise aead.KeyFileError(
                f"KEK file {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
            )
        content = os.read(fd, _MAX_FILE + 1)
    finally:
        os.close(fd)
    if len(content) > _MAX_FILE:
        raise aead.KeyFileError(f"KEK file {path} is too large")
    return [ln.strip() for ln in content.decode("ascii").splitlines() if ln.strip()]


def load_kek_set_file(path: Path) -> KekSet:
    """The KEKs in ``path`` (created with one fresh KEK, mode 0600, if missing); last is active."""
    if not path.exists():
        aead.load_or_create_kek_file(path)

    def load() -> list[Kek]:
        try:
            lines = _read_lines(path)
            return [LocalKek(aead.kek_from_env(ln)) for ln in lines]
        except (UnicodeDecodeError, ValueError):
            raise aead.KeyFileError(f"KEK file {path} is not made of llkek1 key lines") from None

    return KekSet(load(), reload=load)


def _rewrite(path: Path, lines: list[str]) -> None:
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, ("\n".join(lines) + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def add_kek_to_file(path: Path) -> str:
    """Append a fresh KEK to the key file and make it the active one; returns its id."""
    lines = _read_lines(path)
    kek = aead.KeyEncryptionKey(kek_id=secrets.token_hex(8), key=secrets.token_bytes(32))
    _rewrite(path, [*lines, kek.to_line()])
    return kek.kek_id


def drop_keks_from_file(path: Path, keep: set[str]) -> list[str]:
    """Remove every KEK whose id is not in ``keep`` (the active one always stays)."""
    lines = _read_lines(path)
    keks = [aead.kek_from_env(ln) for ln in lines]
    active = keks[-1].kek_id
    kept = [ln for ln, k in zip(lines, keks, strict=True) if k.kek_id in keep or k.kek_id == active]
    dropped = [k.kek_id for k in keks if k.kek_id not in keep and k.kek_id != active]
    if dropped:
        _rewrite(path, kept)
    return dropped
