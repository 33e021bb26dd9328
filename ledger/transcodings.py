"""How the value objects in events are written to the store (``eventsourcing`` transcodings).

``PersonalDataAsDict`` is the seam for per-subject encryption: it is the only place a personal
value is turned into stored bytes. With a key store, a value is sealed under its data subject's key
(associated data: subject, the event it is in, and its position in that event) and stored as
``{"s": subject, "c": base64(blob)}``; a value of an erased subject is stored and read back as
``{"s": subject, "e": 1}`` → ``PersonalData(subject, ERASED)``. Without one, ``{"s", "v"}`` (plain).
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from eventsourcing.persistence import JSONTranscoder, Transcoding

from ledger.crypto.aead import DecryptionError
from ledger.domain.errors import DataIntegrityError
from ledger.domain.values import ERASED, Actor, PersonalData, RequestContext
from ledger.sealing import current_event

if TYPE_CHECKING:
    from ledger.crypto.keystore import KeyStore

_PD_AAD = b"license-ledger/personal-data/v1\x00"


def personal_data_aad(subject: str) -> bytes:
    ctx = current_event()
    return _PD_AAD + subject.encode() + b"\x00" + (ctx.next_place() if ctx is not None else b"-")


class PersonalDataAsDict(Transcoding):
    type = PersonalData
    name = "pd"

    def __init__(self, keystore: KeyStore | None = None, *, encrypt: bool = True) -> None:
        self.keystore = keystore
        self.encrypt = encrypt and keystore is not None

    def encode(self, obj: PersonalData) -> dict[str, Any]:
        if not self.encrypt or self.keystore is None:
            return {"s": obj.subject, "v": obj.value}
        aad = personal_data_aad(obj.subject)
        if obj.erased:
            return {"s": obj.subject, "e": 1}
        ctx = current_event()
        blob = self.keystore.seal_for_subject(
            obj.subject, ctx.org_id if ctx else None, obj.value.encode(), aad
        )
        if blob is None:  # the subject was erased: the fence keeps new data out
            return {"s": obj.subject, "e": 1}
        return {"s": obj.subject, "c": base64.b64encode(blob).decode("ascii")}

    def decode(self, data: dict[str, Any]) -> PersonalData:
        subject = data["s"]
        if "v" in data:
            return PersonalData(subject=subject, value=data["v"])
        aad = personal_data_aad(subject)
        if "c" not in data or self.keystore is None:
            return PersonalData(subject=subject, value=ERASED)
        try:
            value = self.keystore.open_for_subject(subject, data["c"], aad)
        except DecryptionError:
            raise DataIntegrityError(
                "a personal value does not open under its subject's key at its place"
            ) from None
        return PersonalData(subject=subject, value=ERASED if value is None else value.decode())


class ActorAsDict(Transcoding):
    type = Actor
    name = "actor"

    def encode(self, obj: Actor) -> dict[str, Any]:
        return {"k": obj.kind, "i": obj.id, "e": obj.email}

    def decode(self, data: dict[str, Any]) -> Actor:
        return Actor(kind=data["k"], id=data["i"], email=data["e"])


class RequestContextAsDict(Transcoding):
    type = RequestContext
    name = "ctx"

    def encode(self, obj: RequestContext) -> dict[str, Any]:
        return {"ip": obj.ip, "ua": obj.user_agent}

    def decode(self, data: dict[str, Any]) -> RequestContext:
        return RequestContext(ip=data["ip"], user_agent=data["ua"])


def register_value_transcodings(
    transcoder: JSONTranscoder, keystore: KeyStore | None = None, *, encrypt: bool = True
) -> None:
    transcoder.register(ActorAsDict())
    transcoder.register(RequestContextAsDict())
    transcoder.register(PersonalDataAsDict(keystore, encrypt=encrypt))
