"""The ledger against a real event store (SQLite and PostgreSQL): lifecycle, history, restarts,
key rotation, tenancy, and agreement between the read model and the replayed aggregate."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Protocol
from uuid import uuid4

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import offline
from ledger.application import IssuedLicense
from ledger.bootstrap import Ledger, bootstrap
from ledger.domain.errors import (
    IllegalTransitionError,
    InvalidInputError,
    LedgerError,
    LicenseNotFoundError,
)
from ledger.domain.license import License
from ledger.domain.organization import Organization, Policy
from ledger.domain.validation import Code, Scope, validate
from ledger.domain.values import Actor, RequestContext

ACTOR = Actor(kind="cli", id="test")
CTX = RequestContext()
DAY = timedelta(days=1)


def utcnow() -> datetime:
    return datetime.now(UTC)


class MakePolicy(Protocol):
    def __call__(
        self,
        *,
        duration_seconds: int | None = ...,
        max_machines: int | None = ...,
        expiration_strategy: str = ...,
        grace_period_seconds: int = ...,
        entitlements: list[str] | None = ...,
    ) -> Policy: ...


class Issue(Protocol):
    def __call__(
        self,
        policy: Policy | None = None,
        *,
        expires_at: datetime | None = ...,
        entitlements: list[str] | None = ...,
    ) -> IssuedLicense: ...


@pytest.fixture
def make_policy(ledger: Ledger, org: Organization) -> MakePolicy:
    def make(
        *,
        duration_seconds: int | None = 30 * 86400,
        max_machines: int | None = 3,
        expiration_strategy: str = "RESTRICT_ACCESS",
        grace_period_seconds: int = 0,
        entitlements: list[str] | None = None,
    ) -> Policy:
        return ledger.app.create_policy(
            org.id,
            name="Pro",
            duration_seconds=duration_seconds,
            max_machines=max_machines,
            expiration_strategy=expiration_strategy,
            grace_period_seconds=grace_period_seconds,
            entitlements=entitlements,
            actor=ACTOR,
            context=CTX,
        )

    return make


@pytest.fixture
def issue(ledger: Ledger, org: Organization, make_policy: MakePolicy) -> Issue:
    default: list[Policy] = []

    def issue(
        policy: Policy | None = None,
        *,
        expires_at: datetime | None = None,
        entitlements: list[str] | None = None,
    ) -> IssuedLicense:
        if policy is None:
            if not default:
                default.append(make_policy())
            policy = default[0]
        return ledger.app.issue_license(
            org.id,
            policy_id=policy.id,
            expires_at=expires_at,
            entitlements=entitlements,
            licensee_email="ada@example.com",
            actor=ACTOR,
            context=CTX,
        )

    return issue


def online(ledger: Ledger, org: Organization, key: str, scope: Scope | None = None) -> Code:
    ledger.runner.catch_up()
    return ledger.validator.validate_key(org.id, key, scope or Scope(), utcnow()).code


# ---------------------------------------------------------------------- lifecycle


def test_full_lifecycle_is_recorded_and_read_back(
    ledger: Ledger, org: Organization, issue: Issue
) -> None:
    app = ledger.app
    issued = issue(entitlements=["pro"])
    lid, key = issued.license.id, issued.key
    fp = Scope(fingerprint="fp-1")
    assert online(ledger, org, key) is Code.VALID
    assert online(ledger, org, key, fp) is Code.NO_MACHINE

    lic, created = app.activate_machine(org.id, lid, "fp-1", "laptop", actor=ACTOR, context=CTX)
    assert created is True
    assert online(ledger, org, key, fp) is Code.VALID

    app.suspend(org.id, lid, "unpaid", actor=ACTOR, context=CTX)
    assert online(ledger, org, key, fp) is Code.SUSPENDED

    app.reinstate(org.id, lid, actor=ACTOR, context=CTX)
    assert online(ledger, org, key, fp) is Code.VALID

    before = app.get_license(org.id, lid).expires_at
    assert before is not None
    lic = app.renew(
        org.id, lid, basis="from_expiry", duration_seconds=86400, actor=ACTOR, context=CTX
    )
    assert lic.expires_at == before + DAY
    renewed_key = app.license_key(lic)
    assert renewed_key != key
    assert online(ledger, org, renewed_key, fp) is Code.VALID

    lic = app.change_entitlements(
        org.id, lid, add=["sso"], remove=["pro"], actor=ACTOR, context=CTX
    )
    assert lic.entitlements == {"sso"}
    assert online(ledger, org, key, Scope(entitlements=frozenset({"pro"}))) is (
        Code.ENTITLEMENTS_MISSING
    )
    assert online(ledger, org, key, Scope(entitlements=frozenset({"sso"}))) is Code.VALID

    lic = app.check_in(org.id, lid, "fp-1", actor=ACTOR, context=CTX)
    assert lic.last_check_in == lic.modified_on
    ledger.runner.catch_up()
    view = ledger.licenses.get(org.id, lid)
    assert view is not None
    assert view["last_check_in"] == lic.last_check_in

    app.revoke(org.id, lid, "refund", actor=ACTOR, context=CTX)
    ledger.runner.catch_up()

    # Revoked stays in the ledger and in the read model, and every key answers REVOKED.
    stored = app.get_license(org.id, lid)
    assert stored.revoked is True
    assert [type(e) for e in app.events.get(lid)] == [
        License.Issued,
        License.MachineActivated,
        License.Suspended,
        License.Reinstated,
        License.Renewed,
        License.EntitlementsChanged,
        License.CheckedIn,
        License.Revoked,
    ]
    for k in (key, renewed_key, app.license_key(stored)):
        result = ledger.validator.validate_key(org.id, k, fp, utcnow())
        assert (result.code, result.valid, result.license_id) == (Code.REVOKED, False, str(lid))
    view = ledger.licenses.get(org.id, lid)
    assert view is not None and view["revoked"] is True
    assert view["state"] == stored.state()
    with pytest.raises(IllegalTransitionError):
        app.renew(org.id, lid, duration_seconds=86400, actor=ACTOR, context=CTX)


def test_read_model_records_the_same_times_as_the_aggregate(
    ledger: Ledger, org: Organization, issue: Issue
) -> None:
    lid = issue().license.id
    lic, _ = ledger.app.activate_machine(org.id, lid, "fp-1", actor=ACTOR, context=CTX)
    ledger.app.check_in(org.id, lid, "fp-1", actor=ACTOR, context=CTX)
    ledger.runner.catch_up()
    lic = ledger.app.get_license(org.id, lid)
    view = ledger.licenses.get(org.id, lid)
    assert view is not None
    machine = view["machines"]["fp-1"]
    assert datetime.fromisoformat(machine["activated_at"]) == lic.machines["fp-1"]["activated_at"]
    assert datetime.fromisoformat(machine["last_check_in"]) == lic.last_check_in
    assert view["updated_at"] == lic.modified_on


def test_license_as_of_replays_the_state_at_each_instant(
    ledger: Ledger, org: Organization, issue: Issue
) -> None:
    app = ledger.app
    issued = issue()
    lid = issued.license.id
    steps: list[tuple[datetime, Callable[[License], None]]] = []

    def step(lic: License, check: Callable[[License], None]) -> None:
        steps.append((lic.modified_on, check))

    step(issued.license, lambda s: (s.machines == {}, s.suspended) == (True, False) or _fail(s))
    lic, _ = app.activate_machine(org.id, lid, "fp-1", actor=ACTOR, context=CTX)
    step(lic, lambda s: (set(s.machines) == {"fp-1"} and not s.suspended) or _fail(s))
    lic = app.suspend(org.id, lid, actor=ACTOR, context=CTX)
    step(lic, lambda s: (s.suspended and not s.revoked) or _fail(s))
    lic = app.reinstate(org.id, lid, actor=ACTOR, context=CTX)
    step(lic, lambda s: (not s.suspended and s.version == 4) or _fail(s))
    lic = app.revoke(org.id, lid, actor=ACTOR, context=CTX)
    step(lic, lambda s: s.revoked or _fail(s))

    times = [t for t, _ in steps]
    assert times == sorted(times) and len(set(times)) == len(times)
    for i, (at, check) in enumerate(steps):
        nxt = times[i + 1] if i + 1 < len(times) else at + DAY
        for instant in (at, at + (nxt - at) / 2, nxt - timedelta(microseconds=1)):
            past = app.license_as_of(org.id, lid, instant)
            assert past.version == i + 1
            check(past)
    with pytest.raises(LicenseNotFoundError):
        app.license_as_of(org.id, lid, times[0] - timedelta(microseconds=1))


def _fail(state: License) -> bool:
    raise AssertionError(f"unexpected past state: {state!r}")


# ---------------------------------------------------------------------- restart


def test_restarted_ledger_sees_the_same_state_and_validates_the_same_key(
    settings: Any, ledger: Ledger, org: Organization, issue: Issue
) -> None:
    issued = issue()
    lid = issued.license.id
    ledger.app.activate_machine(org.id, lid, "fp-1", actor=ACTOR, context=CTX)
    lic = ledger.app.suspend(org.id, lid, "unpaid", actor=ACTOR, context=CTX)
    ledger.runner.catch_up()

    restarted = bootstrap(settings)
    try:
        again = restarted.app.get_license(org.id, lid)
        assert (again.version, again.state()) == (lic.version, lic.state())
        assert restarted.app.license_key(again) == issued.key
        assert restarted.runner.catch_up() == 0
        assert restarted.keyring.keyset().to_dict() == ledger.keyring.keyset().to_dict()
        result = restarted.validator.validate_key(org.id, issued.key, Scope(), utcnow())
        assert (result.code, result.license_id) == (Code.SUSPENDED, str(lid))

        restarted.app.reinstate(org.id, lid, actor=ACTOR, context=CTX)
        restarted.runner.catch_up()
        assert online(restarted, org, issued.key, Scope(fingerprint="fp-1")) is Code.VALID
    finally:
        restarted.close()
    assert online(ledger, org, issued.key, Scope(fingerprint="fp-1")) is Code.VALID


# ---------------------------------------------------------------------- key rotation


def test_key_issued_before_rotation_still_verifies_offline_and_online(
    ledger: Ledger, org: Organization, issue: Issue
) -> None:
    old = issue()
    old_kid = old.license.key_claims["kid"]
    new_kid = ledger.keyring.rotate()
    assert new_kid != old_kid
    new = issue()
    assert new.license.key_claims["kid"] == new_kid

    keyset = ledger.keyring.keyset()
    assert {e.kid: e.status for e in keyset} == {old_kid: "verify-only", new_kid: "active"}
    now = utcnow()
    for issued in (old, new):
        claims = offline.verify(issued.key, keyset, now=now)
        assert claims == issued.license.key_claims
        assert online(ledger, org, issued.key) is Code.VALID
    # Re-deriving the key of an old license still uses the key that signed it.
    assert ledger.app.license_key(ledger.app.get_license(org.id, old.license.id)) == old.key


def test_renewal_after_rotation_signs_with_the_new_key(
    ledger: Ledger, org: Organization, issue: Issue
) -> None:
    old = issue()
    new_kid = ledger.keyring.rotate()
    lic = ledger.app.renew(org.id, old.license.id, duration_seconds=86400, actor=ACTOR, context=CTX)
    assert lic.key_claims["kid"] == new_kid
    new_key = ledger.app.license_key(lic)
    keyset = ledger.keyring.keyset()
    assert offline.verify(new_key, keyset, now=utcnow())["expires_at"] == offline.format_time(
        lic.expires_at  # type: ignore[arg-type]
    )
    assert online(ledger, org, new_key) is Code.VALID
    assert online(ledger, org, old.key) is Code.VALID


# ---------------------------------------------------------------------- tenancy


def test_license_of_another_org_is_not_found(
    ledger: Ledger, org: Organization, issue: Issue
) -> None:
    issued = issue()
    lid = issued.license.id
    other = ledger.app.create_organization("Other", ACTOR, CTX)
    assert online(ledger, org, issued.key) is Code.VALID
    result = ledger.validator.validate_key(other.id, issued.key, Scope(), utcnow())
    assert (result.code, result.valid, result.license_id) == (Code.NOT_FOUND, False, None)
    assert ledger.licenses.get(other.id, lid) is None
    with pytest.raises(LicenseNotFoundError):
        ledger.app.get_license(other.id, lid)
    with pytest.raises(LicenseNotFoundError):
        ledger.app.license_as_of(other.id, lid, utcnow())
    with pytest.raises(LicenseNotFoundError):
        ledger.app.suspend(other.id, lid, actor=ACTOR, context=CTX)
    with pytest.raises(LicenseNotFoundError):
        ledger.app.activate_machine(other.id, lid, "fp-1", actor=ACTOR, context=CTX)
    assert ledger.app.get_license(org.id, lid).version == 1


def test_unknown_license_is_not_found(ledger: Ledger, org: Organization) -> None:
    with pytest.raises(LicenseNotFoundError):
        ledger.app.get_license(org.id, uuid4())
    assert online(ledger, org, "key/garbage.garbage") is Code.NOT_FOUND


# ---------------------------------------------------------------------- expiry


def test_issuing_a_license_that_expired_already_is_invalid_input(
    ledger: Ledger, org: Organization, issue: Issue
) -> None:
    issue()  # the default policy, created first
    head = ledger.app.recorder.max_notification_id()
    with pytest.raises(InvalidInputError, match="expir"):
        issue(expires_at=utcnow() - timedelta(seconds=1))
    assert ledger.app.recorder.max_notification_id() == head


def test_renewing_a_lapsed_license_from_expiry_must_reach_past_now(
    ledger: Ledger, org: Organization, issue: Issue
) -> None:
    start = utcnow()
    issued = issue(expires_at=start + DAY)
    lid = issued.license.id
    ledger.app.clock = lambda: start + 10 * DAY
    with pytest.raises(InvalidInputError, match="expir"):
        ledger.app.renew(org.id, lid, duration_seconds=86400, actor=ACTOR, context=CTX)
    assert ledger.app.get_license(org.id, lid).version == 1
    lic = ledger.app.renew(org.id, lid, duration_seconds=30 * 86400, actor=ACTOR, context=CTX)
    assert lic.expires_at == start + 31 * DAY
    lic = ledger.app.renew(
        org.id, lid, basis="from_now", duration_seconds=86400, actor=ACTOR, context=CTX
    )
    assert lic.expires_at == start + 11 * DAY


@pytest.mark.parametrize("offset_hours", [0, 2, -5])
def test_read_model_keeps_the_expiry_instant_in_any_time_zone(
    ledger: Ledger, org: Organization, issue: Issue, offset_hours: int
) -> None:
    tz = timezone(timedelta(hours=offset_hours))
    expires_at = (utcnow() + 10 * DAY).astimezone(tz)
    issued = issue(expires_at=expires_at)
    ledger.runner.catch_up()
    view = ledger.licenses.get(org.id, issued.license.id)
    assert view is not None
    assert view["expires_at"] == expires_at
    state = issued.license.state()
    for now in (expires_at - timedelta(microseconds=1), expires_at):
        assert ledger.validator.validate_key(org.id, issued.key, Scope(), now).verdict == (
            validate(state, Scope(), now)
        )


# ---------------------------------------------------------------------- read model = aggregate

FINGERPRINTS = ("fp-a", "fp-b", "fp-c")
ENTITLEMENTS = ("e1", "e2", "e3")
SCOPES = (
    Scope(),
    Scope(fingerprint="fp-a"),
    Scope(fingerprint="fp-x", fingerprints=("fp-b",)),
    Scope(entitlements=frozenset({"e1"})),
    Scope(fingerprint="fp-c", entitlements=frozenset({"e2", "e3"})),
)

COMMANDS = st.lists(
    st.one_of(
        st.tuples(st.just("activate"), st.sampled_from(FINGERPRINTS)),
        st.tuples(st.just("deactivate"), st.sampled_from(FINGERPRINTS)),
        st.tuples(st.just("suspend")),
        st.tuples(st.just("reinstate")),
        st.tuples(
            st.just("renew"),
            st.sampled_from(["from_expiry", "from_now"]),
            st.integers(1, 3 * 86400),
        ),
        st.tuples(
            st.just("entitlements"),
            st.frozensets(st.sampled_from(ENTITLEMENTS)),
            st.frozensets(st.sampled_from(ENTITLEMENTS)),
        ),
        st.tuples(st.just("check_in"), st.none() | st.sampled_from(FINGERPRINTS)),
        st.tuples(st.just("revoke")),
    ),
    max_size=8,
)


def run_command(ledger: Ledger, org: Organization, lid: Any, command: tuple[Any, ...]) -> None:
    app, kw = ledger.app, {"actor": ACTOR, "context": CTX}
    name, *args = command
    if name == "activate":
        app.activate_machine(org.id, lid, args[0], **kw)
    elif name == "deactivate":
        app.deactivate_machine(org.id, lid, args[0], **kw)
    elif name == "suspend":
        app.suspend(org.id, lid, **kw)
    elif name == "reinstate":
        app.reinstate(org.id, lid, **kw)
    elif name == "renew":
        app.renew(org.id, lid, basis=args[0], duration_seconds=args[1], **kw)
    elif name == "entitlements":
        app.change_entitlements(org.id, lid, add=sorted(args[0]), remove=sorted(args[1]), **kw)
    elif name == "check_in":
        app.check_in(org.id, lid, args[0], **kw)
    elif name == "revoke":
        app.revoke(org.id, lid, **kw)
    else:
        raise AssertionError(name)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    max_machines=st.none() | st.integers(0, 2),
    strategy=st.sampled_from(["RESTRICT_ACCESS", "MAINTAIN_ACCESS"]),
    grace_seconds=st.sampled_from([0, 3600]),
    expires_in=st.none() | st.integers(-2 * 86400, 2 * 86400),
    entitlements=st.frozensets(st.sampled_from(ENTITLEMENTS)),
    commands=COMMANDS,
)
def test_read_model_answers_like_the_replayed_aggregate(
    ledger: Ledger,
    org: Organization,
    make_policy: MakePolicy,
    max_machines: int | None,
    strategy: str,
    grace_seconds: int,
    expires_in: int | None,
    entitlements: frozenset[str],
    commands: list[tuple[Any, ...]],
) -> None:
    policy = make_policy(
        duration_seconds=None,
        max_machines=max_machines,
        expiration_strategy=strategy,
        grace_period_seconds=grace_seconds,
    )
    start = utcnow()
    expires_at = None if expires_in is None else start + timedelta(seconds=expires_in)
    try:
        issued = ledger.app.issue_license(
            org.id,
            policy_id=policy.id,
            expires_at=expires_at,
            entitlements=sorted(entitlements),
            actor=ACTOR,
            context=CTX,
        )
    except InvalidInputError:
        assert expires_at is not None and expires_at < utcnow()
        return
    lid = issued.license.id
    for command in commands:
        with contextlib.suppress(LedgerError):
            run_command(ledger, org, lid, command)
    ledger.runner.catch_up()

    lic = ledger.app.get_license(org.id, lid)
    view = ledger.licenses.get(org.id, lid)
    assert view is not None
    assert view["state"] == lic.state()
    assert view["version"] == lic.version

    nows = [utcnow()]
    if lic.expires_at is not None:
        end = lic.expires_at + lic.grace_period
        nows += [lic.expires_at, end - timedelta(microseconds=1), end]
    for key in {issued.key, ledger.app.license_key(lic)}:
        for scope in SCOPES:
            for now in nows:
                answer = ledger.validator.validate_key(org.id, key, scope, now)
                assert answer.verdict == validate(lic.state(), scope, now), (scope, now)
                assert answer.license_id == str(lid)
