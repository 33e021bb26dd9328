"""Turn aggregates and view rows into response bodies."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from ledger.bootstrap import Ledger
from ledger.domain.errors import InvalidInputError
from ledger.domain.license import License
from ledger.domain.organization import Policy


def _pd(value: Any) -> str | None:
    return None if value is None else str(value.value)


def license_out(
    ledger: Ledger, lic: License, now: datetime, *, with_key: bool = True
) -> dict[str, Any]:
    subject = lic.licensee_email or lic.licensee_name
    return {
        "id": str(lic.id),
        "org_id": str(lic.org_id),
        "policy_id": str(lic.policy_id) if lic.policy_id else None,
        "status": lic.status(now).value,
        "expires_at": lic.expires_at,
        "grace_period_seconds": lic.grace_period_seconds,
        "expiration_strategy": lic.expiration_strategy.value,
        "max_machines": lic.max_machines,
        "machines": [{"fingerprint": fp, **m} for fp, m in sorted(lic.machines.items())],
        "entitlements": sorted(lic.entitlements),
        "licensee": {
            "subject_id": subject.subject if subject is not None else None,
            "name": _pd(lic.licensee_name),
            "email": _pd(lic.licensee_email),
        },
        "metadata": lic.metadata,
        "key": ledger.app.license_key(lic) if with_key else None,
        "created_at": lic.created_on,
        "updated_at": lic.modified_on,
        "last_check_in": lic.last_check_in,
        "version": lic.version,
    }


def policy_out(policy: Policy) -> dict[str, Any]:
    return {
        "id": str(policy.id),
        "org_id": str(policy.org_id),
        "name": policy.name,
        "duration_seconds": policy.duration_seconds,
        "max_machines": policy.max_machines,
        "expiration_strategy": policy.expiration_strategy.value,
        "grace_period_seconds": policy.grace_period_seconds,
        "entitlements": policy.entitlements,
        "created_at": policy.created_on,
    }


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: a cursor of ~1,000 nested '[' fits in a URL and exhausts json's stack
        raise InvalidInputError("malformed cursor") from None
    if (
        not isinstance(parts, list)
        or len(parts) != arity
        or not all(isinstance(p, str) for p in parts)
    ):
        raise InvalidInputError("malformed cursor")
    return parts
