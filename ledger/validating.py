"""Online key validation: hash the key, read one row of the validation read model, apply the rules,
and record the answer in the organization's stream before returning it.

No aggregate is replayed here. An unknown, forged, garbled or other-org key is ``NOT_FOUND``.
Validations against an organization that does not exist are answered ``NOT_FOUND`` and not recorded
(there is no stream to record them in, and recording them would let anyone create streams).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from ledger.crypto.licensekey import key_sha256
from ledger.domain.records import ValidationRecord
from ledger.domain.validation import Code, LicenseState, Scope, Verdict, validate
from ledger.domain.values import Actor, RequestContext

MAX_KEY_LENGTH = 16_384


class KeyLookup(Protocol):
    def lookup_key(self, org_id: UUID, key_hash: str) -> tuple[str, LicenseState] | None: ...

    def org_exists(self, org_id: UUID) -> bool: ...


class Recorder(Protocol):
    def record(self, record: Any) -> None: ...


@dataclass(frozen=True)
class ValidationResult:
    verdict: Verdict
    license_id: str | None
    key_hash: str | None

    @property
    def valid(self) -> bool:
        return self.verdict.valid

    @property
    def code(self) -> Code:
        return self.verdict.code


class ValidationService:
    ORG_CACHE_SECONDS = 30.0

    def __init__(self, lookup: KeyLookup, recorder: Recorder | None = None) -> None:
        self.lookup = lookup
        self.recorder = recorder
        self._orgs: dict[UUID, float] = {}
        self._lock = threading.Lock()

    def _org_exists(self, org_id: UUID) -> bool:
        now = time.monotonic()
        with self._lock:
            seen = self._orgs.get(org_id)
        if seen is not None and now - seen < self.ORG_CACHE_SECONDS:
            return True
        if not self.lookup.org_exists(org_id):
            return False
        with self._lock:
            if len(self._orgs) > 100_000:
                self._orgs.clear()
            self._orgs[org_id] = now
        return True

    def check(self, org_id: UUID, key: str, scope: Scope, now: datetime) -> ValidationResult:
        """The answer alone, recorded nowhere."""
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH or not key.isascii():
            return ValidationResult(Verdict(False, Code.NOT_FOUND), None, None)
        key_hash = key_sha256(key)
        found = self.lookup.lookup_key(org_id, key_hash)
        if found is None:
            return ValidationResult(validate(None, scope, now), None, key_hash)
        license_id, state = found
        return ValidationResult(validate(state, scope, now), license_id, key_hash)

    def validate_key(
        self,
        org_id: UUID,
        key: str,
        scope: Scope,
        now: datetime,
        *,
        actor: Actor | None = None,
        context: RequestContext | None = None,
    ) -> ValidationResult:
        """Answer and, for an existing org, record the answer durably before returning it."""
        result = self.check(org_id, key, scope, now)
        if self.recorder is not None and self._org_exists(org_id):
            self.recorder.record(
                ValidationRecord(
                    org_id=org_id,
                    license_id=UUID(result.license_id) if result.license_id else None,
                    key_hash=result.key_hash,
                    valid=result.valid,
                    code=result.code.value,
                    scope=dict(scope.as_dict()),
                    actor=actor or Actor(kind="anonymous", id="-"),
                    context=context or RequestContext.none(),
                )
            )
        return result
