"""Idempotency-Key: a retried POST gets the first answer and appends no second event."""

from __future__ import annotations

from typing import Any


def stream_size(api: Any, ledger: Any) -> int:
    ledger.runner.catch_up()
    size: int = api.get("/v1/events", params={"limit": 1}).json()["log"]["size"]
    return size


def test_retried_post_returns_the_first_answer_and_appends_nothing(api: Any, ledger: Any) -> None:
    headers = {"Idempotency-Key": "create-policy-1"}
    first = api.post("/v1/policies", json={"name": "Pro"}, headers=headers)
    assert first.status_code == 201
    before = stream_size(api, ledger)
    again = api.post("/v1/policies", json={"name": "Pro"}, headers=headers)
    assert again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert stream_size(api, ledger) == before
    assert len(api.get("/v1/policies").json()) == 1


def test_idempotency_key_reused_for_another_request_is_refused(api: Any) -> None:
    headers = {"Idempotency-Key": "k"}
    assert api.post("/v1/policies", json={"name": "A"}, headers=headers).status_code == 201
    r = api.post("/v1/policies", json={"name": "B"}, headers=headers)
    assert r.status_code == 422 and r.json()["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_idempotency_keys_are_scoped_to_the_api_key(api: Any) -> None:
    other = api.post("/v1/api-keys", json={"permissions": ["policies:write"]}).json()["api_key"]
    headers = {"Idempotency-Key": "same"}
    a = api.post("/v1/policies", json={"name": "A"}, headers=headers)
    b = api.post(
        "/v1/policies", json={"name": "A"}, headers={**headers, "Authorization": f"Bearer {other}"}
    )
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


def test_retried_api_key_creation_makes_one_key_and_never_replays_the_secret(api: Any) -> None:
    headers = {"Idempotency-Key": "new-key"}
    body = {"permissions": ["licenses:read"]}
    first = api.post("/v1/api-keys", json=body, headers=headers)
    again = api.post("/v1/api-keys", json=body, headers=headers)
    assert first.json()["api_key"] and again.json()["api_key"] is None
    assert again.json()["key_id"] == first.json()["key_id"]
    assert len(api.get("/v1/api-keys").json()["data"]) == 2


def test_failed_requests_are_not_remembered(api: Any) -> None:
    headers = {"Idempotency-Key": "bad-auth", "Authorization": "Bearer lk_live_nope"}
    assert api.post("/v1/policies", json={"name": "A"}, headers=headers).status_code == 401
    assert api.post("/v1/policies", json={"name": "A"}, headers=headers).status_code == 401
    assert (
        "idempotent-replayed"
        not in api.post("/v1/policies", json={"name": "A"}, headers=headers).headers
    )


def test_retried_validation_is_recorded_once(api: Any, ledger: Any) -> None:
    policy = api.post("/v1/policies", json={"name": "p"}).json()
    key = api.post("/v1/licenses", json={"policy_id": policy["id"]}).json()["key"]
    url = f"/v1/orgs/{api.org_id}/licenses/validate-key"
    headers = {"Idempotency-Key": "v1", "Authorization": ""}
    first = api.post(url, json={"key": key, "nonce": "a"}, headers=headers)
    before = stream_size(api, ledger)
    again = api.post(url, json={"key": key, "nonce": "a"}, headers=headers)
    assert again.content == first.content
    assert again.headers["ledger-signature"] == first.headers["ledger-signature"]
    assert stream_size(api, ledger) == before


def test_malformed_idempotency_key_is_refused(api: Any) -> None:
    r = api.post("/v1/policies", json={"name": "A"}, headers={"Idempotency-Key": "x" * 300})
    assert r.status_code == 422


def test_openapi_documents_idempotency_and_examples(api: Any) -> None:
    doc = api.get("/openapi.json").json()
    op = doc["paths"]["/v1/policies"]["post"]
    assert "Idempotency-Key" in {p["name"] for p in op.get("parameters", [])}
    schemas = doc["components"]["schemas"]
    assert schemas["PolicyCreate"]["properties"]["name"]["examples"]
    assert schemas["ApiKeyCreate"]["properties"]["permissions"]["examples"]
