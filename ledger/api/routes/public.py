"""Unauthenticated endpoints: the public key set, key validation, health."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request

from ledger.api.deps import Principal, authenticate, client_ip, get_ledger
from ledger.api.schemas import ValidateKey, ValidationOut
from ledger.bootstrap import Ledger
from ledger.domain.validation import Code, Scope
from ledger.domain.values import Actor, RequestContext

router = APIRouter(tags=["public"])

Led = Annotated[Ledger, Depends(get_ledger)]


@router.get("/v1/keys", summary="The license-signing public key set")
def keys(ledger: Led) -> dict[str, Any]:
    return ledger.keyring.keyset_dict()


@router.post(
    "/v1/orgs/{org_id}/licenses/validate-key",
    response_model=ValidationOut,
    summary="Validate a license key; the key is the credential",
)
def validate_key(org_id: str, body: ValidateKey, request: Request, ledger: Led) -> dict[str, Any]:
    now = ledger.app.clock()
    scope = Scope(
        fingerprint=body.fingerprint,
        fingerprints=tuple(body.fingerprints),
        entitlements=frozenset(body.entitlements),
    )
    try:
        org = UUID(org_id)
    except ValueError:
        org = None
    if org is None:
        result_code, valid, license_id = Code.NOT_FOUND, False, None
        detail = "license does not exist"
    else:
        actor = Actor(kind="anonymous", id="-")
        context = RequestContext.of(org, actor, client_ip(request), request.headers.get("user-agent"))
        result = ledger.validator.validate_key(
            org, body.key, scope, now, actor=actor, context=context
        )
        result_code, valid, license_id = result.code, result.valid, result.license_id
        detail = result.verdict.detail
    request.app.state.metrics.validations.labels(result_code.value).inc()
    return {
        "valid": valid,
        "code": result_code.value,
        "detail": detail,
        "license_id": license_id,
        "time": now,
        "nonce": body.nonce,
    }


@router.get("/v1/me", tags=["auth"], summary="The organization and permissions of this API key")
def me(who: Annotated[Principal, Depends(authenticate)]) -> dict[str, Any]:
    return {"org_id": str(who.org_id), "key_id": who.key_id, "permissions": sorted(who.permissions)}
