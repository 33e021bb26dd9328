"""Validation records: every answered validation is an event in its organization's stream.

Each record is its own one-event aggregate, so recording never contends with lifecycle commands and
many records can be committed in one transaction (group commit).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.values import Actor, RequestContext


class ValidationRecord(Aggregate):
    class Recorded(Aggregate.Created):
        org_id: UUID
        license_id: UUID | None
        key_hash: str | None
        valid: bool
        code: str
        scope: dict[str, Any]
        actor: Actor
        context: RequestContext

    @event(Recorded)
    def __init__(
        self,
        org_id: UUID,
        license_id: UUID | None,
        key_hash: str | None,
        valid: bool,
        code: str,
        scope: dict[str, Any],
        actor: Actor,
        context: RequestContext,
    ) -> None:
        self.org_id = org_id
        self.license_id = license_id
        self.code = code
        self.valid = valid
