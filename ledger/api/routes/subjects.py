"""Data subjects: erase (crypto-shredding) and export (portability). Admin keys only."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path

from ledger.api.deps import Principal, authenticate, get_ledger
from ledger.bootstrap import Ledger
from ledger.privacy import erase_subject, export_subject

router = APIRouter(tags=["subjects"])

Auth = Annotated[Principal, Depends(authenticate)]
Led = Annotated[Ledger, Depends(get_ledger)]
SubjectId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="data subject id")]


@router.post("/v1/subjects/{subject_id}/erase", summary="Erase a data subject (destroys its key)")
def erase(subject_id: SubjectId, who: Auth, ledger: Led) -> dict[str, Any]:
    who.require("admin")
    return erase_subject(ledger, who.org_id, subject_id, who.actor)


@router.get("/v1/subjects/{subject_id}/export", summary="Everything held about a data subject")
def export(subject_id: SubjectId, who: Auth, ledger: Led) -> dict[str, Any]:
    who.require("admin")
    return export_subject(ledger, who.org_id, subject_id)
