"""Access over HTTP: allowlists, proxies, rate limits, bad input, headers, secrets at rest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.conftest import POSTGRES_URL
from tests.e2e.conftest import as_key, make_key


def test_call_from_outside_the_allowlist_is_forbidden(api: Any) -> None:
    inside = make_key(api, allowed_cidrs=["127.0.0.0/8", "::1/128"])["api_key"]
    outside = make_key(api, allowed_cidrs=["203.0.113.0/24", "2001:db8::/32"])["api_key"]
    assert api.get("/v1/me", headers=as_key(api, inside)).status_code == 200
    r = api.get("/v1/me", headers=as_key(api, outside))
    assert r.status_code == 403 and r.json()["code"] == "IP_NOT_ALLOWED"


def test_ipv4_mapped_allowlist_entry_matches_ipv4_clients(api: Any) -> None:
    mapped = make_key(api, allowed_cidrs=["::ffff:127.0.0.0/104"])["api_key"]
    assert api.get("/v1/me", headers=as_key(api, mapped)).status_code == 200


def test_allowlist_with_host_bits_is_refused(api: Any) -> None:
    r = api.post("/v1/api-keys", json={"permissions": ["admin"], "allowed_cidrs": ["10.0.0.1/8"]})
    assert r.status_code == 422 and "10.0.0.0/8" in r.json()["detail"]


def test_forwarded_for_is_ignored_from_untrusted_peers(api: Any) -> None:
    key = make_key(api, allowed_cidrs=["203.0.113.0/24"])["api_key"]
    r = api.get("/v1/me", headers=as_key(api, key, **{"X-Forwarded-For": "203.0.113.7"}))
    assert r.status_code == 403


def test_forwarded_for_is_honoured_from_trusted_proxies(serve: Any) -> None:
    with serve(trusted_proxies=["127.0.0.1/32"]) as (client, _ledger, _org):
        key = make_key(client, allowed_cidrs=["203.0.113.0/24"])["api_key"]
        ok = client.get("/v1/me", headers=as_key(client, key, **{"X-Forwarded-For": "203.0.113.7"}))
        assert ok.status_code == 200
        spoofed = client.get(
            "/v1/me",
            headers=as_key(client, key, **{"X-Forwarded-For": "203.0.113.7, 198.51.100.1"}),
        )
        assert spoofed.status_code == 403


def test_api_key_over_its_rate_limit_gets_429_with_retry_after(api: Any) -> None:
    key = make_key(api, rate_limit="3/minute")["api_key"]
    answers = [api.get("/v1/me", headers=as_key(api, key)) for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[0].headers["ratelimit-limit"] == "3"
    assert answers[1].headers["ratelimit-remaining"] == "1"
    denied = answers[3]
    assert denied.json()["code"] == "RATE_LIMITED"
    assert int(denied.headers["retry-after"]) >= 1
    assert denied.headers["content-type"] == "application/problem+json"
    assert api.get("/v1/me").status_code == 200  # other keys are unaffected


def test_malformed_rate_limit_is_refused(api: Any) -> None:
    r = api.post("/v1/api-keys", json={"permissions": ["admin"], "rate_limit": "lots"})
    assert r.status_code == 422


def test_validate_key_is_rate_limited_per_client_address(serve: Any) -> None:
    with serve(validate_rate_limit="2/minute") as (client, _ledger, org):
        url = f"/v1/orgs/{org}/licenses/validate-key"
        codes = [client.post(url, json={"key": "key/x.y"}).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        r = client.post(url, json={"key": "key/x.y"})
        assert r.json()["code"] == "RATE_LIMITED" and "retry-after" in r.headers


def test_wrong_or_malformed_api_key_gets_401_revealing_nothing(api: Any) -> None:
    good = api.token
    tampered = good[:-7] + ("A" if good[-7] != "A" else "B") + good[-6:]
    unknown = make_key(api)["api_key"]
    api.post(f"/v1/api-keys/{unknown[8:20]}/revoke")
    bodies = []
    for header in (
        "",
        "Bearer lk_live_short",
        f"Bearer {tampered}",
        f"Bearer {unknown}",
        "Basic x",
    ):
        r = api.get("/v1/licenses", headers={"Authorization": header})
        assert r.status_code == 401 and r.json()["code"] == "UNAUTHORIZED"
        bodies.append(r.json()["detail"])
    assert set(bodies[1:4]) == {"invalid API key"}


def test_license_of_another_org_is_not_found(api: Any, ledger: Any) -> None:
    from ledger.bootstrap import cli_actor
    from ledger.domain.values import RequestContext

    other = ledger.app.create_organization("Other", cli_actor(), RequestContext())
    _, token = ledger.create_api_key(other.id, name="x", permissions=["admin"], actor=cli_actor())
    policy = api.post("/v1/policies", json={"name": "p"}, headers=as_key(api, token)).json()
    lic = api.post("/v1/licenses", json={"policy_id": policy["id"]}, headers=as_key(api, token))
    r = api.get(f"/v1/licenses/{lic.json()['id']}")
    assert r.status_code == 404 and r.json()["code"] == "LICENSE_NOT_FOUND"


def test_oversized_body_is_refused_while_streaming(api: Any) -> None:
    big = b'{"name":"' + b"x" * (1_100_000) + b'"}'
    r = api.post("/v1/policies", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["code"] == "PAYLOAD_TOO_LARGE"

    def chunks() -> Any:  # no Content-Length: chunked transfer encoding
        for _ in range(40):
            yield b"x" * 65536

    r = api.post("/v1/policies", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_unknown_fields_are_refused(api: Any) -> None:
    r = api.post("/v1/policies", json={"name": "p", "colour": "red"})
    assert r.status_code == 422 and r.json()["code"] == "VALIDATION_ERROR"


def test_every_answer_carries_security_headers(api: Any) -> None:
    for r in (api.get("/v1/me"), api.get("/healthz"), api.get("/v1/nope")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in r.headers  # plain HTTP


def dump_store(ledger: Any, data_dir: Path) -> bytes:
    if POSTGRES_URL and ledger.settings.is_postgres:
        import psycopg
        from psycopg import sql

        out = []
        schema = ledger.settings.database_schema
        with psycopg.connect(POSTGRES_URL) as conn:
            tables = conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            ).fetchall()
            assert len(tables) >= 5
            for (table,) in tables:
                query = sql.SQL("COPY (SELECT * FROM {}.{}) TO STDOUT").format(
                    sql.Identifier(schema), sql.Identifier(table)
                )
                with conn.cursor().copy(query) as copy:
                    out += [bytes(chunk) for chunk in copy]
        return b"".join(out)
    files = [p for p in data_dir.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".db") for p in files)
    return b"".join(p.read_bytes() for p in files)


def test_api_key_secret_is_stored_nowhere_in_the_database(api: Any, ledger: Any) -> None:
    created = make_key(api, permissions=["licenses:read"])
    used = api.get("/v1/licenses", headers=as_key(api, created["api_key"], **{"User-Agent": "t"}))
    assert used.status_code == 200
    api.post("/v1/api-keys", json={"permissions": ["admin"]}, headers={"Idempotency-Key": "i"})
    rotated = api.post(f"/v1/api-keys/{created['key_id']}/rotate").json()["new"]["api_key"]
    ledger.runner.catch_up()
    ledger.recorder.stop()
    dump = dump_store(ledger, ledger.settings.data_dir)
    for token in (created["api_key"], rotated, api.token):
        assert token.encode() not in dump
        assert token[20:52].encode() not in dump  # nor the bare secret
    assert created["key_id"].encode() in dump  # the dump does hold the key rows


def test_http_client_sees_problem_json_for_unknown_routes(api: Any) -> None:
    r = httpx.get(str(api.base_url) + "/v1/nope")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
