"""End to end over HTTP: a real uvicorn server on loopback, on SQLite and on PostgreSQL.

Every response in this file is checked by a hook: the API never answers 500.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from ledger.crypto.apikeys import BASE62_ALPHABET, generate_api_key
from ledger.domain.values import Actor, RequestContext
from ledger.offline import KeySet, verify

PROBLEM_FIELDS = {"type", "title", "status", "code", "detail"}


@pytest.fixture(autouse=True)
def never_500(api: httpx.Client) -> Any:
    """Fail the test on any 5xx answer, at the request that got it."""
    seen: list[tuple[str, str, int]] = []

    def hook(response: httpx.Response) -> None:
        response.read()
        seen.append((response.request.method, str(response.request.url), response.status_code))
        assert response.status_code < 500, (
            f"{response.request.method} {str(response.request.url)[:200]} -> "
            f"{response.status_code}: "
            f"{response.text}"
        )

    api.event_hooks["response"].append(hook)
    yield
    api.event_hooks["response"].remove(hook)
    assert all(status < 500 for *_, status in seen)


# ----------------------------------------------------------------------------- helpers


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["detail"], str) and body["detail"]
    assert set(body) >= PROBLEM_FIELDS
    return body


def make_policy(api: httpx.Client, **terms: Any) -> dict[str, Any]:
    body = {"name": f"policy {uuid.uuid4().hex[:6]}", **terms}
    r = api.post("/v1/policies", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def issue(api: httpx.Client, policy_id: str, **extra: Any) -> dict[str, Any]:
    r = api.post("/v1/licenses", json={"policy_id": policy_id, **extra})
    assert r.status_code == 201, r.text
    lic = r.json()
    assert lic["key"].startswith("key/")
    return lic


def unauthenticated(api: httpx.Client, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Send without the client's Authorization header (the hook still sees the answer)."""
    request = api.build_request(method, url, **kwargs)
    del request.headers["authorization"]
    return api.send(request)


def validate(
    api: httpx.Client, key: str, org_id: str | None = None, **scope: Any
) -> dict[str, Any]:
    org = org_id or api.org_id  # type: ignore[attr-defined]
    r = unauthenticated(
        api, "POST", f"/v1/orgs/{org}/licenses/validate-key", json={"key": key, **scope}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body["valid"], bool)
    return body


def action(api: httpx.Client, lid: str, name: str, body: Any = None) -> httpx.Response:
    if body is None:
        return api.post(f"/v1/licenses/{lid}/actions/{name}")
    return api.post(f"/v1/licenses/{lid}/actions/{name}", json=body)


def second_org(ledger: Any) -> tuple[str, str]:
    actor = Actor(kind="cli", id="test")
    org = ledger.app.create_organization("Other", actor, RequestContext())
    _, token = ledger.create_api_key(org.id, name="other admin", permissions=["admin"], actor=actor)
    return str(org.id), token


def flip(text: str, index: int) -> str:
    ch = text[index]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    replacement = alphabet[(alphabet.index(ch) + 1) % len(alphabet)] if ch in alphabet else "A"
    return text[:index] + replacement + text[index + 1 :]


# ----------------------------------------------------------------------------- happy path


def test_me_names_the_org(api: httpx.Client) -> None:
    r = api.get("/v1/me")
    assert r.status_code == 200
    assert r.json()["org_id"] == api.org_id  # type: ignore[attr-defined]
    assert "admin" in r.json()["permissions"]


