"""Wycheproof Ed25519 vectors through the verifier's own signature check."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ledger.offline import _verify_signature

WYCHEPROOF: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[1] / "vectors" / "wycheproof_ed25519_test.json").read_text(
        "utf-8"
    )
)
CASES = [
    (group["publicKey"]["pk"], test)
    for group in WYCHEPROOF["testGroups"]
    for test in group["tests"]
]


def accepts(public_key_hex: str, msg_hex: str, sig_hex: str) -> bool:
    """What the offline verifier would decide; a KeySet refuses keys that are not 32 bytes."""
    public_key = bytes.fromhex(public_key_hex)
    if len(public_key) != 32:
        return False
    return _verify_signature(public_key, bytes.fromhex(msg_hex), bytes.fromhex(sig_hex))


def test_all_151_wycheproof_cases_are_loaded() -> None:
    assert len(CASES) == WYCHEPROOF["numberOfTests"] == 151


@pytest.mark.parametrize(("public_key", "case"), CASES, ids=[f"tc{t['tcId']}" for _, t in CASES])
def test_verifier_agrees_with_wycheproof_result(public_key: str, case: dict[str, Any]) -> None:
    assert case["result"] in {"valid", "invalid"}
    assert accepts(public_key, case["msg"], case["sig"]) is (case["result"] == "valid"), case[
        "comment"
    ]
