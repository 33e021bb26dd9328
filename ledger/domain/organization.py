"""Organizations (tenants) and their policies."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.errors import InvalidInputError
from ledger.domain.validation import ExpirationStrategy
from ledger.domain.values import Actor, RequestContext


class Organization(Aggregate):
    """A tenant. Every other aggregate carries the id of exactly one organization."""

    class Created(Aggregate.Created):
        name: str
        actor: Actor
        context: RequestContext

    @event(Created)
    def __init__(self, name: str, actor: Actor, context: RequestContext) -> None:
        self.name = name

    @property
    def org_id(self) -> UUID:
        return self.id

    @staticmethod
    def check_name(name: str) -> str:
        name = name.strip()
        if not 1 <= len(name) <= 200 or not name.isprintable():
            raise InvalidInputError("organization name must be 1 to 200 printable characters")
        return name


class Policy(Aggregate):
    """Rules shared by a family of licenses: duration, machine limit, expiry behaviour."""

    class Created(Aggregate.Created):
        org_id: UUID
        name: str
        duration_seconds: int | None
        max_machines: int | None
        expiration_strategy: str
        grace_period_seconds: int
        entitlements: list[str]
        actor: Actor
        context: RequestContext

    @event(Created)
    def __init__(
        self,
        org_id: UUID,
        name: str,
        duration_seconds: int | None,
        max_machines: int | None,
        expiration_strategy: str,
        grace_period_seconds: int,
        entitlements: list[str],
        actor: Actor,
        context: RequestContext,
    ) -> None:
        self.org_id = org_id
        self.name = name
        self.duration_seconds = duration_seconds
        self.max_machines = max_machines
        self.expiration_strategy = ExpirationStrategy(expiration_strategy)
        self.grace_period_seconds = grace_period_seconds
        self.entitlements = list(entitlements)

    @property
    def duration(self) -> timedelta | None:
        return None if self.duration_seconds is None else timedelta(seconds=self.duration_seconds)

    @staticmethod
    def check_terms(
        name: str,
        duration_seconds: int | None,
        max_machines: int | None,
        expiration_strategy: str,
        grace_period_seconds: int,
    ) -> None:
        if not 1 <= len(name.strip()) <= 200 or not name.isprintable():
            raise InvalidInputError("policy name must be 1 to 200 printable characters")
        if duration_seconds is not None and not 1 <= duration_seconds <= 100 * 366 * 86400:
            raise InvalidInputError("duration must be between 1 second and 100 years")
        if max_machines is not None and not 0 <= max_machines <= 1_000_000:
            raise InvalidInputError("max_machines must be between 0 and 1,000,000")
        if expiration_strategy not in ExpirationStrategy.__members__:
            raise InvalidInputError(
                f"expiration_strategy must be one of {', '.join(ExpirationStrategy)}"
            )
        if not 0 <= grace_period_seconds <= 366 * 86400:
            raise InvalidInputError("grace period must be between 0 seconds and 1 year")
