"""The ledger application: every lifecycle use case, appended as events to the store.

Commands load one aggregate, check its invariants, and save; an optimistic-concurrency conflict
(another writer saved the same aggregate version first) is retried with the fresh state, which is
what makes machine limits hold under concurrent activation.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast
from uuid import UUID, uuid4

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Mapper, Recording
from eventsourcing.utils import get_topic

from ledger.crypto.keystore import KeyStore
from ledger.crypto.licensekey import key_sha256, license_claims, sign_license_key
from ledger.domain.apikey import ApiKey, api_key_aggregate_id, check_permissions
from ledger.domain.errors import (
    ApiKeyNotFoundError,
    ConcurrencyError,
    InvalidInputError,
    LedgerError,
    LicenseNotFoundError,
    NotFoundError,
    OrganizationNotFoundError,
    PolicyNotFoundError,
)
from ledger.domain.license import License, check_entitlements
from ledger.domain.organization import Organization, Policy
from ledger.domain.subject import Subject, subject_aggregate_id
from ledger.domain.values import Actor, PersonalData, RequestContext, subject_id
from ledger.keyring import SigningKeyring
from ledger.sealing import SealingMapper
from ledger.transcodings import register_value_transcodings

A = TypeVar("A", bound=Aggregate)
R = TypeVar("R")

MAX_ATTEMPTS = 200
MAX_METADATA_BYTES = 16_384


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class IssuedLicense:
    license: License
    key: str


class LedgerApplication(Application[UUID]):
    name = "Ledger"

    def __init__(
        self,
        env: dict[str, str] | None = None,
        *,
        keyring: SigningKeyring,
        keystore: KeyStore | None = None,
        encrypt: bool = True,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.keystore = keystore
        self.encrypt = encrypt and keystore is not None
        super().__init__(env)
        self.keyring = keyring
        self.clock = clock
        self._local = threading.local()
        self.save_listeners: list[Callable[[int], None]] = []

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        register_value_transcodings(transcoder, self.keystore, encrypt=self.encrypt)

    def construct_mapper(self) -> Mapper[UUID]:
        """Events and snapshots sealed at rest (``ledger.sealing``) when a key store is given."""
        if self.keystore is None:
            return super().construct_mapper()
        return SealingMapper(self.construct_transcoder(), self.keystore, encrypt=self.encrypt)

    # ------------------------------------------------------------------ plumbing

    def save(self, *objs: Any, **kwargs: Any) -> list[Recording[UUID]]:
        recordings = super().save(*objs, **kwargs)
        if recordings:
            last = max(r.notification.id for r in recordings)
            self._local.last_notification_id = last
            for listener in self.save_listeners:
                listener(last)
        return recordings

    @property
    def last_notification_id(self) -> int:
        """The notification id of the last save made by this thread (0 if none)."""
        return int(getattr(self._local, "last_notification_id", 0))

    def _get(self, cls: type[A], org_id: UUID, aggregate_id: UUID, error: type[NotFoundError]) -> A:
        try:
            agg: Aggregate = self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            raise error(f"{cls.__name__.lower()} {aggregate_id} not found") from None
        if not isinstance(agg, cls) or getattr(agg, "org_id", None) != org_id:
            raise error(f"{cls.__name__.lower()} {aggregate_id} not found")
        return agg

    def _modify(
        self,
        cls: type[A],
        org_id: UUID,
        aggregate_id: UUID,
        error: type[NotFoundError],
        change: Callable[[A], R],
    ) -> tuple[A, R]:
        for attempt in range(MAX_ATTEMPTS):
            agg = self._get(cls, org_id, aggregate_id, error)
            result = change(agg)
            if not agg.pending_events:
                return agg, result
            try:
                self.save(agg)
            except IntegrityError:
                time.sleep(random.uniform(0, min(0.05, 0.001 * (attempt + 1))))
                continue
            return agg, result
        raise ConcurrencyError("too many concurrent changes to the same object; try again")

    def _change_license(
        self, org_id: UUID, license_id: UUID, change: Callable[[License], object]
    ) -> License:
        """Apply one command to a license of ``org_id`` (retried on concurrent changes)."""
        return self._modify(License, org_id, license_id, LicenseNotFoundError, change)[0]

    # ------------------------------------------------------------------ organizations

    def create_organization(self, name: str, actor: Actor, context: RequestContext) -> Organization:
        org = Organization(name=Organization.check_name(name), actor=actor, context=context)
        self.save(org)
        return org

    def get_organization(self, org_id: UUID) -> Organization:
        try:
            org: Aggregate = self.repository.get(org_id)
        except AggregateNotFoundError:
            raise OrganizationNotFoundError(f"organization {org_id} not found") from None
        if not isinstance(org, Organization):
            raise OrganizationNotFoundError(f"organization {org_id} not found")
        return org

    # ------------------------------------------------------------------ policies

    def create_policy(
        self,
        org_id: UUID,
        *,
        name: str,
        duration_seconds: int | None = None,
        max_machines: int | None = None,
        expiration_strategy: str = "RESTRICT_ACCESS",
        grace_period_seconds: int = 0,
        entitlements: list[str] | None = None,
        actor: Actor,
        context: RequestContext,
    ) -> Policy:
        self.get_organization(org_id)
        Policy.check_terms(
            name, duration_seconds, max_machines, expiration_strategy, grace_period_seconds
        )
        policy = Policy(
            org_id=org_id,
            name=name.strip(),
            duration_seconds=duration_seconds,
            max_machines=max_machines,
            expiration_strategy=expiration_strategy,
            grace_period_seconds=grace_period_seconds,
            entitlements=sorted(check_entitlements(entitlements or [])),
            actor=actor,
            context=context,
        )
        self.save(policy)
        return policy

    def get_policy(self, org_id: UUID, policy_id: UUID) -> Policy:
        return self._get(Policy, org_id, policy_id, PolicyNotFoundError)

    # ------------------------------------------------------------------ licenses

    def issue_license(
        self,
        org_id: UUID,
        *,
        policy_id: UUID,
        expires_at: datetime | None = None,
        max_machines: int | None = None,
        entitlements: list[str] | None = None,
        licensee_name: str | None = None,
        licensee_email: str | None = None,
        metadata: dict[str, Any] | None = None,
        actor: Actor,
        context: RequestContext,
    ) -> IssuedLicense:
        policy = self.get_policy(org_id, policy_id)
        now = self.clock()
        if expires_at is not None and expires_at.tzinfo is None:
            raise InvalidInputError("expires_at must carry a time zone")
        if expires_at is None and policy.duration is not None:
            expires_at = now + policy.duration
        if expires_at is not None and expires_at <= now:
            # A key's claims never expire before they were issued (ledger.offline.check_claims).
            raise InvalidInputError("expires_at must be in the future")
        if max_machines is None:
            max_machines = policy.max_machines
        elif not 0 <= max_machines <= 1_000_000:
            raise InvalidInputError("max_machines must be between 0 and 1,000,000")
        ents = check_entitlements(policy.entitlements) | check_entitlements(entitlements or [])
        license_id = uuid4()
        subject = subject_id(org_id, "licensee", licensee_email or f"license:{license_id}")
        claims, key = self._sign(org_id, license_id, policy_id, now, expires_at, ents, max_machines)
        lic = License(
            org_id=org_id,
            policy_id=policy_id,
            expires_at=expires_at,
            grace_period_seconds=policy.grace_period_seconds,
            expiration_strategy=policy.expiration_strategy.value,
            max_machines=max_machines,
            entitlements=sorted(ents),
            licensee_name=_personal(subject, licensee_name, "licensee_name", 200),
            licensee_email=_personal(subject, licensee_email, "licensee_email", 320),
            metadata=_check_metadata(metadata),
            key_claims=claims,
            key_hash=key_sha256(key),
            actor=actor,
            context=context,
        )
        self.save(lic)
        return IssuedLicense(lic, key)

    def _sign(
        self,
        org_id: UUID,
        license_id: UUID,
        policy_id: UUID | None,
        issued_at: datetime,
        expires_at: datetime | None,
        entitlements: set[str],
        max_machines: int | None,
    ) -> tuple[dict[str, Any], str]:
        if expires_at is not None and expires_at < issued_at:
            # The key format forbids it (check_claims raises ValueError): a caller error, not a 500.
            raise InvalidInputError(
                "the license would expire before now: give a later expires_at, "
                "or renew for longer or from now"
            )
        kid, signing_key = self.keyring.active()
        try:
            claims = license_claims(
                kid=kid,
                org_id=org_id,
                license_id=license_id,
                policy_id=policy_id,
                issued_at=issued_at,
                expires_at=expires_at,
                entitlements=entitlements,
                max_machines=max_machines,
            )
        except (ValueError, OverflowError) as exc:  # e.g. an expiry beyond year 9999 in UTC
            raise InvalidInputError(f"these terms cannot be put in a license key: {exc}") from None
        return claims, sign_license_key(claims, signing_key)

    def license_key(self, lic: License) -> str:
        """The license's current key, re-derived (Ed25519 is deterministic): keys are not stored."""
        return sign_license_key(lic.key_claims, self.keyring.signing_key(lic.key_claims["kid"]))

    def get_license(self, org_id: UUID, license_id: UUID) -> License:
        return self._get(License, org_id, license_id, LicenseNotFoundError)

    def license_as_of(self, org_id: UUID, license_id: UUID, as_of: datetime) -> License:
        """Replay the license's events up to ``as_of`` (inclusive)."""
        lic: Any = None
        # The store yields the aggregates' own events (typed as a bare protocol by the library).
        events = cast("Iterator[Aggregate.Event]", self.events.get(license_id))
        for ev in events:
            if ev.timestamp > as_of:
                break
            lic = ev.mutate(lic)
        if not isinstance(lic, License) or lic.org_id != org_id:
            raise LicenseNotFoundError(f"license {license_id} did not exist at {as_of.isoformat()}")
        return lic

    def activate_machine(
        self,
        org_id: UUID,
        license_id: UUID,
        fingerprint: str,
        name: str = "",
        *,
        actor: Actor,
        context: RequestContext,
    ) -> tuple[License, bool]:
        now = self.clock()
        return self._modify(
            License,
            org_id,
            license_id,
            LicenseNotFoundError,
            lambda lic: lic.activate_machine(fingerprint, name, now, actor, context),
        )

    def deactivate_machine(
        self,
        org_id: UUID,
        license_id: UUID,
        fingerprint: str,
        *,
        actor: Actor,
        context: RequestContext,
    ) -> License:
        return self._change_license(
            org_id, license_id, lambda lic: lic.deactivate_machine(fingerprint, actor, context)
        )

    def suspend(
        self,
        org_id: UUID,
        license_id: UUID,
        reason: str = "",
        *,
        actor: Actor,
        context: RequestContext,
    ) -> License:
        return self._change_license(
            org_id, license_id, lambda lic: lic.suspend(reason, actor, context)
        )

    def reinstate(
        self, org_id: UUID, license_id: UUID, *, actor: Actor, context: RequestContext
    ) -> License:
        return self._change_license(org_id, license_id, lambda lic: lic.reinstate(actor, context))

    def revoke(
        self,
        org_id: UUID,
        license_id: UUID,
        reason: str = "",
        *,
        actor: Actor,
        context: RequestContext,
    ) -> License:
        return self._change_license(
            org_id, license_id, lambda lic: lic.revoke(reason, actor, context)
        )

    def renew(
        self,
        org_id: UUID,
        license_id: UUID,
        *,
        basis: str = "from_expiry",
        duration_seconds: int | None = None,
        actor: Actor,
        context: RequestContext,
    ) -> License:
        def change(lic: License) -> None:
            now = self.clock()
            if duration_seconds is not None:
                if not 1 <= duration_seconds <= 100 * 366 * 86400:
                    raise InvalidInputError("duration must be between 1 second and 100 years")
                duration = timedelta(seconds=duration_seconds)
            else:
                policy = self.get_policy(org_id, lic.policy_id) if lic.policy_id else None
                if policy is None or policy.duration is None:
                    raise InvalidInputError(
                        "the license's policy has no duration; give duration_seconds"
                    )
                duration = policy.duration
            expires_at = lic.next_expiry(basis, duration, now)
            if expires_at <= now:
                raise InvalidInputError(
                    "the renewed expiry would still be in the past; renew from_now instead"
                )
            claims, key = self._sign(
                org_id, lic.id, lic.policy_id, now, expires_at, lic.entitlements, lic.max_machines
            )
            lic.renew(basis, expires_at, claims, key_sha256(key), actor, context)

        return self._change_license(org_id, license_id, change)

    def change_entitlements(
        self,
        org_id: UUID,
        license_id: UUID,
        *,
        add: list[str] | None = None,
        remove: list[str] | None = None,
        actor: Actor,
        context: RequestContext,
    ) -> License:
        adding, removing = check_entitlements(add or []), check_entitlements(remove or [])
        if adding & removing:
            raise InvalidInputError("an entitlement cannot be both added and removed")

        def change(lic: License) -> None:
            lic.check_not_revoked("change entitlements of")
            ents = (lic.entitlements | adding) - removing
            if ents == lic.entitlements:
                return
            now = self.clock()
            claims, key = self._sign(
                org_id, lic.id, lic.policy_id, now, lic.expires_at, ents, lic.max_machines
            )
            lic.change_entitlements(ents, claims, key_sha256(key), actor, context)

        return self._modify(License, org_id, license_id, LicenseNotFoundError, change)[0]

    def check_in(
        self,
        org_id: UUID,
        license_id: UUID,
        fingerprint: str | None = None,
        *,
        actor: Actor,
        context: RequestContext,
    ) -> License:
        return self._change_license(
            org_id, license_id, lambda lic: lic.check_in(fingerprint, actor, context)
        )

    # ------------------------------------------------------------------ API keys

    def create_api_key(
        self,
        org_id: UUID,
        *,
        key_id: str,
        secret_hash: str,
        name: str,
        permissions: list[str],
        expires_at: datetime | None = None,
        rate_limit: str | None = None,
        allowed_cidrs: list[str] | None = None,
        actor: Actor,
        context: RequestContext,
    ) -> ApiKey:
        self.get_organization(org_id)
        if len(name) > 200 or not name.isprintable():
            raise InvalidInputError("API key name must be at most 200 printable characters")
        if expires_at is not None and (expires_at.tzinfo is None or expires_at <= self.clock()):
            raise InvalidInputError("expires_at must be a future time with a time zone")
        key = ApiKey(
            org_id=org_id,
            key_id=key_id,
            secret_hash=secret_hash,
            name=name.strip()[:200] or "api key",
            permissions=check_permissions(permissions),
            expires_at=expires_at,
            rate_limit=rate_limit,
            allowed_cidrs=list(allowed_cidrs or []),
            actor=actor,
            context=context,
        )
        self.save(key)
        return key

    def rotate_api_key(
        self,
        org_id: UUID,
        key_id: str,
        *,
        new_key_id: str,
        new_secret_hash: str,
        grace: timedelta,
        actor: Actor,
        context: RequestContext,
    ) -> tuple[ApiKey, ApiKey]:
        """Create the successor (same name, permissions, expiry, limit and allowlist) and end the
        old key after ``grace``, both in one atomic save."""
        for attempt in range(MAX_ATTEMPTS):
            old = self.get_api_key(org_id, key_id)
            old.rotate(new_key_id, self.clock(), grace, actor, context)
            new = ApiKey(
                org_id=org_id,
                key_id=new_key_id,
                secret_hash=new_secret_hash,
                name=old.name,
                permissions=list(old.permissions),
                expires_at=old.expires_at,
                rate_limit=old.rate_limit,
                allowed_cidrs=list(old.allowed_cidrs),
                actor=actor,
                context=context,
            )
            try:
                self.save(old, new)
            except IntegrityError:
                time.sleep(random.uniform(0, min(0.05, 0.001 * (attempt + 1))))
                continue
            return old, new
        raise ConcurrencyError("too many concurrent changes to the same API key; try again")

    def list_api_keys(
        self, org_id: UUID, *, after: int = 0, limit: int = 50
    ) -> tuple[list[ApiKey], int | None]:
        """The org's API keys in creation order, after notification ``after``; and the cursor of
        the next page (None at the end). Scans ApiKey.Created notifications: fine for the number of
        keys an org has; a projection in projections/ can replace it."""
        topic = get_topic(ApiKey.Created)
        found: list[ApiKey] = []
        position = after
        while len(found) < limit:
            batch = self.recorder.select_notifications(position + 1, 500, topics=[topic])
            if not batch:
                return found, None
            for n in batch:
                position = n.id
                # Notifications type ids as UUID | str; this application's ids are UUIDs.
                key: Aggregate = self.repository.get(cast(UUID, n.originator_id))
                if isinstance(key, ApiKey) and key.org_id == org_id:
                    found.append(key)
                    if len(found) == limit:
                        break
        return found, position

    def get_api_key(self, org_id: UUID, key_id: str) -> ApiKey:
        return self._get(ApiKey, org_id, api_key_aggregate_id(key_id), ApiKeyNotFoundError)

    def find_api_key(self, key_id: str) -> ApiKey | None:
        """The API key with this public id, in any org (authentication looks it up first)."""
        try:
            key: Aggregate = self.repository.get(api_key_aggregate_id(key_id))
        except AggregateNotFoundError:
            return None
        return key if isinstance(key, ApiKey) else None

    def revoke_api_key(
        self, org_id: UUID, key_id: str, *, actor: Actor, context: RequestContext
    ) -> ApiKey:
        now = self.clock()
        try:
            return self._modify(
                ApiKey,
                org_id,
                api_key_aggregate_id(key_id),
                ApiKeyNotFoundError,
                lambda k: k.revoke(now, actor, context),
            )[0]
        except ApiKeyNotFoundError:
            raise ApiKeyNotFoundError(f"API key {key_id} not found") from None

    # ------------------------------------------------------------------ data subjects

    def record_subject_erased(self, org_id: UUID, subject_id: str, *, actor: Actor) -> Subject:
        """Append ``Subject.Erased`` (no personal data).

        Idempotent: a second call returns the first.
        """
        aggregate_id = subject_aggregate_id(subject_id)
        for _ in range(2):
            try:
                existing: Aggregate = self.repository.get(aggregate_id)
            except AggregateNotFoundError:
                pass
            else:
                if not isinstance(existing, Subject):
                    raise LedgerError(f"subject {subject_id} collides with another aggregate")
                return existing
            subject = Subject(
                org_id=org_id,
                subject_id=subject_id,
                erased_at=self.clock(),
                actor=Actor(kind=actor.kind, id=actor.id),
            )
            try:
                self.save(subject)
            except IntegrityError:
                continue
            return subject
        raise ConcurrencyError("the subject erasure raced with another; try again")


