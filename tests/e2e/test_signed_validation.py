"""Signed validate-key answers: server time, the client's nonce, Ed25519 over the body bytes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from ledger.offline import InvalidResponse, KeySet, verify_response


def issue(api: Any) -> str:
    policy = api.post("/v1/policies", json={"name": "p"}).json()
    lic = api.post("/v1/licenses", json={"policy_id": policy["id"]})
    assert lic.status_code == 201, lic.text
    key: str = lic.json()["key"]
    return key


def validate(api: Any, key: str, nonce: str, **headers: str) -> Any:
    return api.post(
        f"/v1/orgs/{api.org_id}/licenses/validate-key",
        json={"key": key, "nonce": nonce},
        headers={"Authorization": "", **headers},
    )


def test_validation_answer_verifies_offline_with_its_nonce(api: Any) -> None:
    key = issue(api)
    r = validate(api, key, "n-123")
    keyset = KeySet.from_dict(api.get("/v1/keys").json())
    answer = verify_response(
        r.content,
        r.headers,
        keyset,
        nonce="n-123",
        now=datetime.now(UTC),
        max_age=timedelta(minutes=1),
    )
    assert answer["valid"] is True and answer["nonce"] == "n-123"
    assert r.headers["ledger-signature"].startswith("v1,")
    assert r.headers["ledger-key-id"] in {k["kid"] for k in keyset.to_dict()["keys"]}


def test_replayed_validation_answer_is_refused(api: Any) -> None:
    key = issue(api)
    r = validate(api, key, "first")
    keyset = KeySet.from_dict(api.get("/v1/keys").json())
    now = datetime.now(UTC)
    with pytest.raises(InvalidResponse):  # answer to another request
        verify_response(r.content, r.headers, keyset, nonce="second", now=now)
    with pytest.raises(InvalidResponse):  # too old
        verify_response(
            r.content, r.headers, keyset, nonce="first", now=now + timedelta(minutes=10)
        )


def test_altered_validation_answer_is_refused(api: Any) -> None:
    key = issue(api)
    r = validate(api, key, "n")
    keyset = KeySet.from_dict(api.get("/v1/keys").json())
    now = datetime.now(UTC)
    forged = r.content.replace(b'"valid":false', b'"valid":true')
    altered = r.content.replace(b'"valid":true', b'"valid":false')
    assert altered != r.content
    for body in (altered, forged + b" "):
        with pytest.raises(InvalidResponse):
            verify_response(body, r.headers, keyset, nonce="n", now=now)
    with pytest.raises(InvalidResponse):  # unsigned
        verify_response(r.content, {}, keyset, nonce="n", now=now)
    with pytest.raises(InvalidResponse):  # retired signing key
        d = keyset.to_dict()
        for k in d["keys"]:
            k["status"] = "retired"
        verify_response(r.content, r.headers, KeySet.from_dict(d), nonce="n", now=now)


def test_validation_answer_still_verifies_after_a_signing_key_rotation(api: Any) -> None:
    key = issue(api)
    r = validate(api, key, "n")
    assert api.post("/v1/keys/rotate").status_code == 200
    keyset = KeySet.from_dict(api.get("/v1/keys").json())
    assert verify_response(r.content, r.headers, keyset, nonce="n", now=datetime.now(UTC))["valid"]
