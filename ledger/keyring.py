"""The license-signing keyring: Ed25519 keys stored sealed under the key-encryption key.

One key is ``active`` (signs new license keys); rotated-out keys are ``verify-only`` (every key they
signed keeps verifying); ``retired`` keys verify nothing. Private keys never leave this module
unsealed except as ``nacl`` key objects, and are never logged.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from nacl.signing import SigningKey
from sqlalchemy.engine import Engine

from ledger.crypto import aead
from ledger.crypto.kek import KekSet
from ledger.domain.errors import InvalidInputError, NotFoundError
from ledger.offline import KeySet, key_id

metadata = sa.MetaData()

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("kid", sa.String(16), primary_key=True),
    sa.Column("public_key", sa.String(64), nullable=False),
    sa.Column("sealed_seed", sa.LargeBinary, nullable=False),
    sa.Column("kek_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

STATUSES = ("active", "verify-only", "retired")


def _aad(kid: str) -> bytes:
    return f"license-ledger/signing-key/{kid}".encode()


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    public_key: str
    status: str
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "kid": self.kid,
            "algorithm": "ED25519",
            "public_key": self.public_key,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
        }


class SigningKeyring:
    """Signing keys in the store; the active one cached for a few seconds per process."""

    CACHE_SECONDS = 5.0

    def __init__(
        self, engine: Engine, kek: aead.KeyEncryptionKey, *, keks: KekSet | None = None
    ) -> None:
        self._engine = engine
        self._kek = kek
        self._keks = keks  # older and newer KEKs (after `keys rotate-kek`), if any
        self._lock = threading.Lock()
        self._cache: dict[str, SigningKey] = {}
        self._active: tuple[float, str] | None = None

    def create_tables(self) -> None:
        metadata.create_all(self._engine)

    # ---------------------------------------------------------------- reads

    def list(self) -> list[KeyInfo]:
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(signing_keys).order_by(signing_keys.c.created_at)).all()
        return [KeyInfo(r.kid, r.public_key, r.status, _utc(r.created_at)) for r in rows]

    def keyset_dict(self) -> dict[str, Any]:
        """The public key set in the offline verifier's format (``ledger.offline.KeySet``)."""
        keys = [
            {"kid": k.kid, "algorithm": "ED25519", "public_key": k.public_key, "status": k.status}
            for k in self.list()
        ]
        return {"keys": keys}

    def keyset(self) -> KeySet:
        return KeySet.from_dict(self.keyset_dict())

    def active(self) -> tuple[str, SigningKey]:
        """The active key id and key; creates the first key if the keyring is empty."""
        with self._lock:
            if self._active is not None and time.monotonic() - self._active[0] < self.CACHE_SECONDS:
                kid = self._active[1]
                return kid, self._cache[kid]
        with self._engine.connect() as conn:
            row = conn.execute(
                sa.select(signing_keys.c.kid)
                .where(signing_keys.c.status == "active")
                .order_by(signing_keys.c.created_at.desc())
                .limit(1)
            ).first()
        kid = row.kid if row is not None else self.rotate()
        key = self.signing_key(kid)
        with self._lock:
            self._active = (time.monotonic(), kid)
        return kid, key

    def signing_key(self, kid: str) -> SigningKey:
        with self._lock:
            if kid in self._cache:
                return self._cache[kid]
        with self._engine.connect() as conn:
            row = conn.execute(sa.select(signing_keys).where(signing_keys.c.kid == kid)).first()
        if row is None:
            raise NotFoundError(f"no signing key {kid}")
        kek = self._kek
        if row.kek_id != kek.kek_id and self._keks is not None:
            kek = _local(self._keks, row.kek_id)
        if row.kek_id != kek.kek_id:
            raise InvalidInputError(
                f"signing key {kid} is sealed under KEK {row.kek_id}, not the configured one"
            )
        seed = aead.open_(kek.key, row.sealed_seed, _aad(kid))
        key = SigningKey(seed)
        with self._lock:
            self._cache[kid] = key
        return key

    # ---------------------------------------------------------------- changes

    def rotate(self) -> str:
        """Make a new active key; the previous active key becomes verify-only."""
        if self._keks is not None:  # seal under the newest active KEK
            self._keks.refresh()
            self._kek = self._keks.legacy()
        seed = secrets.token_bytes(32)
        key = SigningKey(seed)
        public = bytes(key.verify_key)
        kid = key_id(public)
        sealed = aead.seal(
            self._kek.key, seed, _aad(kid), nonce=os.urandom(12), key_id=bytes.fromhex(kid)
        )
        with self._engine.begin() as conn:
            conn.execute(
                sa.update(signing_keys)
                .where(signing_keys.c.status == "active")
                .values(status="verify-only")
            )
            conn.execute(
                sa.insert(signing_keys).values(
                    kid=kid,
                    public_key=public.hex(),
                    sealed_seed=sealed,
                    kek_id=self._kek.kek_id,
                    status="active",
                    created_at=datetime.now(UTC),
                )
            )
        with self._lock:
            self._cache[kid] = key
            self._active = (time.monotonic(), kid)
        return kid

    def set_status(self, kid: str, status: str) -> None:
        if status not in ("verify-only", "retired"):
            raise InvalidInputError("status must be 'verify-only' or 'retired'")
        with self._engine.begin() as conn:
            row = conn.execute(sa.select(signing_keys).where(signing_keys.c.kid == kid)).first()
            if row is None:
                raise NotFoundError(f"no signing key {kid}")
            if row.status == "active":
                raise InvalidInputError("rotate first: the active key cannot be retired")
            conn.execute(
                sa.update(signing_keys).where(signing_keys.c.kid == kid).values(status=status)
            )

    def reseal_all(self) -> int:
        """Re-seal every signing key not under the active KEK (``keys rotate-kek``)."""
        if self._keks is None:
            return 0
        self._keks.refresh()
        self._kek = active = self._keks.legacy()
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(signing_keys).where(signing_keys.c.kek_id != active.kek_id)
            ).all()
        for r in rows:
            seed = aead.open_(_local(self._keks, r.kek_id).key, r.sealed_seed, _aad(r.kid))
            sealed = aead.seal(
                active.key, seed, _aad(r.kid), nonce=os.urandom(12), key_id=bytes.fromhex(r.kid)
            )
            with self._engine.begin() as conn:
                conn.execute(
                    sa.update(signing_keys)
                    .where(signing_keys.c.kid == r.kid, signing_keys.c.kek_id == r.kek_id)
                    .values(sealed_seed=sealed, kek_id=active.kek_id)
                )
        return len(rows)


def _local(keks: KekSet, kek_id: str) -> aead.KeyEncryptionKey:
    from ledger.crypto.kek import LocalKek

    kek = keks.get(kek_id)
    if not isinstance(kek, LocalKek):
        raise InvalidInputError("signing keys are sealed under local KEKs only")
    return kek.key


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
