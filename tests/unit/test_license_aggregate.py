"""The license aggregate on its own: transitions, invariants and events, with no store."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol
from uuid import UUID, uuid4

import pytest
from eventsourcing.domain import DomainEvent

from ledger.domain.errors import (
    IllegalTransitionError,
    InvalidInputError,
    MachineLimitExceededError,
    MachineNotFoundError,
)
from ledger.domain.license import License
from ledger.domain.validation import Code, Scope, Status, validate
from ledger.domain.values import Actor, RequestContext

NOW = datetime(2030, 6, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
ACTOR = Actor(kind="cli", id="test")
CTX = RequestContext()


class MakeLicense(Protocol):
    def __call__(
        self,
        *,
        expires_at: datetime | None = ...,
        max_machines: int | None = ...,
        entitlements: list[str] = ...,
        expiration_strategy: str = ...,
        grace_period_seconds: int = ...,
    ) -> License: ...


@pytest.fixture
def make_license() -> MakeLicense:
    """Issue a license in memory; its Issued event is already collected."""

    def make(
        *,
        expires_at: datetime | None = NOW + 30 * DAY,
        max_machines: int | None = 3,
        entitlements: list[str] = ["pro"],  # never mutated
        expiration_strategy: str = "RESTRICT_ACCESS",
        grace_period_seconds: int = 0,
    ) -> License:
        lic = License(
            org_id=uuid4(),
            policy_id=None,
            expires_at=expires_at,
            grace_period_seconds=grace_period_seconds,
            expiration_strategy=expiration_strategy,
            max_machines=max_machines,
            entitlements=entitlements,
            licensee_name=None,
            licensee_email=None,
            metadata={},
            key_claims={"license_id": str(uuid4())},
            key_hash="hash-0",
            actor=ACTOR,
            context=CTX,
        )
        lic.collect_events()
        return lic

    return make


@pytest.fixture
def lic(make_license: MakeLicense) -> License:
    return make_license()


def activate(lic: License, fingerprint: str, now: datetime = NOW) -> bool:
    return lic.activate_machine(fingerprint, "box", now, ACTOR, CTX)


def pending(lic: License) -> list[Any]:
    return list(lic.pending_events)


# ---------------------------------------------------------------------- issue


def test_issued_license_is_active_with_its_terms(lic: License) -> None:
    assert lic.status(NOW) is Status.ACTIVE
    assert lic.version == 1
    assert lic.key_hashes == ["hash-0"]
    assert lic.machines == {}
    assert lic.entitlements == {"pro"}


def test_license_id_comes_from_the_key_claims() -> None:
    license_id = uuid4()
    assert License.create_id(key_claims={"license_id": str(license_id)}) == license_id


# ---------------------------------------------------------------------- suspend / reinstate


def test_suspended_license_validates_suspended(lic: License) -> None:
    lic.suspend("unpaid", ACTOR, CTX)
    assert lic.status(NOW) is Status.SUSPENDED
    assert validate(lic.state(), Scope(), NOW).code is Code.SUSPENDED


def test_suspending_a_suspended_license_raises(lic: License) -> None:
    lic.suspend("unpaid", ACTOR, CTX)
    lic.collect_events()
    with pytest.raises(IllegalTransitionError):
        lic.suspend("again", ACTOR, CTX)
    assert pending(lic) == []


def test_reinstating_an_active_license_raises(lic: License) -> None:
    with pytest.raises(IllegalTransitionError):
        lic.reinstate(ACTOR, CTX)
    assert pending(lic) == []


def test_reinstated_license_is_active_again(lic: License) -> None:
    lic.suspend("unpaid", ACTOR, CTX)
    lic.reinstate(ACTOR, CTX)
    assert lic.status(NOW) is Status.ACTIVE
    assert [type(e) for e in pending(lic)] == [License.Suspended, License.Reinstated]


def test_suspend_reason_is_truncated(lic: License) -> None:
    lic.suspend("x" * 2000, ACTOR, CTX)
    assert len(pending(lic)[0].reason) == 500


def test_suspended_license_cannot_activate_machines_or_check_in(lic: License) -> None:
    activate(lic, "fp-1")
    lic.suspend("unpaid", ACTOR, CTX)
    lic.collect_events()
    with pytest.raises(IllegalTransitionError):
        activate(lic, "fp-2")
    with pytest.raises(IllegalTransitionError):
        lic.check_in("fp-1", ACTOR, CTX)
    assert pending(lic) == []


# ---------------------------------------------------------------------- revoke


def test_revoked_license_is_terminal_and_validates_revoked(lic: License) -> None:
    lic.revoke("fraud", ACTOR, CTX)
    assert lic.status(NOW) is Status.REVOKED
    assert validate(lic.state(), Scope(), NOW).code is Code.REVOKED


def test_revoking_twice_raises(lic: License) -> None:
    lic.revoke("fraud", ACTOR, CTX)
    lic.collect_events()
    with pytest.raises(IllegalTransitionError):
        lic.revoke("fraud", ACTOR, CTX)
    assert pending(lic) == []


def test_suspended_license_can_be_revoked(lic: License) -> None:
    lic.suspend("unpaid", ACTOR, CTX)
    lic.revoke("fraud", ACTOR, CTX)
    assert lic.status(NOW) is Status.REVOKED


COMMANDS: dict[str, Callable[[License], object]] = {
    "activate a new machine": lambda lic: activate(lic, "fp-new"),
    "activate an already active machine": lambda lic: activate(lic, "fp-1"),
    "deactivate a machine": lambda lic: lic.deactivate_machine("fp-1", ACTOR, CTX),
    "suspend": lambda lic: lic.suspend("why", ACTOR, CTX),
    "reinstate": lambda lic: lic.reinstate(ACTOR, CTX),
    "compute the next expiry": lambda lic: lic.next_expiry("from_now", DAY, NOW),
    "renew": lambda lic: lic.renew("from_now", NOW + DAY, {"v": 1}, "hash-1", ACTOR, CTX),
    "revoke": lambda lic: lic.revoke("again", ACTOR, CTX),
    "change entitlements": lambda lic: lic.change_entitlements(
        {"pro", "sso"}, {"v": 1}, "hash-1", ACTOR, CTX
    ),
    "check in": lambda lic: lic.check_in(None, ACTOR, CTX),
    "check in a machine": lambda lic: lic.check_in("fp-1", ACTOR, CTX),
}


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_every_command_on_a_revoked_license_raises(
    lic: License, command: Callable[[License], object]
) -> None:
    activate(lic, "fp-1")
    lic.revoke("fraud", ACTOR, CTX)
    lic.collect_events()
    before = lic.state()
    with pytest.raises(IllegalTransitionError):
        command(lic)
    assert pending(lic) == []
    assert lic.state() == before


def test_revoked_license_cannot_be_renewed(lic: License) -> None:
    lic.revoke("fraud", ACTOR, CTX)
    with pytest.raises(IllegalTransitionError, match="revoked"):
        lic.renew("from_now", NOW + DAY, {"v": 1}, "hash-1", ACTOR, CTX)


# ---------------------------------------------------------------------- machines


def test_activation_past_max_machines_raises(make_license: MakeLicense) -> None:
    lic = make_license(max_machines=2)
    assert activate(lic, "fp-1") is True
    assert activate(lic, "fp-2") is True
    lic.collect_events()
    with pytest.raises(MachineLimitExceededError):
        activate(lic, "fp-3")
    assert pending(lic) == []
    assert set(lic.machines) == {"fp-1", "fp-2"}


def test_zero_machine_license_refuses_every_activation(make_license: MakeLicense) -> None:
    lic = make_license(max_machines=0)
    with pytest.raises(MachineLimitExceededError):
        activate(lic, "fp-1")


def test_unlimited_license_activates_many_machines(make_license: MakeLicense) -> None:
    lic = make_license(max_machines=None)
    for i in range(20):
        assert activate(lic, f"fp-{i}") is True
    assert len(lic.machines) == 20


def test_activating_the_same_fingerprint_twice_is_idempotent(lic: License) -> None:
    assert activate(lic, "fp-1") is True
    lic.collect_events()
    version = lic.version
    assert activate(lic, "fp-1") is False
    assert pending(lic) == []
    assert lic.version == version
    assert list(lic.machines) == ["fp-1"]


def test_reactivating_a_machine_at_the_limit_is_idempotent(make_license: MakeLicense) -> None:
    lic = make_license(max_machines=1)
    activate(lic, "fp-1")
    lic.collect_events()
    assert activate(lic, "fp-1") is False
    assert pending(lic) == []


def test_activation_records_the_machine(lic: License) -> None:
    activate(lic, "fp-1")
    (ev,) = pending(lic)
    assert isinstance(ev, License.MachineActivated)
    assert (ev.fingerprint, ev.name, ev.org_id) == ("fp-1", "box", lic.org_id)
    assert lic.machines["fp-1"] == {"name": "box", "activated_at": ev.timestamp}


@pytest.mark.parametrize("fingerprint", ["", "x" * 257, "tab\there"])
def test_activation_rejects_bad_fingerprints(lic: License, fingerprint: str) -> None:
    with pytest.raises(InvalidInputError):
        activate(lic, fingerprint)


def test_expired_restrict_access_license_cannot_activate(make_license: MakeLicense) -> None:
    lic = make_license(expires_at=NOW - DAY)
    with pytest.raises(IllegalTransitionError, match="expired"):
        activate(lic, "fp-1")


def test_expired_license_within_grace_can_activate(make_license: MakeLicense) -> None:
    lic = make_license(expires_at=NOW - DAY, grace_period_seconds=2 * 86400)
    assert activate(lic, "fp-1") is True


def test_expired_maintain_access_license_can_activate(make_license: MakeLicense) -> None:
    lic = make_license(expires_at=NOW - DAY, expiration_strategy="MAINTAIN_ACCESS")
    assert activate(lic, "fp-1") is True


def test_deactivating_a_machine_frees_its_seat(make_license: MakeLicense) -> None:
    lic = make_license(max_machines=1)
    activate(lic, "fp-1")
    lic.deactivate_machine("fp-1", ACTOR, CTX)
    assert lic.machines == {}
    assert activate(lic, "fp-2") is True


def test_deactivating_an_unknown_fingerprint_raises(lic: License) -> None:
    activate(lic, "fp-1")
    lic.collect_events()
    with pytest.raises(MachineNotFoundError):
        lic.deactivate_machine("fp-unknown", ACTOR, CTX)
    assert pending(lic) == []


# ---------------------------------------------------------------------- check in


def test_check_in_records_the_time_on_the_license_and_machine(lic: License) -> None:
    activate(lic, "fp-1")
    lic.check_in("fp-1", ACTOR, CTX)
    ev = pending(lic)[-1]
    assert isinstance(ev, License.CheckedIn)
    assert lic.last_check_in == ev.timestamp
    assert lic.machines["fp-1"]["last_check_in"] == ev.timestamp


def test_check_in_of_an_unknown_machine_raises(lic: License) -> None:
    with pytest.raises(MachineNotFoundError):
        lic.check_in("fp-unknown", ACTOR, CTX)
    assert pending(lic) == []


# ---------------------------------------------------------------------- renew


def test_renew_from_expiry_extends_the_current_expiry(make_license: MakeLicense) -> None:
    lic = make_license(expires_at=NOW + 10 * DAY)
    assert lic.next_expiry("from_expiry", 30 * DAY, NOW) == NOW + 40 * DAY


def test_renew_from_expiry_of_a_lapsed_license_counts_from_the_old_expiry(
    make_license: MakeLicense,
) -> None:
    lic = make_license(expires_at=NOW - 10 * DAY, expiration_strategy="MAINTAIN_ACCESS")
    assert lic.next_expiry("from_expiry", 30 * DAY, NOW) == NOW + 20 * DAY


def test_renew_from_expiry_of_a_perpetual_license_counts_from_now(
    make_license: MakeLicense,
) -> None:
    lic = make_license(expires_at=None)
    assert lic.next_expiry("from_expiry", 30 * DAY, NOW) == NOW + 30 * DAY


def test_renew_from_now_ignores_the_current_expiry(make_license: MakeLicense) -> None:
    lic = make_license(expires_at=NOW + 10 * DAY)
    assert lic.next_expiry("from_now", 30 * DAY, NOW) == NOW + 30 * DAY


def test_renew_with_an_unknown_basis_raises(lic: License) -> None:
    with pytest.raises(InvalidInputError):
        lic.next_expiry("from_yesterday", DAY, NOW)


def test_renew_sets_the_expiry_and_adds_the_new_key(make_license: MakeLicense) -> None:
    lic = make_license(expires_at=NOW - DAY)
    assert validate(lic.state(), Scope(), NOW).code is Code.EXPIRED
    new_expiry = lic.next_expiry("from_now", 30 * DAY, NOW)
    lic.renew("from_now", new_expiry, {"v": 2}, "hash-1", ACTOR, CTX)
    (ev,) = pending(lic)
    assert isinstance(ev, License.Renewed)
    assert (ev.previous_expires_at, ev.expires_at) == (NOW - DAY, NOW + 30 * DAY)
    assert lic.expires_at == NOW + 30 * DAY
    assert lic.key_claims == {"v": 2}
    assert lic.key_hashes == ["hash-0", "hash-1"]
    assert validate(lic.state(), Scope(), NOW).code is Code.VALID


def test_renewing_a_suspended_license_keeps_it_suspended(lic: License) -> None:
    lic.suspend("unpaid", ACTOR, CTX)
    lic.renew("from_now", NOW + 90 * DAY, {"v": 2}, "hash-1", ACTOR, CTX)
    assert lic.status(NOW) is Status.SUSPENDED


# ---------------------------------------------------------------------- entitlements


def test_changing_entitlements_records_what_was_added_and_removed(
    make_license: MakeLicense,
) -> None:
    lic = make_license(entitlements=["pro", "sso"])
    lic.change_entitlements({"pro", "audit"}, {"v": 2}, "hash-1", ACTOR, CTX)
    (ev,) = pending(lic)
    assert isinstance(ev, License.EntitlementsChanged)
    assert (ev.added, ev.removed, ev.entitlements) == (["audit"], ["sso"], ["audit", "pro"])
    assert lic.entitlements == {"pro", "audit"}
    assert lic.key_hashes == ["hash-0", "hash-1"]
    assert validate(lic.state(), Scope(entitlements=frozenset({"sso"})), NOW).code is (
        Code.ENTITLEMENTS_MISSING
    )
    assert validate(lic.state(), Scope(entitlements=frozenset({"audit"})), NOW).valid


def test_a_key_hash_seen_before_is_not_added_twice(lic: License) -> None:
    lic.change_entitlements({"pro", "sso"}, {"v": 2}, "hash-1", ACTOR, CTX)
    lic.change_entitlements({"pro"}, {"v": 3}, "hash-0", ACTOR, CTX)
    assert lic.key_hashes == ["hash-0", "hash-1"]


# ---------------------------------------------------------------------- events


def license_event_classes() -> list[type[DomainEvent]]:
    """The events License declares (not the Event and Created bases the library adds)."""
    return [
        v
        for v in vars(License).values()
        if isinstance(v, type)
        and issubclass(v, DomainEvent)
        and v not in (License.Event, License.Created)
    ]


def test_license_declares_every_lifecycle_event() -> None:
    names = {c.__name__ for c in license_event_classes()}
    assert names == {
        "Issued",
        "MachineActivated",
        "MachineDeactivated",
        "Suspended",
        "Reinstated",
        "Renewed",
        "Revoked",
        "EntitlementsChanged",
        "CheckedIn",
    }


@pytest.mark.parametrize("event_class", license_event_classes(), ids=lambda c: c.__name__)
def test_every_license_event_carries_org_actor_and_context(event_class: type) -> None:
    fields = {f.name: f.type for f in dataclasses.fields(event_class)}
    assert {"org_id", "actor", "context"} <= set(fields)
    assert fields["org_id"] in (UUID, "UUID")
    assert fields["actor"] in (Actor, "Actor")
    assert fields["context"] in (RequestContext, "RequestContext")


def test_every_recorded_event_names_the_org_and_the_actor(lic: License) -> None:
    for command in (
        lambda: activate(lic, "fp-1"),
        lambda: lic.check_in("fp-1", ACTOR, CTX),
        lambda: lic.deactivate_machine("fp-1", ACTOR, CTX),
        lambda: lic.suspend("", ACTOR, CTX),
        lambda: lic.reinstate(ACTOR, CTX),
        lambda: lic.renew("from_now", NOW + DAY, {}, "hash-1", ACTOR, CTX),
        lambda: lic.change_entitlements(set(), {}, "hash-2", ACTOR, CTX),
        lambda: lic.revoke("", ACTOR, CTX),
    ):
        command()
    events = pending(lic)
    assert len(events) == 8
    assert {type(e) for e in events} == set(license_event_classes()) - {License.Issued}
    for ev in events:
        assert (ev.org_id, ev.actor, ev.context) == (lic.org_id, ACTOR, CTX)
