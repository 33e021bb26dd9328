"""The audit-log key: one Ed25519 key, sealed under the KEK, that signs org checkpoints.

Separate from the license-signing keyring (its own table, its own AEAD purpose), so that a license
key never signs a checkpoint and a checkpoint key never signs a license. The note key name is the
deployment's log name (``LEDGER_LOG_NAME``, default ``license-ledger.local``); each org's log has
the origin ``<log name>/orgs/<org id>``. The verifier key string (C2SP ``<name>+<id>+<key>``) is
public: ``GET /v1/log/key``, ``license-ledger audit log-key``.
"""

from __future__ import annotations

import os
import secrets
import threading
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from nacl.signing import SigningKey
from sqlalchemy.engine import Engine

from ledger.audit.note import key_id, make_checkpoint, sign_note, verifier_key
from ledger.audit.verify import origin_for
from ledger.crypto import aead
from ledger.domain.errors import InvalidInputError

metadata = sa.MetaData()

log_keys = sa.Table(
    "log_keys",
    metadata,
    sa.Column("key_id", sa.String(8), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("public_key", sa.String(64), nullable=False),
    sa.Column("sealed_seed", sa.LargeBinary, nullable=False),
    sa.Column("kek_id", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


def _aad(name: str, kid: str) -> bytes:
    return f"license-ledger/log-key/{name}/{kid}".encode()


class LogSigner:
    """Signs checkpoints with the deployment's active log key (created on first ``ensure``)."""

    def __init__(
        self, engine: Engine, kek: aead.KeyEncryptionKey, *, name: str, keks: Any = None
    ) -> None:
        self._engine = engine
        self._kek = kek
        self._keks = keks  # a ledger.crypto.kek.KekSet: older KEKs still open (rotate-kek)
        self.name = name
        self._lock = threading.Lock()
        self._key: SigningKey | None = None
        verifier_key(name, SigningKey(bytes(32)).verify_key)  # NoteKeyError on a bad name

    def create_tables(self) -> None:
        metadata.create_all(self._engine)

    def ensure(self) -> None:
        """Load the active log key, creating it if there is none (call under the schema lock)."""
        with self._lock:
            if self._key is not None:
                return
            with self._engine.begin() as conn:
                row = conn.execute(
                    sa.select(log_keys)
                    .where(log_keys.c.name == self.name, log_keys.c.status == "active")
                    .order_by(log_keys.c.created_at.desc())
                    .limit(1)
                ).first()
                if row is None:
                    self._key = self._create(conn)
                    return
            kek = self._kek_for(row.kek_id)
            self._key = SigningKey(
                aead.open_(kek.key, row.sealed_seed, _aad(self.name, row.key_id))
            )

    def _kek_for(self, kek_id: str) -> aead.KeyEncryptionKey:
        if kek_id == self._kek.kek_id:
            return self._kek
        if self._keks is not None:
            from ledger.keyring import _local

            self._keks.refresh()
            return _local(self._keks, kek_id)
        raise InvalidInputError(f"the log key is sealed under KEK {kek_id}, not the configured one")

    def reseal_all(self) -> int:
        """Re-seal every log key not under the active KEK (``keys rotate-kek``)."""
        if self._keks is None:
            return 0
        self._keks.refresh()
        self._kek = active = self._keks.legacy()
        with self._engine.connect() as conn:
            rows = conn.execute(sa.select(log_keys).where(log_keys.c.kek_id != active.kek_id)).all()
        for r in rows:
            seed = aead.open_(self._kek_for(r.kek_id).key, r.sealed_seed, _aad(r.name, r.key_id))
            sealed = aead.seal(
                active.key,
                seed,
                _aad(r.name, r.key_id),
                nonce=os.urandom(aead.NONCE_SIZE),
                key_id=bytes.fromhex(r.key_id * 2),
            )
            with self._engine.begin() as conn:
                conn.execute(
                    sa.update(log_keys)
                    .where(log_keys.c.key_id == r.key_id, log_keys.c.kek_id == r.kek_id)
                    .values(sealed_seed=sealed, kek_id=active.kek_id)
                )
        return len(rows)

    def _create(self, conn: sa.Connection) -> SigningKey:
        seed = secrets.token_bytes(32)
        key = SigningKey(seed)
        kid = f"{key_id(self.name, key.verify_key):08x}"
        sealed = aead.seal(
            self._kek.key,
            seed,
            _aad(self.name, kid),
            nonce=os.urandom(aead.NONCE_SIZE),
            key_id=bytes.fromhex(kid * 2),
        )
        conn.execute(
            sa.insert(log_keys).values(
                key_id=kid,
                name=self.name,
                public_key=bytes(key.verify_key).hex(),
                sealed_seed=sealed,
                kek_id=self._kek.kek_id,
                status="active",
                created_at=datetime.now(UTC),
            )
        )
        return key

    def _signing_key(self) -> SigningKey:
        if self._key is None:
            self.ensure()
        if self._key is None:  # pragma: no cover - ensure() sets it or raises
            raise RuntimeError("log key unavailable")
        return self._key

    def verifier_key(self) -> str:
        """The public C2SP verifier key string, ``<name>+<hex id>+<base64(0x01 ‖ key)>``."""
        return verifier_key(self.name, self._signing_key().verify_key)

    def origin(self, org_id: str) -> str:
        return origin_for(self.name, org_id)

    def sign_checkpoint(self, org_id: str, size: int, root_hash: bytes) -> str:
        """The signed ``tlog-checkpoint`` note of ``org_id``'s log at ``size``."""
        body = make_checkpoint(self.origin(org_id), size, root_hash)
        return sign_note(body, self.name, self._signing_key())
