"""Policies: the terms licenses are issued under."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends

from ledger.api.deps import Principal, authenticate, get_ledger
from ledger.api.present import policy_out
from ledger.api.routes.licenses import settle
from ledger.api.schemas import PolicyCreate, PolicyOut
from ledger.bootstrap import Ledger
from ledger.domain.errors import PolicyNotFoundError

router = APIRouter(prefix="/v1/policies", tags=["policies"])

Auth = Annotated[Principal, Depends(authenticate)]
Led = Annotated[Ledger, Depends(get_ledger)]


@router.post("", status_code=201, response_model=PolicyOut, summary="Create a policy")
def create(body: PolicyCreate, who: Auth, ledger: Led) -> dict[str, Any]:
    who.require("policies:write")
    policy = ledger.app.create_policy(
        who.org_id, **body.model_dump(), actor=who.actor, context=who.context
    )
    settle(ledger)
    return policy_out(policy)


@router.get("", response_model=list[PolicyOut], summary="List policies")
def list_policies(who: Auth, ledger: Led) -> list[dict[str, Any]]:
    who.require("policies:read")
    return ledger.licenses.list_policies(who.org_id)


@router.get("/{policy_id}", response_model=PolicyOut)
def read(policy_id: str, who: Auth, ledger: Led) -> dict[str, Any]:
    who.require("policies:read")
    try:
        pid = UUID(policy_id)
    except ValueError:
        raise PolicyNotFoundError(f"policy {policy_id!r} not found") from None
    return policy_out(ledger.app.get_policy(who.org_id, pid))
