"""The endpoint aggregate's rules, the thin payload and Retry-After parsing (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from consumers.webhooks.payload import thin_payload_dict
from consumers.webhooks.sender import parse_retry_after
from ledger.domain.errors import UnknownEventTypeError
from ledger.domain.license import License
from ledger.domain.values import Actor, PersonalData, RequestContext
from ledger.domain.webhook import check_event_types, matches, rotated
from ledger.webhooks import deliverable_event_types

KNOWN = deliverable_event_types()


def test_filters_accept_exact_names_prefix_wildcards_and_star() -> None:
    assert "license.suspended" in KNOWN and "license.issued" in KNOWN
    assert not any(t.startswith("webhook_endpoint.") for t in KNOWN)
    assert check_event_types(["license.*", "policy.created", "*"], KNOWN) == [
        "*",
        "license.*",
        "policy.created",
    ]
    for bad in (["license.exploded"], ["nope.*"], [], ["license"]):
        with pytest.raises(UnknownEventTypeError):
            check_event_types(bad, KNOWN)
    assert matches(["license.*"], "license.revoked")
    assert not matches(["license.*"], "validation.recorded")


def test_rotation_keeps_one_previous_secret_until_the_overlap_ends() -> None:
    until = datetime(2030, 1, 1, tzinfo=UTC)
    first = [{"id": "a", "expires_at": None}]
    second = rotated(first, {"id": "b"}, until)
    assert [(s["id"], s["expires_at"]) for s in second] == [("b", None), ("a", until.isoformat())]
    third = rotated(second, {"id": "c"}, until)
    assert [s["id"] for s in third] == ["c", "b"]


def test_the_payload_carries_no_personal_data() -> None:
    pd = PersonalData("subject", "ada@example.com")
    actor = Actor(kind="api_key", id="k1", email=PersonalData("s", "op@example.com"))
    ev = License.Issued(
        originator_id=uuid4(),
        originator_version=1,
        timestamp=datetime.now(UTC),
        originator_topic="ledger.domain.license:License",
        org_id=uuid4(),
        policy_id=None,
        expires_at=None,
        grace_period_seconds=0,
        expiration_strategy="RESTRICT_ACCESS",
        max_machines=3,
        entitlements=["pro"],
        licensee_name=PersonalData("s", "Ada"),
        licensee_email=pd,
        metadata={"email": "x@example.com"},
        key_claims={"lid": "x"},
        key_hash="ab" * 32,
        actor=actor,
        context=RequestContext(ip=PersonalData("s", "203.0.113.9")),
    )
    body = thin_payload_dict(
        ev,
        org_id="o",
        org_seq=7,
        originator_id=ev.originator_id,
        version=1,
        topic="ledger.domain.license:License.Issued",
    )
    text = repr(body)
    for secret in (
        "ada@example.com",
        "Ada",
        "op@example.com",
        "203.0.113.9",
        "x@example.com",
        "ab" * 32,
        "k1",
    ):
        assert secret not in text
    assert body["type"] == "license.issued" and body["org_seq"] == 7
    assert body["data"]["max_machines"] == 3 and body["data"]["entitlements"] == ["pro"]


def test_retry_after_in_seconds_or_as_a_date() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert parse_retry_after("30", now) == 30
    assert parse_retry_after("Tue, 01 Jan 2030 00:01:00 GMT", now) == 60
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("99999999", now) == 86400
    assert (
        parse_retry_after((now - timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S GMT"), now)
        == 0
    )
