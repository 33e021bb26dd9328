"""The org's stream, its audit trail (query and export) and point-in-time answers, for auditors."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse
from pydantic import Field

from ledger.api.deps import Principal, authenticate, get_ledger
from ledger.api.schemas import Entitlement, Fingerprint, Instant, Strict
from ledger.bootstrap import Ledger
from ledger.crypto.licensekey import key_sha256
from ledger.domain.errors import InvalidInputError, LicenseNotFoundError
from ledger.domain.validation import Code, Scope, Verdict, validate
from projections.audit import AuditFilter

router = APIRouter(tags=["audit"])

Auth = Annotated[Principal, Depends(authenticate)]
Led = Annotated[Ledger, Depends(get_ledger)]


@router.get("/v1/events", summary="Page through this organization's stream (org_seq 1, 2, 3…)")
def events(
    who: Auth,
    ledger: Led,
    after: Annotated[
        int, Query(ge=0, le=2**62, description="return events with org_seq > after")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    who.require("audit:read")
    page = ledger.stream.page(who.org_id, after=after, limit=limit)
    size, root = ledger.stream.head(who.org_id)
    return {
        "data": [
            {
                "org_seq": e.org_seq,
                "event_id": e.event_id,
                "type": e.type,
                "aggregate_id": e.aggregate_id,
                "version": e.version,
                "occurred_at": e.occurred_at,
                "envelope": e.envelope,
                "leaf_hash": e.leaf_hash,
            }
            for e in page
        ],
        "next_after": page[-1].org_seq if len(page) == limit else None,
        "log": {"size": size, "root": root},
    }


def _filter(
    license_id: str | None,
    actor: str | None,
    action: str | None,
    since: datetime | None,
    until: datetime | None,
) -> AuditFilter:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidInputError(f"{name} must carry a time zone (e.g. Z)")
    if since and until and since > until:
        raise InvalidInputError("since is after until")
    return AuditFilter(license_id=license_id, actor=actor, action=action, since=since, until=until)


@router.get("/v1/audit", summary="Query the audit trail (cursor pagination)")
def audit_trail(
    who: Auth,
    ledger: Led,
    license_id: str | None = None,
    actor: str | None = None,
    action: Annotated[str | None, Query(examples=["license.suspended", "license.*"])] = None,
    since: datetime | None = None,
    until: datetime | None = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    who.require("audit:read")
    f = _filter(license_id, actor, action, since, until)
    after = 0
    if cursor is not None:
        if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 18:
            raise InvalidInputError("malformed cursor")
        after = int(cursor)
    rows = ledger.audit.page(who.org_id, f, after=after, limit=limit)
    return {"data": rows, "next_cursor": str(rows[-1]["id"]) if len(rows) == limit else None}


@router.get("/v1/audit/export", summary="Stream the audit trail as JSON Lines or CSV")
def audit_export(
    who: Auth,
    ledger: Led,
    format: Annotated[str, Query(description="jsonl or csv")] = "jsonl",
    license_id: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> StreamingResponse:
    who.require("audit:read")
    if format not in ("jsonl", "csv"):
        raise InvalidInputError("format must be 'jsonl' or 'csv'")
    f = _filter(license_id, actor, action, since, until)
    media = "application/x-ndjson" if format == "jsonl" else "text/csv"
    return StreamingResponse(
        ledger.audit.export(who.org_id, f, format),
        media_type=media,
        headers={"content-disposition": f'attachment; filename="audit.{format}"'},
    )


class ValidateAt(Strict):
    key: str = Field(min_length=1, max_length=16_384)
    at: Instant
    fingerprint: str | None = Field(default=None, min_length=1, max_length=256)
    fingerprints: list[Fingerprint] = Field(default_factory=list, max_length=100)
    entitlements: list[Entitlement] = Field(default_factory=list, max_length=100)


@router.post(
    "/v1/licenses/actions/validate-at",
    summary="Was this key valid for this scope at a past instant? (replays the ledger)",
)
def validate_at(body: ValidateAt, who: Auth, ledger: Led) -> dict[str, Any]:
    who.require("audit:read")
    now = ledger.app.clock()
    if body.at > now:
        raise InvalidInputError("'at' is in the future")
    scope = Scope(
        fingerprint=body.fingerprint,
        fingerprints=tuple(body.fingerprints),
        entitlements=frozenset(body.entitlements),
    )
    key_hash = key_sha256(body.key) if body.key.isascii() else None
    found = ledger.licenses.license_for_key(who.org_id, key_hash) if key_hash else None
    verdict, license_id = Verdict(False, Code.NOT_FOUND), None
    if found is not None:
        try:
            lic = ledger.app.license_as_of(who.org_id, UUID(found), body.at)
        except LicenseNotFoundError:
            lic = None
        if lic is not None and key_hash in lic.key_hashes:
            verdict, license_id = validate(lic.state(), scope, body.at), found
    return {
        "valid": verdict.valid,
        "code": verdict.code.value,
        "detail": verdict.detail,
        "license_id": license_id,
        "at": body.at,
    }
