"""Online key validation: hash the key, read one row of the validation read model, apply the rules.

No aggregate is replayed here. An unknown, forged, garbled or other-org key is ``NOT_FOUND``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from ledger.crypto.licensekey import key_sha256
from ledger.domain.validation import Code, LicenseState, Scope, Verdict, validate

MAX_KEY_LENGTH = 16_384


class KeyLookup(Protocol):
    def lookup_key(self, org_id: UUID, key_hash: str) -> tuple[str, LicenseState] | None: ...


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
    def __init__(self, lookup: KeyLookup) -> None:
        self.lookup = lookup

    def validate_key(self, org_id: UUID, key: str, scope: Scope, now: datetime) -> ValidationResult:
        if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH or not key.isascii():
            return ValidationResult(Verdict(False, Code.NOT_FOUND), None, None)
        key_hash = key_sha256(key)
        found = self.lookup.lookup_key(org_id, key_hash)
        if found is None:
            return ValidationResult(validate(None, scope, now), None, key_hash)
        license_id, state = found
        return ValidationResult(validate(state, scope, now), license_id, key_hash)
