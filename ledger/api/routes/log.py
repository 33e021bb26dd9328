"""The tamper-evident audit log over HTTP: the public log key, signed checkpoints and proofs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from ledger.api.deps import Principal, authenticate, get_ledger
from ledger.auditlog import b64
from ledger.bootstrap import Ledger

router = APIRouter(tags=["audit log"])

Auth = Annotated[Principal, Depends(authenticate)]
Led = Annotated[Ledger, Depends(get_ledger)]


@router.get("/v1/log/key", summary="The audit log's public verifier key (C2SP note key)")
def log_key(ledger: Led) -> dict[str, Any]:
    signer = ledger.auditlog.signer
    return {
        "verifier_key": signer.verifier_key(),
        "name": signer.name,
        "origin_template": signer.origin("{org_id}"),
        "algorithm": "Ed25519",
    }


@router.get("/v1/log/checkpoint", summary="The latest signed checkpoint of this org's log")
def checkpoint(
    who: Auth,
    ledger: Led,
    size: Annotated[int | None, Query(ge=0, description="a checkpoint at this size")] = None,
) -> dict[str, Any]:
    who.require("audit:read")
    cp = ledger.auditlog.checkpoint(who.org_id, size)
    return {
        "origin": ledger.auditlog.signer.origin(str(who.org_id)),
        "size": cp.size,
        "root": b64(cp.root_hash),
        "note": cp.note,
        "created_at": cp.created_at,
    }


@router.get("/v1/log/proof/inclusion", summary="Audit path of one event (org_seq) in the log")
def inclusion(
    who: Auth,
    ledger: Led,
    seq: Annotated[int, Query(ge=1, description="the event's org_seq")],
    size: Annotated[
        int | None, Query(ge=1, description="tree size; default latest checkpoint")
    ] = None,
) -> dict[str, Any]:
    who.require("audit:read")
    if size is None:
        size = ledger.auditlog.checkpoint(who.org_id).size
    return ledger.auditlog.inclusion(who.org_id, seq, size)


@router.get("/v1/log/proof/consistency", summary="Proof that one tree size extends another")
def consistency(
    who: Auth,
    ledger: Led,
    old: Annotated[int, Query(alias="from", ge=1)],
    new: Annotated[
        int | None, Query(alias="to", ge=1, description="default latest checkpoint")
    ] = None,
) -> dict[str, Any]:
    who.require("audit:read")
    if new is None:
        new = ledger.auditlog.checkpoint(who.org_id).size
    return ledger.auditlog.consistency(who.org_id, old, new)
