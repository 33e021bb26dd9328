"""Data keys in the store, wrapped by the KEK: one key family for events, one per data subject.

Table ``data_keys``: one row per data key — its 8-byte id (hex; it is also in every blob the key
sealed), its ``owner`` (``events`` or ``subject:<id>``), the owning org for subject keys, the key
wrapped under a KEK (``kek_id``), and ``reserved``: how many encryptions have been leased from it.

**Counting.** A process leases blocks of :attr:`KeyStore.lease` encryptions at a time (one row
update); when a key's leases would pass ``max_encryptions`` (2**30), a fresh key is made for the
owner instead. So no key ever seals more than 2**30 messages, across every process.

**Erasure.** :meth:`KeyStore.erase_subject` records the subject in ``erased_subjects`` (the fence)
and then deletes its keys. Key creation checks the fence *after* committing its key and deletes the
key again if the fence appeared meanwhile, so no interleaving leaves a key behind a fence. New
personal data for a fenced subject is stored as erased (:meth:`seal_for_subject` returns ``None``).

Processes cache unwrapped subject keys for :attr:`KeyStore.subject_ttl` seconds; erasure in
another process is therefore effective here within that time (see docs/security.md).
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.engine import Engine

from ledger.crypto import aead
from ledger.crypto.kek import KekSet

metadata = sa.MetaData()

data_keys = sa.Table(
    "data_keys",
    metadata,
    sa.Column("key_id", sa.String(16), primary_key=True),
    sa.Column("owner", sa.String(80), nullable=False),
    sa.Column("org_id", sa.String(36)),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),
    sa.Column("kek_id", sa.String(64), nullable=False),
    sa.Column("reserved", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_data_keys_owner", "owner", "created_at"),
)

erased_subjects = sa.Table(
    "erased_subjects",
    metadata,
    sa.Column("subject_id", sa.String(64), primary_key=True),
    sa.Column("org_id", sa.String(36)),
    sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
)

EVENTS = "events"


def subject_owner(subject: str) -> str:
    return f"subject:{subject}"


def seal_with(gcm: AESGCM, key_id: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """``aead.seal`` with a prepared cipher (same blob format, no per-call key schedule)."""
    prefix = bytes([aead.VERSION]) + key_id
    nonce = secrets.token_bytes(aead.NONCE_SIZE)
    return prefix + nonce + gcm.encrypt(nonce, plaintext, prefix + aad)


_HEADER = 1 + aead.KEY_ID_SIZE + aead.NONCE_SIZE


def open_with(gcm: AESGCM, blob: bytes, aad: bytes) -> bytes:
    """``aead.open_`` with a prepared cipher (the same checks, without building a ``Blob``)."""
    if len(blob) < _HEADER + 16 or blob[0] != aead.VERSION:
        raise aead.DecryptionError()
    try:
        return gcm.decrypt(blob[9:_HEADER], blob[_HEADER:], blob[:9] + aad)
    except InvalidTag:
        raise aead.DecryptionError() from None


@dataclass
class _Lease:
    key_id: bytes
    gcm: AESGCM
    next: int
    end: int
    expires: float


class KeyStore:
    """Data keys for events and data subjects, leased, cached and erasable."""

    MEMO_SIZE = 100_000

    def __init__(
        self,
        engine: Engine,
        keks: KekSet,
        *,
        max_encryptions: int = aead.MAX_ENCRYPTIONS,
        lease: int = 4096,
        subject_ttl: float = 5.0,
        reader: Engine | None = None,
    ) -> None:
        self.engine = engine
        # Reads go through the reader: they happen while decoding events, possibly inside a
        # projection batch that holds the (SQLite) write lock of this very database.
        self.reader = reader or engine
        self.keks = keks
        self.max_encryptions = max_encryptions
        self.lease = lease
        self.subject_ttl = subject_ttl
        self._lock = threading.RLock()
        self._leases: dict[str, _Lease] = {}
        self._openers: dict[bytes, tuple[AESGCM, float, str]] = {}
        self._erased: set[str] = set()
        # Replays open the same personal values again and again: keep recent ones (same TTL as
        # subject keys; dropped on erasure).
        self._values: dict[tuple[str, bytes | str, bytes], tuple[bytes, float]] = {}

    def create_tables(self) -> None:
        metadata.create_all(self.engine)

    # ---------------------------------------------------------------- sealing

    def seal_event(self, plaintext: bytes, aad: bytes) -> bytes:
        lease = self._take(EVENTS, None)
        assert lease is not None
        return seal_with(lease.gcm, lease.key_id, plaintext, aad)

    def open_event(self, blob: bytes, aad: bytes) -> bytes:
        gcm = self._opener(bytes(blob[1:9]), EVENTS)
        if gcm is None:
            raise aead.DecryptionError()
        return open_with(gcm, blob, aad)

    def seal_for_subject(
        self, subject: str, org_id: str | None, plaintext: bytes, aad: bytes
    ) -> bytes | None:
        """Seal under the subject's key (made on first use); ``None`` if the subject is erased."""
        lease = self._take(subject_owner(subject), org_id)
        if lease is None:
            return None
        return seal_with(lease.gcm, lease.key_id, plaintext, aad)

    def open_for_subject(self, subject: str, blob: bytes | str, aad: bytes) -> bytes | None:
        """Open a subject's blob (bytes, or base64 text); ``None`` if the subject was erased."""
        if subject in self._erased:
            return None
        memo = (subject, blob, aad)
        hit = self._values.get(memo)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        if isinstance(blob, str):
            try:
                blob = base64.b64decode(blob, validate=True)
            except (binascii.Error, ValueError):
                raise aead.DecryptionError() from None
        gcm = self._opener(bytes(blob[1:9]), subject_owner(subject))
        if gcm is None:
            if self.is_erased(subject):
                return None
            raise aead.DecryptionError()
        value = open_with(gcm, blob, aad)
        with self._lock:
            if len(self._values) >= self.MEMO_SIZE:
                self._values.clear()
            self._values[memo] = (value, time.monotonic() + self.subject_ttl)
        return value

    # ---------------------------------------------------------------- leases

    def _take(self, owner: str, org_id: str | None) -> _Lease | None:
        # Never hold self._lock across database work: a projection batch holding the store's
        # write lock takes self._lock to memoise opened values, so waiting for the write lock
        # while holding self._lock would deadlock the two until SQLite's busy timeout.
        while True:
            now = time.monotonic()
            with self._lock:
                lease = self._leases.get(owner)
                if lease is not None and lease.next < lease.end and lease.expires > now:
                    lease.next += 1
                    return lease
            fresh = self._new_lease(owner, org_id, now)
            if fresh is None:
                return None
            with self._lock:
                current = self._leases.get(owner)
                if current is None or current.next >= current.end or current.expires <= now:
                    self._leases[owner] = fresh  # else another thread's lease won; loop to use it

    def _new_lease(self, owner: str, org_id: str | None, now: float) -> _Lease | None:
        subject = owner.removeprefix("subject:") if owner != EVENTS else None
        if subject is not None and self.is_erased(subject):
            return None
        expires = now + self.subject_ttl if subject is not None else float("inf")
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(data_keys)
                .where(data_keys.c.owner == owner)
                .order_by(data_keys.c.created_at.desc(), data_keys.c.key_id)
                .limit(1)
                .with_for_update()
            ).first()
            if row is not None and row.reserved < self.max_encryptions:
                take = min(self.lease, self.max_encryptions - int(row.reserved))
                conn.execute(
                    sa.update(data_keys)
                    .where(data_keys.c.key_id == row.key_id)
                    .values(reserved=data_keys.c.reserved + take)
                )
                key = self.keks.get(row.kek_id).unwrap_bytes(row.wrapped)
                key_id = bytes.fromhex(row.key_id)
                start = int(row.reserved)
                created = False
            else:
                take = min(self.lease, self.max_encryptions)
                key, key_id = secrets.token_bytes(aead.KEY_SIZE), secrets.token_bytes(8)
                self.keks.refresh()
                kek = self.keks.active
                conn.execute(
                    sa.insert(data_keys).values(
                        key_id=key_id.hex(),
                        owner=owner,
                        org_id=org_id,
                        wrapped=kek.wrap_bytes(key),
                        kek_id=kek.kek_id,
                        reserved=take,
                        created_at=datetime.now(UTC),
                    )
                )
                start, created = 0, True
        if created and subject is not None and self.is_erased(subject, fresh=True):
            with self.engine.begin() as conn:  # erased while we created it: undo
                conn.execute(sa.delete(data_keys).where(data_keys.c.owner == owner))
            return None
        gcm = AESGCM(key)
        self._openers[key_id] = (gcm, expires, owner)
        return _Lease(key_id, gcm, start, start + take, expires)

    def _opener(self, key_id: bytes, owner: str) -> AESGCM | None:
        now = time.monotonic()
        hit = self._openers.get(key_id)
        if hit is not None and hit[1] > now and hit[2] == owner:
            return hit[0]
        with self.reader.connect() as conn:
            row = conn.execute(
                sa.select(data_keys.c.wrapped, data_keys.c.kek_id, data_keys.c.owner).where(
                    data_keys.c.key_id == key_id.hex()
                )
            ).first()
        if row is None or row.owner != owner:
            return None
        gcm = AESGCM(self.keks.get(row.kek_id).unwrap_bytes(row.wrapped))
        ttl = float("inf") if owner == EVENTS else now + self.subject_ttl
        with self._lock:
            self._openers[key_id] = (gcm, ttl, owner)
        return gcm

    # ---------------------------------------------------------------- subjects

    def is_erased(self, subject: str, *, fresh: bool = False) -> bool:
        if subject in self._erased and not fresh:
            return True
        with self.reader.connect() as conn:
            found = conn.execute(
                sa.select(erased_subjects.c.subject_id).where(
                    erased_subjects.c.subject_id == subject
                )
            ).first()
        if found is not None:
            self._erased.add(subject)
        return found is not None

    def subject_info(self, subject: str) -> dict[str, Any] | None:
        """Where the subject stands: its org, keys and erasure (``None`` if never seen)."""
        with self.reader.connect() as conn:
            fence = conn.execute(
                sa.select(erased_subjects).where(erased_subjects.c.subject_id == subject)
            ).first()
            keys = conn.execute(
                sa.select(data_keys.c.key_id, data_keys.c.org_id, data_keys.c.created_at).where(
                    data_keys.c.owner == subject_owner(subject)
                )
            ).all()
        if fence is None and not keys:
            return None
        return {
            "subject_id": subject,
            "org_id": fence.org_id if fence is not None else keys[0].org_id,
            "erased_at": fence.erased_at if fence is not None else None,
            "key_ids": [k.key_id for k in keys],
        }

    def erase_subject(self, subject: str, org_id: str | None) -> bool:
        """Fence the subject, then destroy its keys. ``False`` if it was already erased."""
        with self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(erased_subjects.c.subject_id).where(
                    erased_subjects.c.subject_id == subject
                )
            ).first()
            if exists is None:
                conn.execute(
                    sa.insert(erased_subjects).values(
                        subject_id=subject, org_id=org_id, erased_at=datetime.now(UTC)
                    )
                )
        with self.engine.begin() as conn:
            conn.execute(sa.delete(data_keys).where(data_keys.c.owner == subject_owner(subject)))
        owner = subject_owner(subject)
        with self._lock:
            self._erased.add(subject)
            self._leases.pop(owner, None)
            for kid in [k for k, v in self._openers.items() if v[2] == owner]:
                del self._openers[kid]
            for memo in [m for m in self._values if m[0] == subject]:
                del self._values[memo]
        return exists is None

    # ---------------------------------------------------------------- KEK rotation

    def rewrap_all(self) -> int:
        """Re-wrap every data key not wrapped under the active KEK; returns how many."""
        self.keks.refresh()
        active = self.keks.active
        done = 0
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(data_keys.c.key_id, data_keys.c.kek_id, data_keys.c.wrapped).where(
                    data_keys.c.kek_id != active.kek_id
                )
            ).all()
        for r in rows:
            key = self.keks.get(r.kek_id).unwrap_bytes(r.wrapped)
            with self.engine.begin() as conn:
                done += (
                    conn.execute(
                        sa.update(data_keys)
                        .where(data_keys.c.key_id == r.key_id, data_keys.c.kek_id == r.kek_id)
                        .values(wrapped=active.wrap_bytes(key), kek_id=active.kek_id)
                    ).rowcount
                    or 0
                )
        return done

    def kek_ids_in_use(self) -> dict[str, int]:
        with self.reader.connect() as conn:
            rows = conn.execute(
                sa.select(data_keys.c.kek_id, sa.func.count()).group_by(data_keys.c.kek_id)
            ).all()
        return {r[0]: int(r[1]) for r in rows}