def test_issue_then_validate_is_valid(api: httpx.Client) -> None:
    policy = make_policy(api, duration_seconds=3600, max_machines=2, entitlements=["pro"])
    lic = issue(api, policy["id"], entitlements=["export"])
    assert lic["status"] == "ACTIVE"
    assert lic["org_id"] == api.org_id  # type: ignore[attr-defined]
    assert lic["entitlements"] == ["export", "pro"]
    result = validate(api, lic["key"], nonce="n-1")
    assert result["valid"] is True
    assert result["code"] == "VALID"
    assert result["license_id"] == lic["id"]
    assert result["nonce"] == "n-1"

    got = api.get(f"/v1/licenses/{lic['id']}")
    assert got.status_code == 200
    assert got.json()["key"] == lic["key"]

    # scope checks, in precedence order
    assert validate(api, lic["key"], fingerprint="fp-1")["code"] == "NO_MACHINE"
    r = api.post(f"/v1/licenses/{lic['id']}/machines", json={"fingerprint": "fp-1"})
    assert r.status_code == 201
    assert validate(api, lic["key"], fingerprint="fp-1")["code"] == "VALID"
    assert validate(api, lic["key"], fingerprint="fp-2")["code"] == "FINGERPRINT_SCOPE_MISMATCH"
    assert validate(api, lic["key"], fingerprints=["fp-2", "fp-1"])["code"] == "VALID"
    assert validate(api, lic["key"], entitlements=["pro"])["code"] == "VALID"
    assert validate(api, lic["key"], entitlements=["nope"])["code"] == "ENTITLEMENTS_MISSING"


def test_lifecycle_is_reflected_in_validation(api: httpx.Client) -> None:
    policy = make_policy(api, duration_seconds=3600)
    lic = issue(api, policy["id"])
    key, lid = lic["key"], lic["id"]

    r = action(api, lid, "suspend", {"reason": "unpaid"})
    assert r.status_code == 200 and r.json()["status"] == "SUSPENDED"
    result = validate(api, key)
    assert (result["valid"], result["code"], result["license_id"]) == (False, "SUSPENDED", lid)

    r = action(api, lid, "reinstate")
    assert r.status_code == 200 and r.json()["status"] == "ACTIVE"
    assert validate(api, key)["code"] == "VALID"

    r = action(api, lid, "renew", {"basis": "from_now", "duration_seconds": 7200})
    assert r.status_code == 200
    renewed = r.json()
    assert renewed["key"] != key
    # both the old and the renewed key are the same license
    assert validate(api, key)["code"] == "VALID"
    assert validate(api, renewed["key"])["license_id"] == lid

    r = api.post(f"/v1/licenses/{lid}/entitlements", json={"add": ["beta"]})
    assert r.status_code == 200 and r.json()["entitlements"] == ["beta"]
    assert validate(api, key, entitlements=["beta"])["code"] == "VALID"

    r = action(api, lid, "check-in")
    assert r.status_code == 200 and r.json()["last_check_in"] is not None

    r = action(api, lid, "revoke", {"reason": "fraud"})
    assert r.status_code == 200 and r.json()["status"] == "REVOKED"
    result = validate(api, key)
    assert (result["valid"], result["code"], result["license_id"]) == (False, "REVOKED", lid)
    assert validate(api, renewed["key"])["code"] == "REVOKED"
    # a revoked license stays readable
    assert api.get(f"/v1/licenses/{lid}").json()["status"] == "REVOKED"


def wait_for_code(api: httpx.Client, key: str, code: str) -> dict[str, Any]:
    """Poll validation until it answers ``code`` (bounded; the clock has to pass an expiry)."""
    deadline = time.monotonic() + 30
    while True:
        result = validate(api, key)
        if result["code"] == code or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


def test_expiry(api: httpx.Client) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    restrict = issue(api, make_policy(api)["id"], expires_at=soon)
    maintain = issue(
        api, make_policy(api, expiration_strategy="MAINTAIN_ACCESS")["id"], expires_at=soon
    )
    graced = issue(api, make_policy(api, grace_period_seconds=3600)["id"], expires_at=soon)
    for lic in (restrict, maintain, graced):
        assert lic["status"] == "ACTIVE"
        assert validate(api, lic["key"])["code"] == "VALID"

    result = wait_for_code(api, restrict["key"], "EXPIRED")
    assert (result["valid"], result["code"]) == (False, "EXPIRED")
    result = validate(api, maintain["key"])
    assert (result["valid"], result["code"]) == (True, "EXPIRED")
    # inside the grace period: still valid, still ACTIVE
    assert validate(api, graced["key"])["code"] == "VALID"
    assert api.get(f"/v1/licenses/{graced['id']}").json()["status"] == "ACTIVE"
    assert api.get(f"/v1/licenses/{restrict['id']}").json()["status"] == "EXPIRED"

    # an expired RESTRICT_ACCESS license takes no new machines
    r = api.post(f"/v1/licenses/{restrict['id']}/machines", json={"fingerprint": "late"})
    problem(r, 409, "ILLEGAL_TRANSITION")
    # renewing from expiry by too little leaves it in the past: refused, not a 500
    expired_at = datetime.fromisoformat(restrict["expires_at"].replace("Z", "+00:00"))
    while datetime.now(UTC) < expired_at + timedelta(seconds=1.5):
        time.sleep(0.1)
    problem(action(api, restrict["id"], "renew", {"duration_seconds": 1}), 422, "VALIDATION_ERROR")
    # renewing from now brings it back, with a new key; the old key follows the license
    r = action(api, restrict["id"], "renew", {"basis": "from_now", "duration_seconds": 600})
    assert r.status_code == 200 and r.json()["status"] == "ACTIVE"
    assert validate(api, restrict["key"])["code"] == "VALID"
    assert validate(api, r.json()["key"])["code"] == "VALID"


