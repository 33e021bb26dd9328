from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
import standardwebhooks

from consumers.webhooks.signing import build_headers, sign
from consumers.webhooks.verify import InMemorySeenIdStore, Webhook, WebhookVerificationError
from tests.unit.webhook_fixtures import BODY, KEY_A, KEY_B, NOW, NOW_TS, SECRET_A, load_vectors


def headers_for(
    body: bytes = BODY, *, msg_id: str = "evt_1", ts: int = NOW_TS, keys: list[bytes] | None = None
) -> dict[str, str]:
    return build_headers(keys or [KEY_A], msg_id, ts, body)


def with_header(name: str, value: str, **kwargs: object) -> dict[str, str]:
    headers = headers_for(**kwargs)  # type: ignore[arg-type]
    headers[name] = value
    return headers


def rejects(webhook: Webhook, body: bytes, headers: Mapping[str, str], now: datetime = NOW) -> str:
    with pytest.raises(WebhookVerificationError) as info:
        webhook.verify(body, headers, now=now)
    return str(info.value)


# --- authentic deliveries ------------------------------------------------------------------


def test_authentic_delivery_returns_the_parsed_body() -> None:
    assert Webhook(SECRET_A).verify(BODY, headers_for(), now=NOW) == json.loads(BODY)


def test_header_names_are_matched_case_insensitively() -> None:
    headers = {k.upper(): v for k, v in headers_for().items()}
    assert Webhook(SECRET_A).verify(BODY, headers, now=NOW)["license_id"] == "lic_1"


def test_svix_header_family_is_accepted() -> None:
    headers = {k.replace("webhook-", "svix-"): v for k, v in headers_for().items()}
    assert Webhook(SECRET_A).verify(BODY, headers, now=NOW)["license_id"] == "lic_1"


@pytest.mark.parametrize("text", ['{"name":"Zoë Ångström"}', '{"party":"🎉","jp":"日本"}'])
def test_non_ascii_and_emoji_bodies_verify(text: str) -> None:
    body = text.encode()
    assert Webhook(KEY_A).verify(body, headers_for(body), now=NOW) == json.loads(text)


def test_standard_webhooks_vector_verifies_at_its_own_time() -> None:
    vectors = load_vectors()
    for case in vectors["valid"]:
        at = datetime.fromtimestamp(case["timestamp"], UTC)
        headers = {
            "webhook-id": case["msg_id"],
            "webhook-timestamp": str(case["timestamp"]),
            "webhook-signature": case["signature"],
        }
        assert Webhook(case["secret"]).verify(case["body"].encode(), headers, now=at)
    for case in vectors["invalid"]:
        at = datetime.fromtimestamp(case["timestamp"], UTC)
        headers = {
            "webhook-id": case["msg_id"],
            "webhook-timestamp": str(case["timestamp"]),
            "webhook-signature": case["signature"],
        }
        rejects(Webhook(case["secret"]), case["body"].encode(), headers, now=at)


def test_standardwebhooks_package_accepts_our_signature() -> None:
    now_ts = int(time.time())
    headers = build_headers([KEY_A], "evt_1", now_ts, BODY)
    assert standardwebhooks.Webhook(SECRET_A).verify(BODY, headers) == json.loads(BODY)


def test_we_accept_the_standardwebhooks_package_signature() -> None:
    reference = standardwebhooks.Webhook(SECRET_A)
    signature = reference.sign("msg_1", NOW, BODY.decode())
    headers = {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(NOW_TS),
        "webhook-signature": signature,
    }
    assert Webhook(SECRET_A).verify(BODY, headers, now=NOW) == json.loads(BODY)


# --- body ----------------------------------------------------------------------------------


def test_reserialised_body_is_rejected() -> None:
    reserialised = json.dumps(json.loads(BODY)).encode()
    assert reserialised != BODY
    rejects(Webhook(KEY_A), reserialised, headers_for())


def test_body_with_trailing_newline_is_rejected() -> None:
    rejects(Webhook(KEY_A), BODY + b"\n", headers_for())


@pytest.mark.parametrize(
    "body",
    [b'{"name":"\xff"}', b'{"name":"\xc3"}', b'{"x":"\xed\xa0\x80"}', b"\xef\xbb\xbf{}"],
    ids=["invalid-byte", "truncated", "surrogate", "utf8-bom"],
)
def test_signed_body_that_is_not_utf8_json_is_rejected(body: bytes) -> None:
    rejects(Webhook(KEY_A), body, headers_for(body))


@pytest.mark.parametrize(
    "body", [b"[1]", b'"x"', b"1", b"", b'{"x": NaN}', b'{"x": Infinity}', b'{"a":1,"a":2}']
)
def test_signed_body_that_is_not_a_plain_json_object_is_rejected(body: bytes) -> None:
    rejects(Webhook(KEY_A), body, headers_for(body))


