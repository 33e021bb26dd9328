from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
import standardwebhooks

from consumers.webhooks.signing import (
    build_headers,
    generate_secret,
    new_secret,
    parse_secret,
    sign,
    signature_header,
)
from tests.unit.webhook_fixtures import BODY, KEY_A, KEY_B, SECRET_A, load_vectors


def test_generated_secret_is_prefixed_base64_of_the_given_bytes() -> None:
    assert generate_secret(KEY_A) == SECRET_A
    assert parse_secret(SECRET_A) == KEY_A


def test_new_secrets_parse_back_to_32_bytes_and_differ() -> None:
    first, second = new_secret(), new_secret()
    assert len(parse_secret(first)) == 32
    assert first != second


@pytest.mark.parametrize("length", [0, 16, 31, 33])
def test_generate_secret_refuses_anything_but_32_bytes(length: int) -> None:
    with pytest.raises(ValueError):
        generate_secret(b"\x00" * length)


@pytest.mark.parametrize(
    "secret",
    [
        "",
        "whsec_",
        base64.b64encode(KEY_A).decode(),  # no prefix
        "WHSEC_" + base64.b64encode(KEY_A).decode(),
        "whsec_" + base64.b64encode(KEY_A[:31]).decode(),
        "whsec_" + base64.b64encode(KEY_A + b"\x00").decode(),
        "whsec_" + base64.b64encode(KEY_A).decode().rstrip("="),  # unpadded
        "whsec_" + base64.urlsafe_b64encode(b"\xff" * 32).decode(),  # url-safe alphabet
        "whsec_" + base64.b64encode(KEY_A).decode() + "\n",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # 24 bytes
        "whsec_ÄÖÜ",
    ],
)
def test_parse_secret_refuses_malformed_secrets(secret: str) -> None:
    with pytest.raises(ValueError):
        parse_secret(secret)


def test_sign_reproduces_the_standard_webhooks_vector() -> None:
    for case in load_vectors()["valid"]:
        key = base64.b64decode(case["secret"].removeprefix("whsec_"))
        got = sign(key, case["msg_id"], case["timestamp"], case["body"].encode())
        assert got == case["signature"]


def test_sign_agrees_with_the_standardwebhooks_package() -> None:
    reference = standardwebhooks.Webhook(SECRET_A)
    at = datetime.fromtimestamp(1_700_000_123, UTC)
    body = '{"name":"Zoë 🎉"}'
    expected = reference.sign("msg_1", at, body)
    assert sign(KEY_A, "msg_1", 1_700_000_123, body.encode()) == expected


@pytest.mark.parametrize("timestamp", [-1, True, 1.5])
def test_sign_refuses_timestamps_that_are_not_whole_seconds(timestamp: object) -> None:
    with pytest.raises(ValueError):
        sign(KEY_A, "msg_1", timestamp, BODY)  # type: ignore[arg-type]


def test_signature_header_has_one_token_per_secret_in_order() -> None:
    header = signature_header([KEY_A, KEY_B], "msg_1", 1, BODY)
    assert header.split(" ") == [sign(KEY_A, "msg_1", 1, BODY), sign(KEY_B, "msg_1", 1, BODY)]


def test_signature_header_refuses_no_secrets_or_a_bare_key() -> None:
    with pytest.raises(ValueError):
        signature_header([], "msg_1", 1, BODY)
    with pytest.raises(ValueError):
        signature_header(KEY_A, "msg_1", 1, BODY)  # type: ignore[arg-type]


def test_build_headers_carries_id_timestamp_and_the_signature_twice() -> None:
    headers = build_headers([KEY_A, KEY_B], "evt_1", 1_700_000_000, BODY)
    assert headers == {
        "webhook-id": "evt_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": signature_header([KEY_A, KEY_B], "evt_1", 1_700_000_000, BODY),
        "X-Signature": headers["webhook-signature"],
        "content-type": "application/json",
    }