def _personal(subject: str, value: str | None, field: str, limit: int) -> PersonalData | None:
    if value is None or value == "":
        return None
    if len(value) > limit or not value.isprintable():
        raise InvalidInputError(f"{field} must be printable text of at most {limit} characters")
    return PersonalData(subject, value)


def _check_metadata(metadata: dict[str, Any] | None) -> dict[str, Any]:
    import json

    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidInputError("metadata must be a JSON object")
    try:
        size = len(json.dumps(metadata, allow_nan=False).encode())
    except (TypeError, ValueError):
        raise InvalidInputError("metadata must be plain JSON (no NaN or infinities)") from None
    if size > MAX_METADATA_BYTES:
        raise InvalidInputError(f"metadata must be at most {MAX_METADATA_BYTES} bytes of JSON")
    if _has_reserved_key(metadata):
        # The store's JSON transcoder reads {"_type_": …, "_data_": …} as a typed value.
        raise InvalidInputError("metadata keys must not be '_type_' or '_data_'")
    return metadata


def _has_reserved_key(value: Any) -> bool:
    if isinstance(value, dict):
        return bool({"_type_", "_data_"} & set(value)) or any(
            _has_reserved_key(v) for v in value.values()
        )
    if isinstance(value, list):
        return any(_has_reserved_key(v) for v in value)
    return False


__all__ = ["IssuedLicense", "LedgerApplication", "LedgerError", "utcnow"]
