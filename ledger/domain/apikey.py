"""API keys: org-scoped credentials stored only as SHA-256, recorded in the ledger like the rest."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.errors import IllegalTransitionError, InvalidInputError
from ledger.domain.values import Actor, RequestContext

PERMISSIONS: tuple[str, ...] = (
    "licenses:read",
    "licenses:write",
    "policies:read",
    "policies:write",
    "audit:read",
    "webhooks:manage",
    "keys:admin",
    "apikeys:manage",
    "subjects:manage",
)
ADMIN = "admin"  # every permission

_NAMESPACE = uuid.UUID("0b4f3a52-77d1-4d0e-a1f3-5b8e0c2d9e61")


def api_key_aggregate_id(key_id: str) -> UUID:
    """The aggregate id of an API key, derived from the public key id so lookups need no index."""
    return uuid.uuid5(_NAMESPACE, key_id)


def check_permissions(permissions: list[str]) -> list[str]:
    unknown = sorted(set(permissions) - {*PERMISSIONS, ADMIN})
    if unknown:
        raise InvalidInputError(
            f"unknown permission(s): {', '.join(unknown)}; "
            f"known: {', '.join((ADMIN, *PERMISSIONS))}"
        )
    return sorted(set(permissions))


class ApiKey(Aggregate):
    class Created(Aggregate.Created):
        org_id: UUID
        key_id: str
        secret_hash: str
        name: str
        permissions: list[str]
        expires_at: datetime | None
        rate_limit: str | None
        allowed_cidrs: list[str]
        actor: Actor
        context: RequestContext

    class Revoked(Aggregate.Event):
        org_id: UUID
        effective_at: datetime
        actor: Actor
        context: RequestContext

    class Rotated(Aggregate.Event):
        """A successor key was created; this one stays valid until ``effective_at`` (the grace)."""

        org_id: UUID
        successor_key_id: str
        effective_at: datetime
        actor: Actor
        context: RequestContext

    @staticmethod
    def create_id(key_id: str, **_: object) -> UUID:
        return api_key_aggregate_id(key_id)

    @event(Created)
    def __init__(
        self,
        org_id: UUID,
        key_id: str,
        secret_hash: str,
        name: str,
        permissions: list[str],
        expires_at: datetime | None,
        rate_limit: str | None,
        allowed_cidrs: list[str],
        actor: Actor,
        context: RequestContext,
    ) -> None:
        self.org_id = org_id
        self.key_id = key_id
        self.secret_hash = secret_hash
        self.name = name
        self.permissions = list(permissions)
        self.expires_at = expires_at
        self.rate_limit = rate_limit
        self.allowed_cidrs = list(allowed_cidrs)
        self.revoked_at: datetime | None = None
        self.successor_key_id: str | None = None

    def grants(self, permission: str) -> bool:
        return ADMIN in self.permissions or permission in self.permissions

    def is_usable(self, now: datetime) -> bool:
        if self.revoked_at is not None and now >= self.revoked_at:
            return False
        return self.expires_at is None or now < self.expires_at

    def check_not_ended(self, now: datetime, doing: str) -> None:
        if self.revoked_at is not None and now >= self.revoked_at:
            raise IllegalTransitionError(f"cannot {doing} an API key that is already revoked")

    def revoke(self, effective_at: datetime, actor: Actor, context: RequestContext) -> None:
        """End the key at ``effective_at``; a key still in its rotation grace ends now."""
        self.check_not_ended(effective_at, "revoke")
        self._revoked(org_id=self.org_id, effective_at=effective_at, actor=actor, context=context)

    def rotate(
        self,
        successor_key_id: str,
        now: datetime,
        grace: timedelta,
        actor: Actor,
        context: RequestContext,
    ) -> None:
        """Hand over to ``successor_key_id``; this key keeps working for ``grace``."""
        self.check_not_ended(now, "rotate")
        if self.successor_key_id is not None:
            raise IllegalTransitionError(
                f"API key was already rotated to {self.successor_key_id}; rotate that one"
            )
        if grace < timedelta(0):
            raise InvalidInputError("the rotation grace cannot be negative")
        effective_at = now + grace
        if self.revoked_at is not None:
            effective_at = min(effective_at, self.revoked_at)
        self._rotated(
            org_id=self.org_id,
            successor_key_id=successor_key_id,
            effective_at=effective_at,
            actor=actor,
            context=context,
        )

    @event(Revoked)
    def _revoked(
        self, org_id: UUID, effective_at: datetime, actor: Actor, context: RequestContext
    ) -> None:
        self.revoked_at = effective_at

    @event(Rotated)
    def _rotated(
        self,
        org_id: UUID,
        successor_key_id: str,
        effective_at: datetime,
        actor: Actor,
        context: RequestContext,
    ) -> None:
        self.successor_key_id = successor_key_id
        self.revoked_at = effective_at


class ApiKeyUse(Aggregate):
    """A sampled use of an API key, recorded in the org's stream (at most one per key per interval
    and process; see docs/api.md). A one-event aggregate, like validation records, so recording
    never contends with changes to the key itself and never lengthens its stream."""

    class Recorded(Aggregate.Created):
        org_id: UUID
        key_id: str
        method: str
        route: str
        actor: Actor
        context: RequestContext

    @event(Recorded)
    def __init__(
        self,
        org_id: UUID,
        key_id: str,
        method: str,
        route: str,
        actor: Actor,
        context: RequestContext,
    ) -> None:
        self.org_id = org_id
        self.key_id = key_id
