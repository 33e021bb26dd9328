"""License validation: one pure function over a license's state, a request scope and a clock.

Precedence, first match wins (docs/validation.md):

    NOT_FOUND › REVOKED › SUSPENDED › EXPIRED › TOO_MANY_MACHINES › NO_MACHINE
    › FINGERPRINT_SCOPE_MISMATCH › ENTITLEMENTS_MISSING › VALID

Under the ``MAINTAIN_ACCESS`` expiration strategy an expired license answers ``EXPIRED`` with
``valid: true`` and the remaining checks are skipped, as in Keygen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class Status(StrEnum):
    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"


class ExpirationStrategy(StrEnum):
    RESTRICT_ACCESS = "RESTRICT_ACCESS"
    MAINTAIN_ACCESS = "MAINTAIN_ACCESS"


class Code(StrEnum):
    VALID = "VALID"
    NOT_FOUND = "NOT_FOUND"
    REVOKED = "REVOKED"
    SUSPENDED = "SUSPENDED"
    EXPIRED = "EXPIRED"
    TOO_MANY_MACHINES = "TOO_MANY_MACHINES"
    NO_MACHINE = "NO_MACHINE"
    FINGERPRINT_SCOPE_MISMATCH = "FINGERPRINT_SCOPE_MISMATCH"
    ENTITLEMENTS_MISSING = "ENTITLEMENTS_MISSING"


#: Codes in precedence order, first match wins.
PRECEDENCE: tuple[Code, ...] = (*tuple(Code)[1:], Code.VALID)

_DETAIL = {
    Code.VALID: "is valid",
    Code.NOT_FOUND: "does not exist",
    Code.REVOKED: "has been revoked",
    Code.SUSPENDED: "is suspended",
    Code.EXPIRED: "is expired",
    Code.TOO_MANY_MACHINES: "has more machines than it allows",
    Code.NO_MACHINE: "has no activated machine",
    Code.FINGERPRINT_SCOPE_MISMATCH: "is not activated on the given fingerprint(s)",
    Code.ENTITLEMENTS_MISSING: "lacks a required entitlement",
}


@dataclass(frozen=True)
class LicenseState:
    """What validation needs to know about a license; no personal data."""

    revoked: bool
    suspended: bool
    expires_at: datetime | None
    grace_period: timedelta
    expiration_strategy: ExpirationStrategy
    max_machines: int | None
    fingerprints: frozenset[str]
    entitlements: frozenset[str]

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at + self.grace_period

    def status(self, now: datetime) -> Status:
        if self.revoked:
            return Status.REVOKED
        if self.suspended:
            return Status.SUSPENDED
        if self.is_expired(now):
            return Status.EXPIRED
        return Status.ACTIVE


@dataclass(frozen=True)
class Scope:
    """What the caller asks to be true besides the license being in good standing."""

    fingerprint: str | None = None
    fingerprints: tuple[str, ...] = ()
    entitlements: frozenset[str] = field(default_factory=frozenset)

    @property
    def machine_fingerprints(self) -> tuple[str, ...]:
        fps = self.fingerprints
        return (self.fingerprint, *fps) if self.fingerprint else fps

    def as_dict(self) -> Mapping[str, object]:
        return {
            "fingerprint": self.fingerprint,
            "fingerprints": list(self.fingerprints),
            "entitlements": sorted(self.entitlements),
        }


@dataclass(frozen=True)
class Verdict:
    valid: bool
    code: Code

    @property
    def detail(self) -> str:
        return f"license {_DETAIL[self.code]}"


def validate(state: LicenseState | None, scope: Scope, now: datetime) -> Verdict:
    """Answer "is this license valid for this scope at ``now``?" with the documented precedence.

    With several fingerprints in scope, the license must be activated on at least one of them.
    """
    if state is None:
        return Verdict(False, Code.NOT_FOUND)
    if state.revoked:
        return Verdict(False, Code.REVOKED)
    if state.suspended:
        return Verdict(False, Code.SUSPENDED)
    if state.is_expired(now):
        maintain = state.expiration_strategy is ExpirationStrategy.MAINTAIN_ACCESS
        return Verdict(maintain, Code.EXPIRED)
    if state.max_machines is not None and len(state.fingerprints) > state.max_machines:
        return Verdict(False, Code.TOO_MANY_MACHINES)
    wanted = scope.machine_fingerprints
    if wanted:
        if not state.fingerprints:
            return Verdict(False, Code.NO_MACHINE)
        if state.fingerprints.isdisjoint(wanted):
            return Verdict(False, Code.FINGERPRINT_SCOPE_MISMATCH)
    if not scope.entitlements <= state.entitlements:
        return Verdict(False, Code.ENTITLEMENTS_MISSING)
    return Verdict(True, Code.VALID)
