"""Data subjects: the people personal data in events belongs to, and their erasure.

A subject's stream holds one event, ``Subject.Erased``, appended when its key is destroyed. It
carries no personal data: the subject id (a one-way hash of org, kind and natural key) and who
asked for the erasure.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.values import Actor

_NS = uuid.UUID("9b2f6c1e-7d4a-4e38-b5a0-2c7e1f9d3a64")


def subject_aggregate_id(subject: str) -> UUID:
    return uuid.uuid5(_NS, subject)


class Subject(Aggregate):
    class Erased(Aggregate.Created):
        org_id: UUID
        subject_id: str
        erased_at: datetime
        actor: Actor

    @event(Erased)
    def __init__(self, org_id: UUID, subject_id: str, erased_at: datetime, actor: Actor) -> None:
        self.org_id = org_id
        self.subject_id = subject_id
        self.erased_at = erased_at

    @staticmethod
    def create_id(subject_id: str, **_: object) -> UUID:
        return subject_aggregate_id(subject_id)