@pytest.mark.parametrize(
    "expires_at",
    [
        "2001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+14:00",  # year 0 in UTC
        "9999-12-31T23:59:59-14:00",  # year 10000 in UTC
    ],
)
def test_unrepresentable_expiry_is_422(api: httpx.Client, expires_at: str) -> None:
    policy = make_policy(api)
    r = api.post("/v1/licenses", json={"policy_id": policy["id"], "expires_at": expires_at})
    problem(r, 422, "VALIDATION_ERROR")


def test_renewal_past_year_9999_is_422(api: httpx.Client) -> None:
    policy = make_policy(api)
    lic = issue(api, policy["id"], expires_at="9999-12-01T00:00:00Z")
    r = action(api, lic["id"], "renew", {"duration_seconds": 100 * 366 * 86400})
    problem(r, 422, "VALIDATION_ERROR")
    assert validate(api, lic["key"])["code"] == "VALID"


# ----------------------------------------------------------------------------- machines


def test_activation_past_the_limit_is_a_409_problem(api: httpx.Client) -> None:
    policy = make_policy(api, max_machines=2)
    lid = issue(api, policy["id"])["id"]
    for fp in ("a", "b"):
        assert api.post(f"/v1/licenses/{lid}/machines", json={"fingerprint": fp}).status_code == 201
    # activating an active fingerprint again is idempotent
    again = api.post(f"/v1/licenses/{lid}/machines", json={"fingerprint": "a"})
    assert again.status_code == 201 and len(again.json()["machines"]) == 2

    r = api.post(f"/v1/licenses/{lid}/machines", json={"fingerprint": "c", "name": "laptop"})
    body = problem(r, 409, "MACHINE_LIMIT_EXCEEDED")
    assert "2" in body["detail"]
    assert [m["fingerprint"] for m in api.get(f"/v1/licenses/{lid}").json()["machines"]] == [
        "a",
        "b",
    ]

    # freeing a seat makes room
    assert api.delete(f"/v1/licenses/{lid}/machines/a").status_code == 200
    assert api.post(f"/v1/licenses/{lid}/machines", json={"fingerprint": "c"}).status_code == 201
    problem(api.delete(f"/v1/licenses/{lid}/machines/zzz"), 404, "MACHINE_NOT_FOUND")
    problem(
        api.post(f"/v1/licenses/{lid}/actions/check-in", json={"fingerprint": "zzz"}),
        404,
        "MACHINE_NOT_FOUND",
    )


def test_per_license_max_machines_zero(api: httpx.Client) -> None:
    policy = make_policy(api, max_machines=5)
    lid = issue(api, policy["id"], max_machines=0)["id"]
    r = api.post(f"/v1/licenses/{lid}/machines", json={"fingerprint": "x"})
    problem(r, 409, "MACHINE_LIMIT_EXCEEDED")


# ----------------------------------------------------------------------------- errors


