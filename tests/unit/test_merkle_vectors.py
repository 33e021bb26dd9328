"""transparency-dev/merkle known-answer vectors (see tests/vectors/merkle/ORIGIN.md)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from ledger.audit.merkle import MerkleProofError, verify_consistency, verify_inclusion

VECTORS = Path(__file__).resolve().parent.parent / "vectors" / "merkle"


def _cases(kind: str) -> list[Any]:
    files = sorted((VECTORS / kind).rglob("*.json"))
    return [pytest.param(path, id=str(path.relative_to(VECTORS / kind))) for path in files]


def _b64(value: str | None) -> bytes:
    return base64.b64decode(value or "", validate=True)


def _proof(case: dict[str, Any]) -> list[bytes]:
    return [_b64(item) for item in case.get("proof") or []]


def _check(want_err: bool, verify: Any, *args: Any) -> None:
    if want_err:
        with pytest.raises(MerkleProofError):
            verify(*args)
    else:
        verify(*args)


def test_vector_corpus_is_complete() -> None:
    assert len(_cases("inclusion")) == 98
    assert len(_cases("consistency")) == 98


@pytest.mark.parametrize("path", _cases("inclusion"))
def test_inclusion_vector_verdict_matches_reference(path: Path) -> None:
    case = json.loads(path.read_text())
    _check(
        case["wantErr"],
        verify_inclusion,
        _b64(case.get("leafHash")),
        case["leafIdx"],
        case["treeSize"],
        _proof(case),
        _b64(case.get("root")),
    )


@pytest.mark.parametrize("path", _cases("consistency"))
def test_consistency_vector_verdict_matches_reference(path: Path) -> None:
    case = json.loads(path.read_text())
    _check(
        case["wantErr"],
        verify_consistency,
        case["size1"],
        case["size2"],
        _proof(case),
        _b64(case.get("root1")),
        _b64(case.get("root2")),
    )
