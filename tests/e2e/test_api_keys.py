"""API keys over HTTP: created with the secret shown once, listed without it, revoked, rotated."""

from __future__ import annotations

import time
from typing import Any

from tests.e2e.conftest import as_key, make_key


def test_created_api_key_secret_is_shown_once_and_never_listed(api: Any) -> None:
    created = make_key(api, name="reader", permissions=["licenses:read"])
    assert created["api_key"].startswith("lk_live_" + created["key_id"])
    listed = api.get("/v1/api-keys").json()["data"]
    assert created["key_id"] in {k["key_id"] for k in listed}
    assert all(k["api_key"] is None for k in listed)
    assert created["api_key"] not in api.get("/v1/api-keys").text
    assert api.get(f"/v1/api-keys/{created['key_id']}").json()["api_key"] is None


def test_api_key_list_pages_with_a_cursor(api: Any) -> None:
    made = {make_key(api)["key_id"] for _ in range(4)}
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/v1/api-keys", params=params).json()
        seen += [k["key_id"] for k in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert made <= set(seen)
    assert len(seen) == len(set(seen)) == 5  # the admin key and the four


def test_api_key_permissions_are_enforced(api: Any) -> None:
    reader = make_key(api, permissions=["licenses:read"])["api_key"]
    assert api.get("/v1/licenses", headers=as_key(api, reader)).status_code == 200
    r = api.post("/v1/policies", json={"name": "x"}, headers=as_key(api, reader))
    assert r.status_code == 403 and r.json()["code"] == "FORBIDDEN"
    r = api.get("/v1/api-keys", headers=as_key(api, reader))
    assert r.status_code == 403


def test_unknown_permission_is_refused(api: Any) -> None:
    r = api.post("/v1/api-keys", json={"permissions": ["licenses:destroy"]})
    assert r.status_code == 422 and r.json()["code"] == "VALIDATION_ERROR"


def test_revoked_api_key_is_refused_at_once(api: Any) -> None:
    created = make_key(api)
    headers = as_key(api, created["api_key"])
    assert api.get("/v1/me", headers=headers).status_code == 200
    r = api.post(f"/v1/api-keys/{created['key_id']}/revoke")
    assert r.status_code == 200 and r.json()["revoked_at"] is not None
    r = api.get("/v1/me", headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED"
    again = api.post(f"/v1/api-keys/{created['key_id']}/revoke")
    assert again.status_code == 409 and again.json()["code"] == "ILLEGAL_TRANSITION"


def test_expired_api_key_is_refused(api: Any) -> None:
    from datetime import UTC, datetime, timedelta

    soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat().replace("+00:00", "Z")
    created = make_key(api, expires_at=soon)
    assert api.get("/v1/me", headers=as_key(api, created["api_key"])).status_code == 200
    time.sleep(2)
    r = api.get("/v1/me", headers=as_key(api, created["api_key"]))
    assert r.status_code == 401


def test_an_api_key_cannot_be_created_already_expired(api: Any) -> None:
    r = api.post(
        "/v1/api-keys",
        json={"name": "x", "permissions": ["admin"], "expires_at": "2001-01-01T00:00:00Z"},
    )
    assert r.status_code == 422 and r.json()["code"] == "VALIDATION_ERROR"


def test_rotated_api_key_keeps_working_for_the_grace_then_stops(api: Any) -> None:
    old = make_key(api, name="deploy", permissions=["licenses:read", "audit:read"])
    r = api.post(f"/v1/api-keys/{old['key_id']}/rotate", json={"grace_seconds": 2})
    assert r.status_code == 200, r.text
    rotated = r.json()
    new = rotated["new"]
    assert new["api_key"] and new["name"] == "deploy"
    assert new["permissions"] == ["audit:read", "licenses:read"]
    assert rotated["old"]["successor_key_id"] == new["key_id"]
    assert rotated["old"]["api_key"] is None
    assert api.get("/v1/me", headers=as_key(api, old["api_key"])).status_code == 200
    assert api.get("/v1/me", headers=as_key(api, new["api_key"])).status_code == 200
    time.sleep(2.2)
    assert api.get("/v1/me", headers=as_key(api, old["api_key"])).status_code == 401
    assert api.get("/v1/me", headers=as_key(api, new["api_key"])).status_code == 200
    again = api.post(f"/v1/api-keys/{old['key_id']}/rotate")
    assert again.status_code == 409


def test_rotation_grace_defaults_to_a_day(api: Any) -> None:
    old = make_key(api)
    rotated = api.post(f"/v1/api-keys/{old['key_id']}/rotate").json()
    from datetime import datetime, timedelta

    ends = datetime.fromisoformat(rotated["old"]["revoked_at"])
    created = datetime.fromisoformat(rotated["new"]["created_at"])
    assert abs(ends - created - timedelta(hours=24)) < timedelta(seconds=5)


def test_api_key_of_another_org_is_not_found(api: Any, ledger: Any) -> None:
    from ledger.bootstrap import cli_actor
    from ledger.domain.values import RequestContext

    other = ledger.app.create_organization("Other", cli_actor(), RequestContext())
    key, _ = ledger.create_api_key(other.id, name="x", permissions=["admin"], actor=cli_actor())
    r = api.post(f"/v1/api-keys/{key.key_id}/revoke")
    assert r.status_code == 404 and r.json()["code"] == "API_KEY_NOT_FOUND"
    assert api.get(f"/v1/api-keys/{key.key_id}").status_code == 404


def test_api_key_use_sets_last_used_and_is_in_the_audit_trail(api: Any, ledger: Any) -> None:
    created = make_key(api, permissions=["licenses:read"])
    assert api.get("/v1/licenses", headers=as_key(api, created["api_key"])).status_code == 200
    row = api.get(f"/v1/api-keys/{created['key_id']}").json()
    assert row["last_used_at"] is not None
    ledger.runner.catch_up()
    trail = api.get("/v1/audit", params={"actor": f"api_key:{created['key_id']}"}).json()["data"]
    assert [t["action"] for t in trail] == ["api_key_use.recorded"]


def test_key_uses_are_recorded_at_most_once_per_interval(api: Any, ledger: Any) -> None:
    created = make_key(api, permissions=["licenses:read"])
    for _ in range(5):
        api.get("/v1/licenses", headers=as_key(api, created["api_key"]))
    ledger.runner.catch_up()
    trail = api.get("/v1/audit", params={"actor": f"api_key:{created['key_id']}"}).json()["data"]
    assert len(trail) == 1


def test_signing_keys_rotate_needs_keys_admin(api: Any) -> None:
    before = api.get("/v1/keys").json()["keys"]
    reader = make_key(api)["api_key"]
    assert api.post("/v1/keys/rotate", headers=as_key(api, reader)).status_code == 403
    r = api.post("/v1/keys/rotate")
    assert r.status_code == 200
    after = api.get("/v1/keys").json()["keys"]
    assert len(after) == len(before) + 1
    assert [k["kid"] for k in after if k["status"] == "active"] == [r.json()["active_kid"]]
