"""How the value objects in events are written to the store (``eventsourcing`` transcodings).

``PersonalDataAsDict`` is the seam for per-subject encryption: it is the only place a personal
value is turned into stored bytes.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import JSONTranscoder, Transcoding

from ledger.domain.values import Actor, PersonalData, RequestContext


class PersonalDataAsDict(Transcoding):
    type = PersonalData
    name = "pd"

    def encode(self, obj: PersonalData) -> dict[str, str]:
        return {"s": obj.subject, "v": obj.value}

    def decode(self, data: dict[str, str]) -> PersonalData:
        return PersonalData(subject=data["s"], value=data["v"])


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


def register_value_transcodings(transcoder: JSONTranscoder) -> None:
    transcoder.register(ActorAsDict())
    transcoder.register(RequestContextAsDict())
    transcoder.register(PersonalDataAsDict())
