"""Webhook endpoints: where an organization wants its events delivered, signed.

An endpoint's secrets never appear in an event in plaintext: each event carries the secret *sealed*
under the key-encryption key (AES-256-GCM, bound to org, endpoint and secret id), so the endpoint
and its secrets can be rebuilt from the log alone, and the log reveals nothing without the KEK.
During a rotation the previous secret keeps signing until its ``expires_at``.
"""

from __future__ import annotations

import fnmatch
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.errors import IllegalTransitionError, InvalidInputError
from ledger.domain.values import Actor, RequestContext

MAX_EVENT_TYPES = 100
MAX_DESCRIPTION = 500
MAX_URL = 2048


def check_event_types(event_types: list[str], known: frozenset[str]) -> list[str]:
    """Exact event type names, ``<prefix>.*`` for every event of one aggregate, or ``*``."""
    from ledger.domain.errors import UnknownEventTypeError

    if not event_types:
        raise UnknownEventTypeError("give at least one event type (or '*' for all)")
    if len(event_types) > MAX_EVENT_TYPES:
        raise UnknownEventTypeError(f"at most {MAX_EVENT_TYPES} event type filters")
    prefixes = {t.partition(".")[0] for t in known}
    unknown = []
    for t in event_types:
        if t == "*" or t in known:
            continue
        if t.endswith(".*") and t[:-2] in prefixes:
            continue
        unknown.append(t)
    if unknown:
        raise UnknownEventTypeError(
            f"unknown event type(s): {', '.join(sorted(unknown))}; use exact names such as "
            f"'license.suspended', '<prefix>.*' (prefixes: {', '.join(sorted(prefixes))}) or '*'"
        )
    return sorted(set(event_types))


def matches(event_types: list[str], event_type: str) -> bool:
    return any(fnmatch.fnmatchcase(event_type, pattern) for pattern in event_types)


class WebhookEndpoint(Aggregate):
    class Created(Aggregate.Created):
        org_id: UUID
        url: str
        event_types: list[str]
        description: str
        enabled: bool
        secret: dict[str, Any]
        actor: Actor
        context: RequestContext

    class Updated(Aggregate.Event):
        org_id: UUID
        url: str
        event_types: list[str]
        description: str
        actor: Actor
        context: RequestContext

    class SecretRotated(Aggregate.Event):
        org_id: UUID
        secret: dict[str, Any]
        previous_expires_at: datetime
        actor: Actor
        context: RequestContext

    class Disabled(Aggregate.Event):
        org_id: UUID
        reason: str
        actor: Actor
        context: RequestContext

    class Enabled(Aggregate.Event):
        org_id: UUID
        actor: Actor
        context: RequestContext

    @event(Created)
    def __init__(
        self,
        org_id: UUID,
        url: str,
        event_types: list[str],
        description: str,
        enabled: bool,
        secret: dict[str, Any],
        actor: Actor,
        context: RequestContext,
    ) -> None:
        self.org_id = org_id
        self.url = url
        self.event_types = list(event_types)
        self.description = description
        self.enabled = enabled
        self.disabled_reason: str | None = None if enabled else "created disabled"
        self.secrets: list[dict[str, Any]] = [dict(secret, expires_at=None)]

    @staticmethod
    def check_description(description: str) -> str:
        description = description.strip()
        if len(description) > MAX_DESCRIPTION or not description.isprintable():
            raise InvalidInputError(
                f"description must be printable text of at most {MAX_DESCRIPTION} characters"
            )
        return description

    def update(
        self, url: str, event_types: list[str], description: str, actor: Actor, ctx: RequestContext
    ) -> None:
        if (url, event_types, description) == (self.url, self.event_types, self.description):
            return
        self._updated(
            org_id=self.org_id,
            url=url,
            event_types=event_types,
            description=description,
            actor=actor,
            context=ctx,
        )

    @event(Updated)
    def _updated(
        self,
        org_id: UUID,
        url: str,
        event_types: list[str],
        description: str,
        actor: Actor,
        context: RequestContext,
    ) -> None:
        self.url = url
        self.event_types = list(event_types)
        self.description = description

    def rotate_secret(
        self,
        secret: dict[str, Any],
        previous_expires_at: datetime,
        actor: Actor,
        ctx: RequestContext,
    ) -> None:
        self._secret_rotated(
            org_id=self.org_id,
            secret=secret,
            previous_expires_at=previous_expires_at,
            actor=actor,
            context=ctx,
        )

    @event(SecretRotated)
    def _secret_rotated(
        self,
        org_id: UUID,
        secret: dict[str, Any],
        previous_expires_at: datetime,
        actor: Actor,
        context: RequestContext,
    ) -> None:
        self.secrets = rotated(self.secrets, secret, previous_expires_at)

    def disable(self, reason: str, actor: Actor, ctx: RequestContext) -> None:
        if not self.enabled:
            raise IllegalTransitionError("the webhook endpoint is already disabled")
        self._disabled(org_id=self.org_id, reason=reason[:500], actor=actor, context=ctx)

    @event(Disabled)
    def _disabled(self, org_id: UUID, reason: str, actor: Actor, context: RequestContext) -> None:
        self.enabled = False
        self.disabled_reason = reason

    def enable(self, actor: Actor, ctx: RequestContext) -> None:
        if self.enabled:
            raise IllegalTransitionError("the webhook endpoint is already enabled")
        self._enabled(org_id=self.org_id, actor=actor, context=ctx)

    @event(Enabled)
    def _enabled(self, org_id: UUID, actor: Actor, context: RequestContext) -> None:
        self.enabled = True
        self.disabled_reason = None


def rotated(
    secrets: list[dict[str, Any]], new: dict[str, Any], previous_expires_at: datetime
) -> list[dict[str, Any]]:
    """The secrets after a rotation.

    The new one, then the current one until ``previous_expires_at``.

    Secrets of earlier rotations are dropped: at most two secrets sign at any time.
    """
    current = [s for s in secrets if s.get("expires_at") is None]
    kept = [dict(s, expires_at=previous_expires_at.isoformat()) for s in current[:1]]
    return [dict(new, expires_at=None), *kept]
