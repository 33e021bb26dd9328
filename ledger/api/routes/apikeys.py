"""API keys: create (secret shown once), list (never the secret), revoke, rotate with overlap."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from ledger.api.deps import Principal, authenticate, get_ledger
from ledger.api.schemas import ApiKeyCreate, ApiKeyList, ApiKeyOut, ApiKeyRotate, ApiKeyRotated
from ledger.apikey_usage import ApiKeyUsage
from ledger.bootstrap import Ledger
from ledger.domain.apikey import ApiKey
from ledger.domain.errors import InvalidInputError

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])

Auth = Annotated[Principal, Depends(authenticate)]
Led = Annotated[Ledger, Depends(get_ledger)]

PERMISSION = "apikeys:manage"


def api_key_out(key: ApiKey, *, last_used: Any = None, secret: str | None = None) -> dict[str, Any]:
    return {
        "key_id": key.key_id,
        "org_id": str(key.org_id),
        "name": key.name,
        "permissions": list(key.permissions),
        "expires_at": key.expires_at,
        "rate_limit": key.rate_limit,
        "allowed_cidrs": list(key.allowed_cidrs),
        "created_at": key.created_on,
        "revoked_at": key.revoked_at,
        "successor_key_id": key.successor_key_id,
        "last_used_at": last_used,
        "api_key": secret,
    }


def _usage(request: Request) -> ApiKeyUsage:
    usage: ApiKeyUsage = request.app.state.usage
    return usage


@router.post(
    "", status_code=201, response_model=ApiKeyOut, summary="Create an API key (secret shown once)"
)
def create(body: ApiKeyCreate, who: Auth, ledger: Led) -> dict[str, Any]:
    who.require(PERMISSION)
    key, token = ledger.create_api_key(
        who.org_id,
        name=body.name,
        permissions=body.permissions,
        actor=who.actor,
        context=who.context,
        expires_at=body.expires_at,
        rate_limit=body.rate_limit,
        allowed_cidrs=body.allowed_cidrs,
    )
    return api_key_out(key, secret=token)


@router.get("", response_model=ApiKeyList, summary="List API keys (never their secrets)")
def list_keys(
    who: Auth,
    ledger: Led,
    request: Request,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    who.require(PERMISSION)
    after = 0
    if cursor is not None:
        if not cursor.isdigit() or len(cursor) > 19:
            raise InvalidInputError("malformed cursor")
        after = int(cursor)
    keys, position = ledger.app.list_api_keys(who.org_id, after=after, limit=limit)
    used = _usage(request).last_used(k.key_id for k in keys)
    return {
        "data": [api_key_out(k, last_used=used.get(k.key_id)) for k in keys],
        "next_cursor": str(position) if position is not None else None,
    }


@router.get("/{key_id}", response_model=ApiKeyOut, summary="Read an API key (never its secret)")
def read(key_id: str, who: Auth, ledger: Led, request: Request) -> dict[str, Any]:
    who.require(PERMISSION)
    key = ledger.app.get_api_key(who.org_id, key_id)
    return api_key_out(key, last_used=_usage(request).last_used([key.key_id]).get(key.key_id))


@router.post("/{key_id}/revoke", response_model=ApiKeyOut, summary="Revoke an API key now")
def revoke(key_id: str, who: Auth, ledger: Led) -> dict[str, Any]:
    who.require(PERMISSION)
    key = ledger.app.revoke_api_key(who.org_id, key_id, actor=who.actor, context=who.context)
    return api_key_out(key)


@router.post(
    "/{key_id}/rotate",
    response_model=ApiKeyRotated,
    summary="Replace an API key; the old one keeps working for the grace period",
)
def rotate(key_id: str, who: Auth, ledger: Led, body: ApiKeyRotate | None = None) -> dict[str, Any]:
    who.require(PERMISSION)
    old, new, token = ledger.rotate_api_key(
        who.org_id,
        key_id,
        actor=who.actor,
        context=who.context,
        grace_seconds=body.grace_seconds if body else None,
    )
    return {"old": api_key_out(old), "new": api_key_out(new, secret=token)}
