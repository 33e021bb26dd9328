"""Unauthenticated endpoints: the public key set, key validation, health."""

from __future__ import annotations

import base64
import json
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Request, Response

from ledger.api.deps import Principal, authenticate, get_access, get_ledger
from ledger.api.schemas import ValidateKey, ValidationOut
from ledger.bootstrap import Ledger
from ledger.domain.validation import Code, Scope
from ledger.domain.values import Actor, RequestContext
from ledger.offline import KEY_ID_HEADER, SIGNATURE_HEADER, format_time

router = APIRouter(tags=["public"])

Led = Annotated[Ledger, Depends(get_ledger)]


@router.get("/v1/keys", summary="The license-signing public key set")
def keys(ledger: Led) -> dict[str, Any]:
    return ledger.keyring.keyset_dict()


def signed(ledger: Ledger, answer: dict[str, Any], headers: dict[str, str]) -> Response:
    """The answer as compact, key-sorted JSON, signed over exactly those body bytes (Ed25519 with
    the active license-signing key): ``Ledger-Signature: v1,<base64>`` and ``Ledger-Key-Id``."""
    body = json.dumps(answer, separators=(",", ":"), sort_keys=True, ensure_ascii=True).encode()
    kid, key = ledger.keyring.active()
    signature = base64.b64encode(key.sign(body).signature).decode()
    headers = {**headers, SIGNATURE_HEADER: f"v1,{signature}", KEY_ID_HEADER: kid}
    return Response(content=body, media_type="application/json", headers=headers)


@router.post(
    "/v1/orgs/{org_id}/licenses/validate-key",
    response_model=ValidationOut,
    summary="Validate a license key; the key is the credential",
    description=(
        "The answer is signed: `Ledger-Signature: v1,<base64 Ed25519 signature>` over the exact "
        "response body bytes, by the license-signing key `Ledger-Key-Id` of GET /v1/keys. It "
        "carries the server `time` and the request's `nonce`; `ledger.offline.verify_response` "
        "checks all three. Rate limited per client address (429 RATE_LIMITED)."
    ),
    responses={429: {"description": "rate limited (problem+json, Retry-After)"}},
)
def validate_key(org_id: str, body: ValidateKey, request: Request, ledger: Led) -> Response:
    access = get_access(request)
    ip = access.client_ip(request)
    decision = access.check_ip_rate(ip)
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
        context = RequestContext.of(org, actor, ip, request.headers.get("user-agent"))
        result = ledger.validator.validate_key(
            org, body.key, scope, now, actor=actor, context=context
        )
        result_code, valid, license_id = result.code, result.valid, result.license_id
        detail = result.verdict.detail
    request.app.state.metrics.validations.labels(result_code.value).inc()
    answer = {
        "valid": valid,
        "code": result_code.value,
        "detail": detail,
        "license_id": license_id,
        "time": format_time(now),
        "nonce": body.nonce,
    }
    return signed(ledger, answer, decision.headers() if decision is not None else {})


@router.get("/v1/me", tags=["auth"], summary="The organization and permissions of this API key")
def me(who: Annotated[Principal, Depends(authenticate)]) -> dict[str, Any]:
    return {"org_id": str(who.org_id), "key_id": who.key_id, "permissions": sorted(who.permissions)}