def test_illegal_transitions_are_409(api: httpx.Client) -> None:
    policy = make_policy(api, duration_seconds=3600, max_machines=3)
    lid = issue(api, policy["id"])["id"]
    problem(action(api, lid, "reinstate"), 409, "ILLEGAL_TRANSITION")
    assert action(api, lid, "suspend").status_code == 200
    problem(action(api, lid, "suspend"), 409, "ILLEGAL_TRANSITION")
    problem(
        api.post(f"/v1/licenses/{lid}/machines", json={"fingerprint": "f"}),
        409,
        "ILLEGAL_TRANSITION",
    )
    problem(action(api, lid, "check-in"), 409, "ILLEGAL_TRANSITION")
    assert action(api, lid, "revoke").status_code == 200
    for name, body in [
        ("suspend", None),
        ("reinstate", None),
        ("renew", {"duration_seconds": 60}),
        ("revoke", {"reason": "again"}),
        ("check-in", None),
    ]:
        problem(action(api, lid, name, body), 409, "ILLEGAL_TRANSITION")
    problem(
        api.post(f"/v1/licenses/{lid}/machines", json={"fingerprint": "f"}),
        409,
        "ILLEGAL_TRANSITION",
    )
    problem(
        api.post(f"/v1/licenses/{lid}/entitlements", json={"add": ["x"]}),
        409,
        "ILLEGAL_TRANSITION",
    )


def test_unknown_license_is_404(api: httpx.Client, ledger: Any) -> None:
    missing = str(uuid.uuid4())
    problem(api.get(f"/v1/licenses/{missing}"), 404, "LICENSE_NOT_FOUND")
    problem(api.get("/v1/licenses/not-a-uuid"), 404, "LICENSE_NOT_FOUND")
    problem(action(api, missing, "suspend"), 404, "LICENSE_NOT_FOUND")
    problem(action(api, "not-a-uuid", "revoke"), 404, "LICENSE_NOT_FOUND")
    problem(
        api.post(f"/v1/licenses/{missing}/machines", json={"fingerprint": "f"}),
        404,
        "LICENSE_NOT_FOUND",
    )
    problem(api.delete(f"/v1/licenses/{missing}/machines/f"), 404, "LICENSE_NOT_FOUND")
    problem(api.get(f"/v1/policies/{missing}"), 404, "POLICY_NOT_FOUND")
    # issuing under an unknown policy
    r = api.post("/v1/licenses", json={"policy_id": missing})
    assert r.status_code in (404, 422)
    assert r.headers["content-type"].startswith("application/problem+json")

    # another org's license does not exist for this org, and vice versa
    _, other_token = second_org(ledger)
    other = httpx.Headers({"Authorization": f"Bearer {other_token}"})
    pol = api.post("/v1/policies", json={"name": "theirs"}, headers=other).json()
    theirs = api.post("/v1/licenses", json={"policy_id": pol["id"]}, headers=other).json()
    problem(api.get(f"/v1/licenses/{theirs['id']}"), 404, "LICENSE_NOT_FOUND")
    problem(action(api, theirs["id"], "revoke"), 404, "LICENSE_NOT_FOUND")
    assert api.get(f"/v1/licenses/{theirs['id']}", headers=other).status_code == 200
    ours = api.get("/v1/licenses", params={"limit": 500}).json()["data"]
    assert theirs["id"] not in {x["id"] for x in ours}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/policies", {"name": "p", "colour": "red"}),
        ("/v1/policies", {"name": "p", "max_machines": -1}),
        ("/v1/policies", {"name": "p", "expiration_strategy": "WHATEVER"}),
        ("/v1/policies", {}),
        ("/v1/licenses", {"policy_id": "P", "price": 3}),
        ("/v1/licenses", {"policy_id": "P", "expires_at": "2030-01-01T00:00:00"}),
        ("/v1/licenses", {"policy_id": "P", "expires_at": "tomorrow"}),
        ("/v1/licenses/L/actions/suspend", {"reason": "x", "until": "later"}),
        ("/v1/licenses/L/actions/renew", {"basis": "from_yesterday"}),
        ("/v1/licenses/L/actions/renew", {"duration_seconds": 0}),
        ("/v1/licenses/L/machines", {"fingerprint": "f", "os": "linux"}),
        ("/v1/licenses/L/machines", {"fingerprint": ""}),
        ("/v1/licenses/L/entitlements", {"add": ["a"], "replace": True}),
        ("/v1/orgs/O/licenses/validate-key", {"key": "k", "fingerprint": "f", "extra": 1}),
        ("/v1/orgs/O/licenses/validate-key", {"key": ""}),
        ("/v1/orgs/O/licenses/validate-key", {}),
    ],
)
def test_invalid_bodies_are_422(api: httpx.Client, path: str, body: dict[str, Any]) -> None:
    policy = make_policy(api)
    lid = issue(api, policy["id"])["id"]
    path = path.replace("/L/", f"/{lid}/").replace("/O/", f"/{api.org_id}/")  # type: ignore[attr-defined]
    body = {k: policy["id"] if v == "P" else v for k, v in body.items()}
    detail = problem(api.post(path, json=body), 422, "VALIDATION_ERROR")
    assert isinstance(detail.get("errors", []), list)