def test_deeply_nested_body_is_rejected_with_the_one_error() -> None:
    body = b"[" * 100_000 + b"]" * 100_000
    rejects(Webhook(KEY_A), body, headers_for(body))


def test_str_body_is_rejected() -> None:
    rejects(Webhook(KEY_A), BODY.decode(), headers_for())  # type: ignore[arg-type]


# --- timestamps ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "",
        " ",
        "+1700000000",
        " 1700000000",
        "1700000000 ",
        "01700000000",
        "1700000000.0",
        "1.7e9",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "-1700000000",
        "0x6553f100",
        "1_700_000_000",
        "\u0661\u0667" + "\u0660" * 8,  # Arabic-Indic digits
        "\uff11\uff17" + "\uff10" * 8,  # fullwidth digits
        "1" * 5000,
    ],
)
def test_timestamp_that_is_not_plain_integer_seconds_is_rejected(raw: str) -> None:
    rejects(Webhook(KEY_A), BODY, with_header("webhook-timestamp", raw))


def test_millisecond_timestamp_is_rejected_even_when_signed() -> None:
    rejects(Webhook(KEY_A), BODY, headers_for(ts=NOW_TS * 1000))
    rejects(Webhook(KEY_A), BODY, headers_for(ts=NOW_TS * 1000 // 100))  # 11 digits


@pytest.mark.parametrize("offset", [-300, 0, 300])
def test_timestamp_within_five_minutes_either_side_is_accepted(offset: int) -> None:
    assert Webhook(KEY_A).verify(BODY, headers_for(ts=NOW_TS + offset), now=NOW)


def test_future_timestamp_beyond_tolerance_is_rejected() -> None:
    assert "too new" in rejects(Webhook(KEY_A), BODY, headers_for(ts=NOW_TS + 301))


def test_stale_timestamp_is_rejected() -> None:
    assert "too old" in rejects(Webhook(KEY_A), BODY, headers_for(ts=NOW_TS - 301))


def test_custom_tolerance_is_honoured() -> None:
    webhook = Webhook(KEY_A, tolerance=timedelta(seconds=10))
    rejects(webhook, BODY, headers_for(ts=NOW_TS - 11))
    assert webhook.verify(BODY, headers_for(ts=NOW_TS - 10), now=NOW)


def test_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Webhook(KEY_A).verify(BODY, headers_for(), now=datetime(2023, 11, 14))


# --- signature header ----------------------------------------------------------------------


def good_token() -> str:
    return sign(KEY_A, "evt_1", NOW_TS, BODY)


def other_token() -> str:
    return sign(KEY_B, "evt_1", NOW_TS, BODY)


@pytest.mark.parametrize("position", [0, 1, 2])
def test_matching_signature_is_found_in_any_position(position: int) -> None:
    tokens = [other_token(), "v2,abcd", sign(KEY_B, "x", 1, b"")]
    tokens.insert(position, good_token())
    headers = with_header("webhook-signature", " ".join(tokens))
    assert Webhook(KEY_A).verify(BODY, headers, now=NOW)


def test_token_without_comma_is_skipped() -> None:
    headers = with_header("webhook-signature", f"garbage {good_token()}")
    assert Webhook(KEY_A).verify(BODY, headers, now=NOW)
    rejects(Webhook(KEY_A), BODY, with_header("webhook-signature", "garbage"))


def test_header_with_only_other_versions_is_rejected() -> None:
    v2_only = good_token().replace("v1,", "v2,")
    assert "no matching" in rejects(Webhook(KEY_A), BODY, with_header("webhook-signature", v2_only))


@pytest.mark.parametrize(
    "value",
    [
        "",
        " ",
        "v1,",
        "v1,!!!!",
        "v1,AAAA",
        "v1," + base64.b64encode(b"\x00" * 32).decode(),
        "V1," + "x",
    ],
)
def test_empty_or_malformed_signature_header_is_rejected(value: str) -> None:
    rejects(Webhook(KEY_A), BODY, with_header("webhook-signature", value))


def test_truncated_signature_is_rejected() -> None:
    token = good_token()
    rejects(Webhook(KEY_A), BODY, with_header("webhook-signature", token[:-4]))


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_missing_header_is_rejected(missing: str) -> None:
    headers = headers_for()
    del headers[missing]
    assert "missing" in rejects(Webhook(KEY_A), BODY, headers)


def test_no_headers_at_all_is_rejected() -> None:
    rejects(Webhook(KEY_A), BODY, {})


def test_conflicting_duplicate_headers_are_rejected() -> None:
    headers = headers_for()
    headers["Webhook-Id"] = "evt_2"
    assert "conflicting" in rejects(Webhook(KEY_A), BODY, headers)


@pytest.mark.parametrize("msg_id", ["", "evt 1", "évt", "x" * 257, "evt\n1"])
def test_malformed_message_id_is_rejected(msg_id: str) -> None:
    headers = headers_for(msg_id=msg_id) if msg_id else with_header("webhook-id", "")
    rejects(Webhook(KEY_A), BODY, headers)


def test_non_string_header_value_is_rejected_with_the_one_error() -> None:
    headers: dict[str, object] = dict(headers_for())
    headers["webhook-timestamp"] = NOW_TS
    rejects(Webhook(KEY_A), BODY, headers)  # type: ignore[arg-type]


def test_wrong_secret_is_rejected() -> None:
    rejects(Webhook(KEY_B), BODY, headers_for())


# --- rotation ------------------------------------------------------------------------------


def test_receiver_knowing_only_the_new_secret_accepts_a_rotation_delivery() -> None:
    headers = headers_for(keys=[KEY_A, KEY_B])
    assert Webhook(KEY_B).verify(BODY, headers, now=NOW)


def test_receiver_knowing_only_the_old_secret_accepts_a_rotation_delivery() -> None:
    headers = headers_for(keys=[KEY_A, KEY_B])
    assert Webhook(KEY_A).verify(BODY, headers, now=NOW)


def test_receiver_with_two_secrets_accepts_either_sender_secret() -> None:
    webhook = Webhook([SECRET_A, KEY_B])
    assert webhook.verify(BODY, headers_for(msg_id="e1", keys=[KEY_A]), now=NOW)
    assert webhook.verify(BODY, headers_for(msg_id="e2", keys=[KEY_B]), now=NOW)
    rejects(webhook, BODY, headers_for(keys=[bytes(32)]))


@pytest.mark.parametrize(
    "secret", ["whsec_", "whsec_!!!!", "whsec_c2hvcnQ=", b"short", [], "whsec_ÄÖÜ", [42]]
)
def test_malformed_receiver_secret_is_a_configuration_error(secret: object) -> None:
    with pytest.raises(ValueError):
        Webhook(secret)  # type: ignore[arg-type]


def test_receiver_secret_of_the_wrong_type_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        Webhook(42)  # type: ignore[arg-type]


def test_receiver_secret_without_prefix_or_padding_is_accepted() -> None:
    unpadded = SECRET_A.removeprefix("whsec_").rstrip("=")
    assert Webhook(unpadded).verify(BODY, headers_for(), now=NOW)


# --- replay --------------------------------------------------------------------------------


def test_replayed_delivery_is_rejected() -> None:
    webhook = Webhook(KEY_A)
    webhook.verify(BODY, headers_for(), now=NOW)
    later = NOW + timedelta(seconds=30)
    assert "replay" in rejects(webhook, BODY, headers_for(), now=later)


def test_failed_verification_does_not_burn_the_message_id() -> None:
    webhook = Webhook(KEY_A)
    rejects(webhook, BODY + b" ", headers_for())
    assert webhook.verify(BODY, headers_for(), now=NOW)


def test_sender_retry_with_the_same_id_and_a_fresh_timestamp_is_accepted() -> None:
    webhook = Webhook(KEY_A)
    webhook.verify(BODY, headers_for(ts=NOW_TS), now=NOW)
    retry_at = NOW + timedelta(seconds=60)
    assert webhook.verify(BODY, headers_for(ts=NOW_TS + 60), now=retry_at)


def test_replay_after_the_window_is_rejected_as_stale_not_accepted() -> None:
    webhook = Webhook(KEY_A)
    webhook.verify(BODY, headers_for(), now=NOW)
    assert "too old" in rejects(webhook, BODY, headers_for(), now=NOW + timedelta(minutes=6))


def test_seen_id_store_forgets_entries_after_they_expire() -> None:
    store = InMemorySeenIdStore()
    expires = NOW + timedelta(minutes=5)
    assert store.check_and_add("evt_1.1", expires_at=expires, now=NOW)
    assert not store.check_and_add("evt_1.1", expires_at=expires, now=NOW + timedelta(minutes=4))
    assert store.check_and_add("evt_2.1", expires_at=expires, now=NOW)
    assert len(store) == 2
    after = NOW + timedelta(minutes=5)
    assert store.check_and_add("evt_1.1", expires_at=after + timedelta(minutes=5), now=after)
    assert len(store) == 1


def test_shared_seen_id_store_catches_replays_across_verifiers() -> None:
    store = InMemorySeenIdStore()
    Webhook(KEY_A, seen_ids=store).verify(BODY, headers_for(), now=NOW)
    rejects(Webhook(KEY_A, seen_ids=store), BODY, headers_for())
