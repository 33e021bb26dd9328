from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consumers.webhooks.signing import build_headers
from consumers.webhooks.verify import Webhook, WebhookVerificationError
from tests.unit.webhook_fixtures import BODY, KEY_A, NOW, NOW_TS

FIELDS = ["body", "webhook-id", "webhook-timestamp", "webhook-signature"]


def mutate(value: bytes, index: int, new_byte: int) -> bytes:
    position = index % len(value)
    replacement = new_byte if new_byte != value[position] else (new_byte + 1) % 256
    return value[:position] + bytes([replacement]) + value[position + 1 :]


@given(field=st.sampled_from(FIELDS), index=st.integers(0, 10_000), new_byte=st.integers(0, 255))
def test_any_single_byte_change_is_rejected(field: str, index: int, new_byte: int) -> None:
    body = BODY
    headers = build_headers([KEY_A], "evt_01HX", NOW_TS, BODY)
    if field == "body":
        body = mutate(body, index, new_byte)
    else:
        raw = headers[field].encode()
        headers[field] = mutate(raw, index, new_byte).decode("latin-1")
    try:
        Webhook(KEY_A).verify(body, headers, now=NOW)
    except WebhookVerificationError:
        return
    raise AssertionError(f"mutated {field} was accepted")
