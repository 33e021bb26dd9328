"""The license aggregate: one small event-sourced object per license.

Every event carries the organization id, the actor and the request context. A revoked license is
terminal: it stays in the ledger and validates as ``REVOKED``, and every command but reads raises.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

from ledger.domain.errors import (
    IllegalTransitionError,
    InvalidInputError,
    MachineLimitExceededError,
    MachineNotFoundError,
)
from ledger.domain.validation import ExpirationStrategy, LicenseState, Status
from ledger.domain.values import Actor, PersonalData, RequestContext

MAX_FINGERPRINT = 256
MAX_ENTITLEMENT = 128


class License(Aggregate):
    class Issued(Aggregate.Created):
        org_id: UUID
        policy_id: UUID | None
        expires_at: datetime | None
        grace_period_seconds: int
        expiration_strategy: str
        max_machines: int | None
        entitlements: list[str]
        licensee_name: PersonalData | None
        licensee_email: PersonalData | None
        metadata: dict[str, Any]
        key_claims: dict[str, Any]
        key_hash: str
        actor: Actor
        context: RequestContext

    class MachineActivated(Aggregate.Event):
        org_id: UUID
        fingerprint: str
        name: str
        actor: Actor
        context: RequestContext

    class MachineDeactivated(Aggregate.Event):
        org_id: UUID
        fingerprint: str
        actor: Actor
        context: RequestContext

    class Suspended(Aggregate.Event):
        org_id: UUID
        reason: str
        actor: Actor
        context: RequestContext

    class Reinstated(Aggregate.Event):
        org_id: UUID
        actor: Actor
        context: RequestContext

    class Renewed(Aggregate.Event):
        org_id: UUID
        basis: str
        previous_expires_at: datetime | None
        expires_at: datetime
        key_claims: dict[str, Any]
        key_hash: str
        actor: Actor
        context: RequestContext

    class Revoked(Aggregate.Event):
        org_id: UUID
        reason: str
        actor: Actor
        context: RequestContext

    class EntitlementsChanged(Aggregate.Event):
        org_id: UUID
        added: list[str]
        removed: list[str]
        entitlements: list[str]
        key_claims: dict[str, Any]
        key_hash: str
        actor: Actor
        context: RequestContext

    class CheckedIn(Aggregate.Event):
        org_id: UUID
        fingerprint: str | None
        actor: Actor
        context: RequestContext

    @staticmethod
    def create_id(key_claims: dict[str, Any], **_: object) -> UUID:
        """The license id is chosen before the key is signed, and travels in the key's claims."""
        return UUID(key_claims["license_id"])

    @event(Issued)
    def __init__(
        self,
        org_id: UUID,
        policy_id: UUID | None,
        expires_at: datetime | None,
        grace_period_seconds: int,
        expiration_strategy: str,
        max_machines: int | None,
        entitlements: list[str],
        licensee_name: PersonalData | None,
        licensee_email: PersonalData | None,
        metadata: dict[str, Any],
        key_claims: dict[str, Any],
        key_hash: str,
        actor: Actor,
        context: RequestContext,
    ) -> None:
        self.org_id = org_id
        self.policy_id = policy_id
        self.expires_at = expires_at
        self.grace_period_seconds = grace_period_seconds
        self.expiration_strategy = ExpirationStrategy(expiration_strategy)
        self.max_machines = max_machines
        self.entitlements: set[str] = set(entitlements)
        self.licensee_name = licensee_name
        self.licensee_email = licensee_email
        self.metadata = dict(metadata)
        self.key_claims = dict(key_claims)
        self.key_hashes: list[str] = [key_hash]
        self.machines: dict[str, dict[str, Any]] = {}
        self.suspended = False
        self.revoked = False
        self.last_check_in: datetime | None = None

    # ----------------------------------------------------------------- derived state

    @property
    def grace_period(self) -> timedelta:
        return timedelta(seconds=self.grace_period_seconds)

    def state(self) -> LicenseState:
        return LicenseState(
            revoked=self.revoked,
            suspended=self.suspended,
            expires_at=self.expires_at,
            grace_period=self.grace_period,
            expiration_strategy=self.expiration_strategy,
            max_machines=self.max_machines,
            fingerprints=frozenset(self.machines),
            entitlements=frozenset(self.entitlements),
        )

    def status(self, now: datetime) -> Status:
        return self.state().status(now)

    # ----------------------------------------------------------------- invariants

    def check_not_revoked(self, action: str) -> None:
        if self.revoked:
            raise IllegalTransitionError(f"cannot {action} a revoked license")

    def check_can_activate(self, fingerprint: str, now: datetime) -> None:
        self.check_not_revoked("activate a machine on")
        if self.suspended:
            raise IllegalTransitionError("cannot activate a machine on a suspended license")
        state = self.state()
        if state.is_expired(now) and self.expiration_strategy is ExpirationStrategy.RESTRICT_ACCESS:
            raise IllegalTransitionError("cannot activate a machine on an expired license")
        if self.max_machines is not None and len(self.machines) >= self.max_machines:
            raise MachineLimitExceededError(
                f"license allows at most {self.max_machines} machine(s)"
            )

    # ----------------------------------------------------------------- commands

    def activate_machine(
        self, fingerprint: str, name: str, now: datetime, actor: Actor, context: RequestContext
    ) -> bool:
        """Activate a machine; activating an already active fingerprint changes nothing."""
        fingerprint = check_fingerprint(fingerprint)
        if fingerprint in self.machines and not self.revoked:
            return False
        self.check_can_activate(fingerprint, now)
        self._machine_activated(
            org_id=self.org_id,
            fingerprint=fingerprint,
            name=name[:200],
            actor=actor,
            context=context,
        )
        return True

    # Handlers that record "when" take the event's own ``timestamp`` (the library passes it):
    # ``self.modified_on`` is only advanced after the handler runs, so it is the previous event's.

    @event(MachineActivated)
    def _machine_activated(
        self,
        org_id: UUID,
        fingerprint: str,
        name: str,
        actor: Actor,
        context: RequestContext,
        timestamp: datetime | None = None,
    ) -> None:
        self.machines[fingerprint] = {"name": name, "activated_at": timestamp}

    def deactivate_machine(self, fingerprint: str, actor: Actor, context: RequestContext) -> None:
        self.check_not_revoked("deactivate a machine on")
        if fingerprint not in self.machines:
            raise MachineNotFoundError("no machine with that fingerprint on this license")
        self._machine_deactivated(
            org_id=self.org_id, fingerprint=fingerprint, actor=actor, context=context
        )

    @event(MachineDeactivated)
    def _machine_deactivated(
        self, org_id: UUID, fingerprint: str, actor: Actor, context: RequestContext
    ) -> None:
        del self.machines[fingerprint]

    def suspend(self, reason: str, actor: Actor, context: RequestContext) -> None:
        self.check_not_revoked("suspend")
        if self.suspended:
            raise IllegalTransitionError("license is already suspended")
        self._suspended(org_id=self.org_id, reason=reason[:500], actor=actor, context=context)

    @event(Suspended)
    def _suspended(self, org_id: UUID, reason: str, actor: Actor, context: RequestContext) -> None:
        self.suspended = True

    def reinstate(self, actor: Actor, context: RequestContext) -> None:
        self.check_not_revoked("reinstate")
        if not self.suspended:
            raise IllegalTransitionError("only a suspended license can be reinstated")
        self._reinstated(org_id=self.org_id, actor=actor, context=context)

    @event(Reinstated)
    def _reinstated(self, org_id: UUID, actor: Actor, context: RequestContext) -> None:
        self.suspended = False

    def next_expiry(self, basis: str, duration: timedelta, now: datetime) -> datetime:
        """The expiry a renewal by ``duration`` would give, from the current expiry or from now."""
        self.check_not_revoked("renew")
        if basis == "from_expiry":
            start = self.expires_at if self.expires_at is not None else now
        elif basis == "from_now":
            start = now
        else:
            raise InvalidInputError("renewal basis must be 'from_expiry' or 'from_now'")
        try:
            return start + duration
        except OverflowError:
            raise InvalidInputError("the renewed expiry would be after the year 9999") from None

    def renew(
        self,
        basis: str,
        expires_at: datetime,
        key_claims: dict[str, Any],
        key_hash: str,
        actor: Actor,
        context: RequestContext,
    ) -> None:
        self.check_not_revoked("renew")
        self._renewed(
            org_id=self.org_id,
            basis=basis,
            previous_expires_at=self.expires_at,
            expires_at=expires_at,
            key_claims=key_claims,
            key_hash=key_hash,
            actor=actor,
            context=context,
        )

    @event(Renewed)
    def _renewed(
        self,
        org_id: UUID,
        basis: str,
        previous_expires_at: datetime | None,
        expires_at: datetime,
        key_claims: dict[str, Any],
        key_hash: str,
        actor: Actor,
        context: RequestContext,
    ) -> None:
        self.expires_at = expires_at
        self._rekey(key_claims, key_hash)

    def revoke(self, reason: str, actor: Actor, context: RequestContext) -> None:
        if self.revoked:
            raise IllegalTransitionError("license is already revoked")
        self._revoked(org_id=self.org_id, reason=reason[:500], actor=actor, context=context)

    @event(Revoked)
    def _revoked(self, org_id: UUID, reason: str, actor: Actor, context: RequestContext) -> None:
        self.revoked = True

    def change_entitlements(
        self,
        entitlements: set[str],
        key_claims: dict[str, Any],
        key_hash: str,
        actor: Actor,
        context: RequestContext,
    ) -> None:
        self.check_not_revoked("change entitlements of")
        self._entitlements_changed(
            org_id=self.org_id,
            added=sorted(entitlements - self.entitlements),
            removed=sorted(self.entitlements - entitlements),
            entitlements=sorted(entitlements),
            key_claims=key_claims,
            key_hash=key_hash,
            actor=actor,
            context=context,
        )

    @event(EntitlementsChanged)
    def _entitlements_changed(
        self,
        org_id: UUID,
        added: list[str],
        removed: list[str],
        entitlements: list[str],
        key_claims: dict[str, Any],
        key_hash: str,
        actor: Actor,
        context: RequestContext,
    ) -> None:
        self.entitlements = set(entitlements)
        self._rekey(key_claims, key_hash)

    def check_in(self, fingerprint: str | None, actor: Actor, context: RequestContext) -> None:
        self.check_not_revoked("check in")
        if self.suspended:
            raise IllegalTransitionError("cannot check in a suspended license")
        if fingerprint is not None and fingerprint not in self.machines:
            raise MachineNotFoundError("no machine with that fingerprint on this license")
        self._checked_in(org_id=self.org_id, fingerprint=fingerprint, actor=actor, context=context)

    @event(CheckedIn)
    def _checked_in(
        self,
        org_id: UUID,
        fingerprint: str | None,
        actor: Actor,
        context: RequestContext,
        timestamp: datetime | None = None,
    ) -> None:
        self.last_check_in = timestamp
        if fingerprint is not None:
            self.machines[fingerprint]["last_check_in"] = timestamp

    def _rekey(self, key_claims: dict[str, Any], key_hash: str) -> None:
        self.key_claims = dict(key_claims)
        if key_hash not in self.key_hashes:
            self.key_hashes.append(key_hash)


def check_fingerprint(fingerprint: str) -> str:
    if not isinstance(fingerprint, str) or not 1 <= len(fingerprint) <= MAX_FINGERPRINT:
        raise InvalidInputError(f"fingerprint must be 1 to {MAX_FINGERPRINT} characters")
    if not fingerprint.isprintable() or not fingerprint.strip():
        raise InvalidInputError("fingerprint must be printable text, not only spaces")
    return fingerprint


def check_entitlements(entitlements: list[str] | set[str] | tuple[str, ...]) -> set[str]:
    out = set()
    for code in entitlements:
        if not isinstance(code, str) or not 1 <= len(code) <= MAX_ENTITLEMENT:
            raise InvalidInputError(f"entitlement codes must be 1 to {MAX_ENTITLEMENT} characters")
        if not code.isprintable() or not code.strip():
            raise InvalidInputError("entitlement codes must be printable text, not only spaces")
        out.add(code)
    if len(out) > 1000:
        raise InvalidInputError("at most 1,000 entitlements")
    return out
