"""Request and response bodies. Unknown fields are refused (422)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
)


def _rfc3339_only(value: object) -> object:
    if not isinstance(value, str):
        raise ValueError("must be an RFC 3339 string such as 2027-01-31T00:00:00Z")
    return value


#: No coercion: a number is not a timestamp, "100" is not an int, true is not 1.
Instant = Annotated[AwareDatetime, BeforeValidator(_rfc3339_only)]

#: One entitlement code or machine fingerprint, as the domain accepts them.
Entitlement = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Fingerprint = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PolicyCreate(Strict):
    name: str = Field(min_length=1, max_length=200, examples=["Pro, yearly"])
    duration_seconds: StrictInt | None = Field(default=None, ge=1, examples=[31536000])
    max_machines: StrictInt | None = Field(default=None, ge=0, le=1_000_000, examples=[3])
    expiration_strategy: Literal["RESTRICT_ACCESS", "MAINTAIN_ACCESS"] = "RESTRICT_ACCESS"
    grace_period_seconds: StrictInt = Field(default=0, ge=0, le=366 * 86400)
    entitlements: list[Entitlement] = Field(
        default_factory=list, max_length=1000, examples=[["pro"]]
    )


class PolicyOut(BaseModel):
    id: str
    org_id: str
    name: str
    duration_seconds: int | None
    max_machines: int | None
    expiration_strategy: str
    grace_period_seconds: int
    entitlements: list[str]
    created_at: datetime | None = None


class LicenseIssue(Strict):
    policy_id: str = Field(examples=["6c1f7d9e-1f0b-4f5e-9d8a-2b7c3e4f5a6b"])
    expires_at: Instant | None = None
    max_machines: StrictInt | None = Field(default=None, ge=0, le=1_000_000)
    entitlements: list[Entitlement] = Field(default_factory=list, max_length=1000)
    licensee_name: str | None = Field(default=None, max_length=200, examples=["Ada Lovelace"])
    licensee_email: str | None = Field(default=None, max_length=320, examples=["ada@example.com"])
    metadata: dict[str, Any] = Field(default_factory=dict)


class Machine(BaseModel):
    fingerprint: str
    name: str
    activated_at: datetime | None = None
    last_check_in: datetime | None = None


class Licensee(BaseModel):
    subject_id: str | None
    name: str | None
    email: str | None


class LicenseOut(BaseModel):
    id: str
    org_id: str
    policy_id: str | None
    status: str
    expires_at: datetime | None
    grace_period_seconds: int
    expiration_strategy: str
    max_machines: int | None
    machines: list[Machine]
    entitlements: list[str]
    licensee: Licensee
    metadata: dict[str, Any]
    key: str | None = Field(default=None, description="the current license key")
    created_at: datetime
    updated_at: datetime
    last_check_in: datetime | None
    version: int


class LicenseList(BaseModel):
    data: list[LicenseOut]
    next_cursor: str | None


class Reason(Strict):
    reason: str = Field(default="", max_length=500)


class Renew(Strict):
    basis: Literal["from_expiry", "from_now"] = "from_expiry"
    duration_seconds: StrictInt | None = Field(default=None, ge=1)


class MachineActivate(Strict):
    fingerprint: str = Field(min_length=1, max_length=256, examples=["4f:3a:9c:11:de:02"])
    name: str = Field(default="", max_length=200)


class CheckIn(Strict):
    fingerprint: str | None = Field(default=None, min_length=1, max_length=256)


class EntitlementsChange(Strict):
    add: list[Entitlement] = Field(default_factory=list, max_length=1000)
    remove: list[Entitlement] = Field(default_factory=list, max_length=1000)


class ValidateKey(Strict):
    key: str = Field(min_length=1, max_length=16_384)
    fingerprint: str | None = Field(default=None, min_length=1, max_length=256)
    fingerprints: list[Fingerprint] = Field(default_factory=list, max_length=100)
    entitlements: list[Entitlement] = Field(default_factory=list, max_length=100)
    nonce: str | None = Field(default=None, max_length=128)


class ValidationOut(BaseModel):
    valid: bool
    code: str
    detail: str
    license_id: str | None
    time: datetime
    nonce: str | None = None


class ApiKeyCreate(Strict):
    name: str = Field(default="api key", min_length=1, max_length=200, examples=["CI deploys"])
    permissions: list[str] = Field(
        min_length=1, max_length=20, examples=[["licenses:read", "licenses:write"]]
    )
    expires_at: AwareDatetime | None = Field(default=None, examples=["2027-01-31T00:00:00Z"])
    rate_limit: str | None = Field(default=None, max_length=32, examples=["100/second"])
    allowed_cidrs: list[str] = Field(
        default_factory=list, max_length=100, examples=[["203.0.113.0/24", "2001:db8::/32"]]
    )


class ApiKeyRotate(Strict):
    grace_seconds: int | None = Field(
        default=None,
        ge=0,
        le=366 * 86400,
        examples=[86400],
        description=(
            "how long the old key keeps working (default LEDGER_API_KEY_ROTATION_GRACE_SECONDS)"
        ),
    )


class ApiKeyOut(BaseModel):
    key_id: str
    org_id: str
    name: str
    permissions: list[str]
    expires_at: datetime | None
    rate_limit: str | None
    allowed_cidrs: list[str]
    created_at: datetime
    revoked_at: datetime | None
    successor_key_id: str | None
    last_used_at: datetime | None = None
    api_key: str | None = Field(
        default=None, description="the secret: only in the answer that created it, shown once"
    )


class ApiKeyList(BaseModel):
    data: list[ApiKeyOut]
    next_cursor: str | None


class ApiKeyRotated(BaseModel):
    old: ApiKeyOut
    new: ApiKeyOut
