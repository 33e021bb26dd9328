"""License-signing keys: rotate and retire (the key set itself is public, GET /v1/keys)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from ledger.api.deps import Principal, authenticate, get_ledger
from ledger.bootstrap import Ledger

router = APIRouter(prefix="/v1/keys", tags=["signing keys"])

Auth = Annotated[Principal, Depends(authenticate)]
Led = Annotated[Ledger, Depends(get_ledger)]


@router.post(
    "/rotate", summary="Make a new active signing key; the previous one becomes verify-only"
)
def rotate(who: Auth, ledger: Led) -> dict[str, Any]:
    who.require("keys:admin")
    kid = ledger.keyring.rotate()
    return {"active_kid": kid, **ledger.keyring.keyset_dict()}


@router.post("/{kid}/retire", summary="Retire a verify-only key: keys it signed stop verifying")
def retire(kid: str, who: Auth, ledger: Led) -> dict[str, Any]:
    who.require("keys:admin")
    ledger.keyring.set_status(kid, "retired")
    return {"kid": kid, "status": "retired"}