@pytest.mark.parametrize(
    "raw", [b"{not json", b'{"name": "p",}', b"", b"[1, 2]", b'"just a string"', b"\xff\xfe"]
)
def test_malformed_json_bodies_are_422(api: httpx.Client, raw: bytes) -> None:
    headers = {"content-type": "application/json"}
    problem(api.post("/v1/policies", content=raw, headers=headers), 422, "VALIDATION_ERROR")
    url = f"/v1/orgs/{api.org_id}/licenses/validate-key"  # type: ignore[attr-defined]
    problem(
        unauthenticated(api, "POST", url, content=raw, headers=headers), 422, "VALIDATION_ERROR"
    )


def test_authentication_failures_are_all_the_same_401(api: httpx.Client, ledger: Any) -> None:
    token: str = api.token  # type: ignore[attr-defined]
    well_formed_unknown = generate_api_key("live").token
    # same key id, another secret, checksum recomputed: passes parsing, fails the hash
    from ledger.crypto.apikeys import _checksum

    body_start = len("lk_live_") + 12
    other_secret = token[:body_start] + "".join(
        BASE62_ALPHABET[(BASE62_ALPHABET.index(c) + 1) % 62] for c in token[body_start:-6]
    )
    wrong_secret = other_secret + _checksum(other_secret)
    bad_checksum = flip(token, len(token) - 1)
    # a revoked key
    actor = Actor(kind="cli", id="test")
    key, revoked = ledger.create_api_key(
        uuid.UUID(api.org_id),  # type: ignore[attr-defined]
        name="soon revoked",
        permissions=["admin"],
        actor=actor,
    )
    ledger.app.revoke_api_key(key.org_id, key.key_id, actor=actor, context=RequestContext())

    bodies = []
    for header in [
        None,
        "",
        "Bearer",
        f"Basic {base64.b64encode(b'user:pass').decode()}",
        f"Token {token}",
        "Bearer garbage",
        f"Bearer {token[:-1]}",
        f"Bearer {token}x",
        f"Bearer {bad_checksum}",
        f"Bearer {well_formed_unknown}",
        f"Bearer {wrong_secret}",
        f"Bearer {revoked}",
        f"Bearer {'lk_live_' + 'A' * 5000}",
    ]:
        for path in ("/v1/me", "/v1/licenses", "/v1/policies"):
            if header is None:
                r = unauthenticated(api, "GET", path)
            else:
                r = api.get(path, headers={"Authorization": header})
            body = problem(r, 401, "UNAUTHORIZED")
            assert set(body) == PROBLEM_FIELDS, body
            for secret in (token, well_formed_unknown, wrong_secret, revoked, key.key_id):
                assert secret not in r.text
            if header and header.startswith("Bearer "):
                bodies.append(body)
    # every presented-but-bad key gets the very same answer: no oracle
    assert all(b == bodies[0] for b in bodies)
    # the real key still works
    assert api.get("/v1/me").status_code == 200
    # the public endpoints need no key
    assert unauthenticated(api, "GET", "/v1/keys").status_code == 200


def test_non_ascii_authorization_header_is_401(api: httpx.Client) -> None:
    request = httpx.Request(
        "GET", api.base_url.join("/v1/me"), headers=[(b"authorization", b"Bearer lk_live_\xe9\xe9")]
    )
    problem(api.send(request), 401, "UNAUTHORIZED")


