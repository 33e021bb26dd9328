"""Value objects carried by events: who acted, from where, and personal data.

Personal data (licensee name and email, actor email, IP address, user agent) is always wrapped in
:class:`PersonalData`, tagged with its data subject, so that the persistence layer can encrypt it
under that subject's key and erase it by destroying the key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

#: What an erased personal field reads back as.
ERASED = "[erased]"

_SUBJECTS = uuid.UUID("6f1c2a4e-3b9d-4f7e-9a51-0c8d2e7b4a10")

ActorKind = Literal["api_key", "cli", "system", "anonymous"]


def subject_id(org_id: uuid.UUID, kind: str, natural_key: str) -> str:
    """A stable data-subject id: the same person in the same org always maps to the same id."""
    return str(uuid.uuid5(_SUBJECTS, f"{org_id}:{kind}:{natural_key.strip().lower()}"))


@dataclass(frozen=True)
class PersonalData:
    """A personal value and the data subject it belongs to."""

    subject: str
    value: str

    @property
    def erased(self) -> bool:
        return self.value == ERASED

    def __repr__(self) -> str:
        return f"PersonalData(subject={self.subject!r}, value=<redacted>)"


@dataclass(frozen=True)
class Actor:
    """Who caused an event: an API key, a CLI user, the system itself, or an anonymous caller."""

    kind: ActorKind
    id: str
    email: PersonalData | None = None

    @property
    def label(self) -> str:
        return f"{self.kind}:{self.id}"

    @classmethod
    def system(cls) -> Actor:
        return cls(kind="system", id="ledger")


@dataclass(frozen=True)
class RequestContext:
    """Where a command came from. Both fields are personal data of the requester."""

    ip: PersonalData | None = None
    user_agent: PersonalData | None = None

    @classmethod
    def none(cls) -> RequestContext:
        return cls()

    @classmethod
    def of(
        cls, org_id: uuid.UUID, actor: Actor, ip: str | None, user_agent: str | None
    ) -> RequestContext:
        """Context of a request, its personal fields filed under the requesting actor's subject."""
        subject = subject_id(
            org_id, "actor", actor.label if actor.kind != "anonymous" else ip or ""
        )
        return cls(
            ip=PersonalData(subject, ip) if ip else None,
            user_agent=PersonalData(subject, user_agent[:512]) if user_agent else None,
        )
