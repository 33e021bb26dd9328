"""Encryption at rest of events and snapshots: a ``Mapper`` that seals what it stores.

Stored state (version 1)::

    0xE1 | org id (16 bytes, the event's org; zeros if none) | aead blob (data-key id, nonce, ...)

The blob is AES-256-GCM under the current events data key (``KeyStore``), with associated data::

    "license-ledger/event/v1" 0x00 | org id (16) | originator id 0x00 | version (8, big endian)
    | topic

so a ciphertext opens only at its own place: another stream, version, event type or org (the
cleartext org header is authenticated too, and must match the org inside the payload) fails with
:class:`~ledger.domain.errors.DataIntegrityError` — loudly, never as other data. The eventsourcing
``Cipher`` has no associated data, hence a mapper. With encryption on, an unsealed stored event is
refused as well (fail closed).

While an event is encoded or decoded, :func:`current_event` tells the personal-data transcoding
which event (org, stream, version) it is inside, so that personal values are bound to it too.
"""

from __future__ import annotations

import contextvars
import struct
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import Mapper, MapperDeserialisationError, StoredEvent, Transcoder

from ledger.crypto import aead
from ledger.crypto.keystore import KeyStore
from ledger.domain.errors import DataIntegrityError

MAGIC = 0xE1
_AAD = b"license-ledger/event/v1\x00"
_NO_ORG = bytes(16)


@dataclass
class EventContext:
    org_id: str | None
    originator_id: str
    version: int
    personal_fields: int = field(default=0)
    _where: bytes = field(default=b"", repr=False)

    def next_field(self) -> int:
        self.personal_fields += 1
        return self.personal_fields

    def next_place(self) -> bytes:
        """``originator:version:n`` of the next personal value in this event."""
        if not self._where:
            self._where = f"{self.originator_id}:{self.version}:".encode()
        self.personal_fields += 1
        return self._where + str(self.personal_fields).encode()


_CURRENT: contextvars.ContextVar[EventContext | None] = contextvars.ContextVar(
    "ledger_event", default=None
)


def current_event() -> EventContext | None:
    return _CURRENT.get()


def _org_of(state: dict[str, Any], originator_id: Any) -> UUID | None:
    """The event's org, as the projections see it: ``org_id``, else the stream (organizations)."""
    org = state.get("org_id")
    if org is None and isinstance(state.get("state"), dict):  # snapshots
        org = state["state"].get("org_id")
    if org is None:
        org = originator_id
    return org if isinstance(org, UUID) else None


def _org_bytes(state: dict[str, Any], originator_id: Any) -> bytes:
    org = _org_of(state, originator_id)
    return org.bytes if org is not None else _NO_ORG


def event_aad(org: bytes, originator_id: Any, version: int, topic: str) -> bytes:
    oid = originator_id if isinstance(originator_id, str) else str(originator_id)
    return _AAD + org + oid.encode() + b"\x00" + struct.pack(">q", version) + topic.encode()


class SealingMapper(Mapper[UUID]):
    """Seals stored state under the events data key; opens and checks it on the way back."""

    def __init__(self, transcoder: Transcoder, keystore: KeyStore, *, encrypt: bool = True) -> None:
        super().__init__(transcoder)
        self.keystore = keystore
        self.encrypt = encrypt

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        state = vars(domain_event)
        oid, version = state["originator_id"], state["originator_version"]
        org = _org_of(state, oid)
        token = _CURRENT.set(EventContext(str(org) if org else None, str(oid), version))
        try:
            stored = super().to_stored_event(domain_event)
        finally:
            _CURRENT.reset(token)
        if not self.encrypt:
            return stored
        org_bytes = org.bytes if org is not None else _NO_ORG
        blob = self.keystore.seal_event(
            stored.state, event_aad(org_bytes, oid, version, stored.topic)
        )
        return StoredEvent(
            originator_id=oid,
            originator_version=version,
            topic=stored.topic,
            state=bytes([MAGIC]) + org_bytes + blob,
        )

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        state = bytes(stored_event.state)
        oid, version = stored_event.originator_id, stored_event.originator_version
        soid = str(oid)
        header_org: bytes | None = None
        sealed = state[:1] == bytes([MAGIC])
        if sealed:
            org_bytes = state[1:17]
            try:
                state = self.keystore.open_event(
                    state[17:], event_aad(org_bytes, soid, version, stored_event.topic)
                )
            except aead.DecryptionError:
                raise DataIntegrityError(
                    f"stored event {oid} v{version} does not open at its place: "
                    "tampered, moved or swapped"
                ) from None
            header_org = org_bytes
        elif self.encrypt:
            raise DataIntegrityError(
                f"stored event {oid} v{version} is not encrypted (encryption is on)"
            )
        plain = StoredEvent(
            originator_id=oid, originator_version=version, topic=stored_event.topic, state=state
        )
        token = _CURRENT.set(EventContext(None, soid, version))
        try:
            event = super().to_domain_event(plain)
        except MapperDeserialisationError as exc:
            if isinstance(exc.__cause__, DataIntegrityError):
                raise exc.__cause__ from None
            raise
        finally:
            _CURRENT.reset(token)
        if sealed and _org_bytes(vars(event), event.originator_id) != header_org:
            raise DataIntegrityError(
                f"stored event {oid} v{version} names another org than its sealed header"
            )
        return event