# ----------------------------------------------------------------------------- hostile keys


def test_hostile_keys_validate_not_found_never_500(api: httpx.Client, ledger: Any) -> None:
    policy = make_policy(api)
    key = issue(api, policy["id"])["key"]
    head, _, sig = key.rpartition(".")
    payload = head[len("key/") :]

    other_org, other_token = second_org(ledger)
    other = {"Authorization": f"Bearer {other_token}"}
    other_policy = api.post("/v1/policies", json={"name": "x"}, headers=other).json()
    other_key = api.post(
        "/v1/licenses", json={"policy_id": other_policy["id"]}, headers=other
    ).json()["key"]
    assert validate(api, other_key, other_org)["code"] == "VALID"

    # a payload claiming another license, signed by nobody
    claims = json.loads(base64.urlsafe_b64decode(payload))
    claims["license_id"] = str(uuid.uuid4())
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode()

    hostile = [
        f"{head}.{flip(sig, 10)}",  # flipped signature character
        f"{head}.{flip(sig, 0)}",
        f"key/{flip(payload, 20)}.{sig}",  # flipped payload character
        f"key/{forged_payload}.{sig}",
        key[:-1],
        key[: len(key) // 2],
        head,
        key + "A",
        key + "\n",
        " " + key,
        key.upper(),
        "garbage",
        "key/",
        "key/.",
        "....",
        "\x00",
        "ключ",
        "key/" + "A" * 16_000,
        other_key,  # a real key of another org
    ]
    for bad in hostile:
        result = validate(api, bad)
        assert (result["valid"], result["code"], result["license_id"]) == (
            False,
            "NOT_FOUND",
            None,
        ), bad
    # the other org cannot see ours either
    assert validate(api, key, other_org)["code"] == "NOT_FOUND"
    # an org id that is not a UUID, or not an org
    assert validate(api, key, "not-an-org")["code"] == "NOT_FOUND"
    assert validate(api, key, str(uuid.uuid4()))["code"] == "NOT_FOUND"
    # too long for the schema: refused, not crashed
    url = f"/v1/orgs/{api.org_id}/licenses/validate-key"  # type: ignore[attr-defined]
    problem(unauthenticated(api, "POST", url, json={"key": "k" * 16_385}), 422, "VALIDATION_ERROR")
    # the real key is unharmed
    assert validate(api, key)["code"] == "VALID"


# ----------------------------------------------------------------------------- as_of


def test_as_of_returns_the_older_state(api: httpx.Client) -> None:
    policy = make_policy(api, duration_seconds=3600, max_machines=3)
    lic = issue(api, policy["id"])
    lid = lic["id"]
    activated = api.post(f"/v1/licenses/{lid}/machines", json={"fingerprint": "m1"}).json()
    suspended = action(api, lid, "suspend").json()
    assert suspended["status"] == "SUSPENDED"

    at_issue = api.get(f"/v1/licenses/{lid}", params={"as_of": lic["created_at"]})
    assert at_issue.status_code == 200, at_issue.text
    assert at_issue.json()["status"] == "ACTIVE"
    assert at_issue.json()["machines"] == []

    at_activation = api.get(f"/v1/licenses/{lid}", params={"as_of": activated["updated_at"]})
    assert at_activation.json()["status"] == "ACTIVE"
    assert [m["fingerprint"] for m in at_activation.json()["machines"]] == ["m1"]

    now = api.get(f"/v1/licenses/{lid}", params={"as_of": suspended["updated_at"]})
    assert now.json()["status"] == "SUSPENDED"

    # the same instant in another offset is the same instant
    created = datetime.fromisoformat(lic["created_at"].replace("Z", "+00:00"))
    shifted = created.astimezone(timezone(timedelta(hours=5, minutes=30)))
    same = api.get(f"/v1/licenses/{lid}", params={"as_of": shifted.isoformat()})
    assert same.json()["status"] == "ACTIVE"

    # before the license existed
    before = (created - timedelta(seconds=1)).isoformat()
    problem(api.get(f"/v1/licenses/{lid}", params={"as_of": before}), 404, "LICENSE_NOT_FOUND")


@pytest.mark.parametrize(
    "as_of",
    [
        "future",
        "yesterday",
        "2024-13-01T00:00:00Z",
        "2024-01-01T25:00:00Z",
        "",
        "2024-01-01T00:00:00",  # no time zone
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:59:59Z",
    ],
)
def test_as_of_unparseable_or_future_is_422(api: httpx.Client, as_of: str) -> None:
    policy = make_policy(api)
    lid = issue(api, policy["id"])["id"]
    r = api.get(f"/v1/licenses/{lid}", params={"as_of": as_of})
    if as_of == "0001-01-01T00:00:00+14:00":
        # parseable and in the past: the license did not exist then
        problem(r, 404, "LICENSE_NOT_FOUND")
        return
    problem(r, 422, "VALIDATION_ERROR")


def test_as_of_a_little_in_the_future_is_422(api: httpx.Client) -> None:
    policy = make_policy(api)
    lid = issue(api, policy["id"])["id"]
    soon = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    problem(api.get(f"/v1/licenses/{lid}", params={"as_of": soon}), 422, "VALIDATION_ERROR")


# ----------------------------------------------------------------------------- pagination


def test_cursor_pagination_walks_every_license_once(api: httpx.Client) -> None:
    policy = make_policy(api)
    issued = {issue(api, policy["id"])["id"] for _ in range(11)}
    for limit in (1, 3, 4, 11, 50):
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, Any] = {"limit": limit}
            if cursor:
                params["cursor"] = cursor
            r = api.get("/v1/licenses", params=params)
            assert r.status_code == 200, r.text
            page = r.json()
            assert len(page["data"]) <= limit
            seen.extend(x["id"] for x in page["data"])
            assert all(x["key"] is None for x in page["data"])
            pages += 1
            assert pages <= 20
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == len(set(seen)), f"duplicates with limit={limit}"
        assert set(seen) == issued, f"limit={limit}"


