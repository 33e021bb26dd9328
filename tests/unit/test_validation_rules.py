"""The validation rules: every code, the documented precedence, and a property over all inputs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.validation import (
    PRECEDENCE,
    Code,
    ExpirationStrategy,
    LicenseState,
    Scope,
    Verdict,
    validate,
)

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
RESTRICT = ExpirationStrategy.RESTRICT_ACCESS
MAINTAIN = ExpirationStrategy.MAINTAIN_ACCESS


def license_state(
    *,
    revoked: bool = False,
    suspended: bool = False,
    expires_at: datetime | None = NOW + 30 * DAY,
    grace_period: timedelta = timedelta(0),
    expiration_strategy: ExpirationStrategy = RESTRICT,
    max_machines: int | None = 3,
    fingerprints: tuple[str, ...] = ("fp-1",),
    entitlements: tuple[str, ...] = ("pro",),
) -> LicenseState:
    """A license in good standing, changed by the given fields."""
    return LicenseState(
        revoked=revoked,
        suspended=suspended,
        expires_at=expires_at,
        grace_period=grace_period,
        expiration_strategy=expiration_strategy,
        max_machines=max_machines,
        fingerprints=frozenset(fingerprints),
        entitlements=frozenset(entitlements),
    )


def scope(
    fingerprint: str | None = None,
    fingerprints: tuple[str, ...] = (),
    entitlements: tuple[str, ...] = (),
) -> Scope:
    return Scope(
        fingerprint=fingerprint, fingerprints=fingerprints, entitlements=frozenset(entitlements)
    )


@pytest.fixture
def make_state() -> Callable[..., LicenseState]:
    return license_state


@dataclass(frozen=True)
class Case:
    name: str
    state: LicenseState | None
    scope: Scope
    expected: Verdict
    now: datetime = NOW


EXPIRED_AT = NOW - DAY
EVERYTHING_WRONG = license_state(
    revoked=True,
    suspended=True,
    expires_at=EXPIRED_AT,
    max_machines=0,
    fingerprints=("fp-1", "fp-2"),
    entitlements=(),
)
MISMATCHED = scope("other", entitlements=("enterprise",))

CASES = [
    Case("unknown license is not found", None, MISMATCHED, Verdict(False, Code.NOT_FOUND)),
    Case(
        "revoked beats every other failure",
        EVERYTHING_WRONG,
        MISMATCHED,
        Verdict(False, Code.REVOKED),
    ),
    Case(
        "revoked license with a matching scope is still revoked",
        license_state(revoked=True),
        scope("fp-1", entitlements=("pro",)),
        Verdict(False, Code.REVOKED),
    ),
    Case(
        "suspended beats expired and scope failures",
        replace(EVERYTHING_WRONG, revoked=False),
        MISMATCHED,
        Verdict(False, Code.SUSPENDED),
    ),
    Case(
        "expired beats machine and scope failures",
        replace(EVERYTHING_WRONG, revoked=False, suspended=False),
        MISMATCHED,
        Verdict(False, Code.EXPIRED),
    ),
    Case(
        "expired exactly at the expiry instant",
        license_state(expires_at=NOW),
        scope(),
        Verdict(False, Code.EXPIRED),
    ),
    Case(
        "valid one microsecond before expiry",
        license_state(expires_at=NOW + timedelta(microseconds=1)),
        scope(),
        Verdict(True, Code.VALID),
    ),
    Case(
        "past expiry but within grace is valid",
        license_state(expires_at=EXPIRED_AT, grace_period=2 * DAY),
        scope(),
        Verdict(True, Code.VALID),
    ),
    Case(
        "expired exactly when grace ends",
        license_state(expires_at=EXPIRED_AT, grace_period=DAY),
        scope(),
        Verdict(False, Code.EXPIRED),
    ),
    Case(
        "expired after grace ends",
        license_state(expires_at=EXPIRED_AT, grace_period=DAY - timedelta(seconds=1)),
        scope(),
        Verdict(False, Code.EXPIRED),
    ),
    Case(
        "maintain-access expired license is valid but says EXPIRED",
        license_state(expires_at=EXPIRED_AT, expiration_strategy=MAINTAIN),
        scope(),
        Verdict(True, Code.EXPIRED),
    ),
    Case(
        "maintain-access expiry skips the machine and scope checks",
        replace(EVERYTHING_WRONG, revoked=False, suspended=False, expiration_strategy=MAINTAIN),
        MISMATCHED,
        Verdict(True, Code.EXPIRED),
    ),
    Case(
        "maintain-access within grace goes on to the scope checks",
        license_state(expires_at=EXPIRED_AT, grace_period=2 * DAY, expiration_strategy=MAINTAIN),
        scope("other"),
        Verdict(False, Code.FINGERPRINT_SCOPE_MISMATCH),
    ),
    Case(
        "license without expiry never expires",
        license_state(expires_at=None),
        scope(),
        Verdict(True, Code.VALID),
        now=datetime(9000, 1, 1, tzinfo=UTC),
    ),
    Case(
        "more machines than allowed beats scope failures",
        license_state(max_machines=1, fingerprints=("fp-1", "fp-2")),
        MISMATCHED,
        Verdict(False, Code.TOO_MANY_MACHINES),
    ),
    Case(
        "zero-machine license with no machines is fine",
        license_state(max_machines=0, fingerprints=()),
        scope(),
        Verdict(True, Code.VALID),
    ),
    Case(
        "exactly max_machines machines is fine",
        license_state(max_machines=2, fingerprints=("fp-1", "fp-2")),
        scope("fp-2"),
        Verdict(True, Code.VALID),
    ),
    Case(
        "unlimited machines never has too many",
        license_state(max_machines=None, fingerprints=tuple(f"fp-{i}" for i in range(50))),
        scope("fp-49"),
        Verdict(True, Code.VALID),
    ),
    Case(
        "fingerprint scope on a license with no machines",
        license_state(fingerprints=()),
        scope("fp-1", entitlements=("enterprise",)),
        Verdict(False, Code.NO_MACHINE),
    ),
    Case(
        "fingerprint list scope on a license with no machines",
        license_state(fingerprints=()),
        scope(fingerprints=("fp-1",)),
        Verdict(False, Code.NO_MACHINE),
    ),
    Case(
        "no fingerprint in scope and no machines is fine",
        license_state(fingerprints=()),
        scope(),
        Verdict(True, Code.VALID),
    ),
    Case(
        "fingerprint not activated beats missing entitlements",
        license_state(),
        scope("other", entitlements=("enterprise",)),
        Verdict(False, Code.FINGERPRINT_SCOPE_MISMATCH),
    ),
    Case(
        "none of several fingerprints activated",
        license_state(),
        scope("a", fingerprints=("b", "c")),
        Verdict(False, Code.FINGERPRINT_SCOPE_MISMATCH),
    ),
    Case(
        "one of several fingerprints activated is enough",
        license_state(),
        scope("a", fingerprints=("b", "fp-1")),
        Verdict(True, Code.VALID),
    ),
    Case(
        "single fingerprint in the list form",
        license_state(),
        scope(fingerprints=("fp-1",)),
        Verdict(True, Code.VALID),
    ),
    Case(
        "missing entitlement",
        license_state(),
        scope("fp-1", entitlements=("pro", "enterprise")),
        Verdict(False, Code.ENTITLEMENTS_MISSING),
    ),
    Case(
        "entitlement required of a license with none",
        license_state(entitlements=()),
        scope(entitlements=("pro",)),
        Verdict(False, Code.ENTITLEMENTS_MISSING),
    ),
    Case(
        "subset of entitlements is valid",
        license_state(entitlements=("pro", "sso")),
        scope(entitlements=("sso",)),
        Verdict(True, Code.VALID),
    ),
    Case(
        "good standing with an empty scope is valid",
        license_state(),
        scope(),
        Verdict(True, Code.VALID),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_validation_answers_with_the_documented_code(case: Case) -> None:
    assert validate(case.state, case.scope, case.now) == case.expected


def test_validation_table_covers_every_code() -> None:
    assert {c.expected.code for c in CASES} == set(Code)


def test_precedence_lists_every_code_once_with_valid_last() -> None:
    assert sorted(PRECEDENCE) == sorted(Code)
    assert len(set(PRECEDENCE)) == len(PRECEDENCE)
    assert PRECEDENCE[0] is Code.NOT_FOUND
    assert PRECEDENCE[-1] is Code.VALID


def test_precedence_is_the_documented_order() -> None:
    assert PRECEDENCE == (
        Code.NOT_FOUND,
        Code.REVOKED,
        Code.SUSPENDED,
        Code.EXPIRED,
        Code.TOO_MANY_MACHINES,
        Code.NO_MACHINE,
        Code.FINGERPRINT_SCOPE_MISMATCH,
        Code.ENTITLEMENTS_MISSING,
        Code.VALID,
    )


def test_every_verdict_has_a_detail() -> None:
    for code in Code:
        assert Verdict(code is Code.VALID, code).detail.startswith("license ")


def test_factory_fixture_builds_a_valid_license(make_state: Callable[..., LicenseState]) -> None:
    assert validate(make_state(), scope("fp-1", entitlements=("pro",)), NOW) == Verdict(
        True, Code.VALID
    )


# ---------------------------------------------------------------------- property

# Each predicate is written out on its own, without reference to the others or to validate().


def _wanted(sc: Scope) -> list[str]:
    out = list(sc.fingerprints)
    if sc.fingerprint is not None:
        out.append(sc.fingerprint)
    return out


PREDICATES: dict[Code, Callable[[LicenseState | None, Scope, datetime], bool]] = {
    Code.NOT_FOUND: lambda s, sc, now: s is None,
    Code.REVOKED: lambda s, sc, now: s is not None and s.revoked,
    Code.SUSPENDED: lambda s, sc, now: s is not None and s.suspended,
    Code.EXPIRED: lambda s, sc, now: (
        s is not None and s.expires_at is not None and now - s.expires_at >= s.grace_period
    ),
    Code.TOO_MANY_MACHINES: lambda s, sc, now: (
        s is not None and s.max_machines is not None and len(s.fingerprints) > s.max_machines
    ),
    Code.NO_MACHINE: lambda s, sc, now: (
        s is not None and len(_wanted(sc)) > 0 and len(s.fingerprints) == 0
    ),
    Code.FINGERPRINT_SCOPE_MISMATCH: lambda s, sc, now: (
        s is not None and len(_wanted(sc)) > 0 and not any(f in s.fingerprints for f in _wanted(sc))
    ),
    Code.ENTITLEMENTS_MISSING: lambda s, sc, now: (
        s is not None and any(e not in s.entitlements for e in sc.entitlements)
    ),
    Code.VALID: lambda s, sc, now: True,
}

NAMES = st.sampled_from(["a", "b", "c", "d"])
INSTANTS = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)
)
STATES = st.none() | st.builds(
    LicenseState,
    revoked=st.booleans(),
    suspended=st.booleans(),
    expires_at=st.none() | INSTANTS,
    grace_period=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=60)),
    expiration_strategy=st.sampled_from(ExpirationStrategy),
    max_machines=st.none() | st.integers(0, 4),
    fingerprints=st.frozensets(NAMES, max_size=4),
    entitlements=st.frozensets(NAMES, max_size=4),
)
SCOPES = st.builds(
    Scope,
    fingerprint=st.none() | NAMES,
    fingerprints=st.lists(NAMES, max_size=3).map(tuple),
    entitlements=st.frozensets(NAMES, max_size=3),
)


@given(state=STATES, sc=SCOPES, now=INSTANTS)
def test_validation_answers_with_the_first_code_whose_condition_holds(
    state: LicenseState | None, sc: Scope, now: datetime
) -> None:
    assert set(PREDICATES) == set(PRECEDENCE)
    expected = next(code for code in PRECEDENCE if PREDICATES[code](state, sc, now))
    verdict = validate(state, sc, now)
    assert verdict.code is expected
    maintained = (
        expected is Code.EXPIRED
        and state is not None
        and state.expiration_strategy is ExpirationStrategy.MAINTAIN_ACCESS
    )
    assert verdict.valid is (expected is Code.VALID or maintained)
