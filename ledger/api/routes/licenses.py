"""Licenses: issue, read, list, and every lifecycle command."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query

from ledger.api.deps import Principal, authenticate, get_ledger
from ledger.api.present import decode_cursor, encode_cursor, license_out
from ledger.api.schemas import (
    CheckIn,
    EntitlementsChange,
    LicenseIssue,
    LicenseList,
    LicenseOut,
    MachineActivate,
    Reason,
    Renew,
)
from ledger.bootstrap import Ledger
from ledger.domain.errors import InvalidInputError, LicenseNotFoundError
from ledger.domain.license import License

router = APIRouter(prefix="/v1/licenses", tags=["licenses"])

Auth = Annotated[Principal, Depends(authenticate)]
Led = Annotated[Ledger, Depends(get_ledger)]


def _uuid(value: str, what: str, error: type[Exception] = LicenseNotFoundError) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise error(f"{what} {value!r} not found") from None


def settle(ledger: Ledger) -> None:
    """Read-your-writes: wait (bounded) until the read models include this request's events."""
    ledger.runner.wait_for(
        ledger.app.last_notification_id, ledger.settings.read_your_writes_timeout
    )


def done(ledger: Ledger, lic: License) -> dict[str, Any]:
    settle(ledger)
    return license_out(ledger, lic, ledger.app.clock())


@router.post("", status_code=201, response_model=LicenseOut, summary="Issue a license")
def issue(body: LicenseIssue, who: Auth, ledger: Led) -> dict[str, Any]:
    who.require("licenses:write")
    policy_id = _uuid(body.policy_id, "policy", InvalidInputError)
    issued = ledger.app.issue_license(
        who.org_id,
        policy_id=policy_id,
        expires_at=body.expires_at,
        max_machines=body.max_machines,
        entitlements=body.entitlements,
        licensee_name=body.licensee_name,
        licensee_email=body.licensee_email,
        metadata=body.metadata,
        actor=who.actor,
        context=who.context,
    )
    return done(ledger, issued.license)


@router.get("", response_model=LicenseList, summary="List licenses (cursor pagination)")
def list_licenses(
    who: Auth,
    ledger: Led,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    who.require("licenses:read")
    after = None
    if cursor:
        at, lid = decode_cursor(cursor, 2)
        try:
            after = (datetime.fromisoformat(at), lid)
        except ValueError:
            raise InvalidInputError("malformed cursor") from None
    rows = ledger.licenses.list(who.org_id, after=after, limit=limit + 1)
    page, more = rows[:limit], len(rows) > limit
    now = ledger.app.clock()
    data = []
    for r in page:
        lic = ledger.app.get_license(who.org_id, UUID(r["id"]))
        data.append(license_out(ledger, lic, now, with_key=False))
    next_cursor = None
    if more and page:
        last = page[-1]
        next_cursor = encode_cursor(last["created_at"].isoformat(), last["id"])
    return {"data": data, "next_cursor": next_cursor}


@router.get(
    "/{license_id}",
    response_model=LicenseOut,
    summary="Read a license (optionally as of a past instant)",
)
def read(
    license_id: str,
    who: Auth,
    ledger: Led,
    as_of: Annotated[datetime | None, Query(description="RFC 3339 instant in the past")] = None,
) -> dict[str, Any]:
    who.require("licenses:read")
    lid = _uuid(license_id, "license")
    if as_of is None:
        return license_out(ledger, ledger.app.get_license(who.org_id, lid), ledger.app.clock())
    if as_of.tzinfo is None:
        raise InvalidInputError("as_of must carry a time zone (e.g. Z)")
    now = ledger.app.clock()
    if as_of > now:
        raise InvalidInputError("as_of is in the future")
    lic = ledger.app.license_as_of(who.org_id, lid, as_of)
    return license_out(ledger, lic, as_of)


@router.post("/{license_id}/actions/suspend", response_model=LicenseOut)
def suspend(license_id: str, who: Auth, ledger: Led, body: Reason | None = None) -> dict[str, Any]:
    who.require("licenses:write")
    reason = body.reason if body else ""
    lic = ledger.app.suspend(
        who.org_id, _uuid(license_id, "license"), reason, actor=who.actor, context=who.context
    )
    return done(ledger, lic)


@router.post("/{license_id}/actions/reinstate", response_model=LicenseOut)
def reinstate(license_id: str, who: Auth, ledger: Led) -> dict[str, Any]:
    who.require("licenses:write")
    lic = ledger.app.reinstate(
        who.org_id, _uuid(license_id, "license"), actor=who.actor, context=who.context
    )
    return done(ledger, lic)


@router.post("/{license_id}/actions/renew", response_model=LicenseOut)
def renew(license_id: str, who: Auth, ledger: Led, body: Renew | None = None) -> dict[str, Any]:
    who.require("licenses:write")
    body = body or Renew()
    lic = ledger.app.renew(
        who.org_id,
        _uuid(license_id, "license"),
        basis=body.basis,
        duration_seconds=body.duration_seconds,
        actor=who.actor,
        context=who.context,
    )
    return done(ledger, lic)


@router.post("/{license_id}/actions/revoke", response_model=LicenseOut)
def revoke(license_id: str, who: Auth, ledger: Led, body: Reason | None = None) -> dict[str, Any]:
    who.require("licenses:write")
    reason = body.reason if body else ""
    lic = ledger.app.revoke(
        who.org_id, _uuid(license_id, "license"), reason, actor=who.actor, context=who.context
    )
    return done(ledger, lic)


@router.post("/{license_id}/actions/check-in", response_model=LicenseOut)
def check_in(
    license_id: str, who: Auth, ledger: Led, body: CheckIn | None = None
) -> dict[str, Any]:
    who.require("licenses:write")
    lic = ledger.app.check_in(
        who.org_id,
        _uuid(license_id, "license"),
        body.fingerprint if body else None,
        actor=who.actor,
        context=who.context,
    )
    return done(ledger, lic)


@router.post("/{license_id}/entitlements", response_model=LicenseOut)
def change_entitlements(
    license_id: str, body: EntitlementsChange, who: Auth, ledger: Led
) -> dict[str, Any]:
    who.require("licenses:write")
    lic = ledger.app.change_entitlements(
        who.org_id,
        _uuid(license_id, "license"),
        add=body.add,
        remove=body.remove,
        actor=who.actor,
        context=who.context,
    )
    return done(ledger, lic)


@router.post("/{license_id}/machines", status_code=201, response_model=LicenseOut)
def activate(license_id: str, body: MachineActivate, who: Auth, ledger: Led) -> dict[str, Any]:
    who.require("licenses:write")
    lic, _created = ledger.app.activate_machine(
        who.org_id,
        _uuid(license_id, "license"),
        body.fingerprint,
        body.name,
        actor=who.actor,
        context=who.context,
    )
    return done(ledger, lic)


@router.delete("/{license_id}/machines/{fingerprint:path}", response_model=LicenseOut)
def deactivate(license_id: str, fingerprint: str, who: Auth, ledger: Led) -> dict[str, Any]:
    who.require("licenses:write")
    lic = ledger.app.deactivate_machine(
        who.org_id, _uuid(license_id, "license"), fingerprint, actor=who.actor, context=who.context
    )
    return done(ledger, lic)