def _b64(obj: Any) -> str:
    raw = obj if isinstance(obj, bytes) else json.dumps(obj).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "!!!",
        "not-a-cursor",
        "A",
        _b64(b"\xff\xfe\xfd"),
        _b64(["x", "y"]),
        _b64(["2024-01-01T00:00:00+00:00"]),
        _b64(["2024-01-01T00:00:00+00:00", 5]),
        _b64({"at": "2024-01-01T00:00:00+00:00"}),
        _b64(None),
        _b64(b"[" * 5000),
        _b64(b"[" * 50_000 + b"]" * 50_000)[:6000],
    ],
)
def test_malformed_cursor_is_422(api: httpx.Client, cursor: str) -> None:
    problem(api.get("/v1/licenses", params={"cursor": cursor}), 422, "VALIDATION_ERROR")


@pytest.mark.parametrize("limit", ["0", "-1", "501", "ten", "1e3"])
def test_bad_limit_is_422(api: httpx.Client, limit: str) -> None:
    problem(api.get("/v1/licenses", params={"limit": limit}), 422, "VALIDATION_ERROR")


# ----------------------------------------------------------------------------- keys


def test_published_key_set_verifies_issued_keys_offline(api: httpx.Client) -> None:
    policy = make_policy(api, duration_seconds=3600, entitlements=["pro"])
    lic = issue(api, policy["id"])
    r = unauthenticated(api, "GET", "/v1/keys")
    assert r.status_code == 200
    keyset = KeySet.from_dict(r.json())
    assert len(keyset) >= 1
    claims = verify(lic["key"], keyset, now=datetime.now(UTC))
    assert claims["license_id"] == lic["id"]
    assert claims["org_id"] == api.org_id  # type: ignore[attr-defined]
    assert claims["entitlements"] == ["pro"]
    # a forged key does not verify offline either
    head, _, sig = lic["key"].rpartition(".")
    from ledger.offline import InvalidLicenseKey

    with pytest.raises(InvalidLicenseKey):
        verify(f"{head}.{flip(sig, 5)}", keyset, now=datetime.now(UTC))
