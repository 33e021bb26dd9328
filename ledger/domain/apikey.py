"""API keys: org-scoped credentials stored only as SHA-256, recorded in the ledger like the rest."""

from __future__ import annotations

import uuid
from datetime import datetime
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
            f"unknown permission(s): {', '.join(unknown)}; known: {', '.join((ADMIN, *PERMISSIONS))}"
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

    def grants(self, permission: str) -> bool:
        return ADMIN in self.permissions or permission in self.permissions

    def is_usable(self, now: datetime) -> bool:
        if self.revoked_at is not None and now >= self.revoked_at:
            return False
        return self.expires_at is None or now < self.expires_at

    def revoke(self, effective_at: datetime, actor: Actor, context: RequestContext) -> None:
        if self.revoked_at is not None:
            raise IllegalTransitionError("API key is already revoked")
        self._revoked(org_id=self.org_id, effective_at=effective_at, actor=actor, context=context)

    @event(Revoked)
    def _revoked(
        self, org_id: UUID, effective_at: datetime, actor: Actor, context: RequestContext
    ) -> None:
        self.revoked_at = effective_at
