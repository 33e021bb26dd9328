from __future__ import annotations

import contextlib
import hashlib
import itertools
import zlib
from collections import Counter
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.crypto.apikeys import (
    BASE62_ALPHABET,
    MAX_TOKEN_LENGTH,
    MalformedApiKeyError,
    generate_api_key,
    hash_api_key,
    hashes_match,
    parse_api_key,
)

BASE62 = set(BASE62_ALPHABET)


def counting_random() -> Callable[[int], bytes]:
    """Deterministic 'random' source cycling through every byte value."""
    counter = itertools.cycle(range(256))

    def random(n: int) -> bytes:
        return bytes(next(counter) for _ in range(n))

    return random


def _b62(value: int, width: int) -> str:
    out = ""
    for _ in range(width):
        value, rem = divmod(value, 62)
        out = BASE62_ALPHABET[rem] + out
    return out


def test_generated_key_has_documented_layout() -> None:
    key = generate_api_key("live")
    assert key.token.startswith("lk_live_")
    body = key.token[len("lk_live_") :]
    assert len(body) == 12 + 40 + 6
    assert set(body) <= BASE62
    assert body[:12] == key.key_id


def test_checksum_is_crc32_of_everything_before_it_in_base62() -> None:
    token = generate_api_key("test").token
    head, checksum = token[:-6], token[-6:]
    assert checksum == _b62(zlib.crc32(head.encode()), 6)


def test_generated_key_round_trips_through_parse() -> None:
    key = generate_api_key("test")
    parsed = parse_api_key(key.token)
    assert (parsed.env, parsed.key_id, parsed.token) == ("test", key.key_id, key.token)


def test_secret_hash_is_sha256_hex_of_the_token() -> None:
    key = generate_api_key("live")
    assert key.secret_hash == hashlib.sha256(key.token.encode()).hexdigest()
    assert key.secret_hash == hash_api_key(key.token)


def test_generation_is_deterministic_given_the_random_source() -> None:
    assert generate_api_key("live", random=counting_random()) == generate_api_key(
        "live", random=counting_random()
    )


def test_bytes_that_would_bias_modulo_62_are_rejected() -> None:
    # Only bytes 248..255 (which would favour '0'..'7') and then byte 0 are offered.
    def random(n: int) -> bytes:
        return bytes([248 + i % 8 if i < n - 1 else 0 for i in range(n)])

    key = generate_api_key("live", random=random)
    assert key.key_id == "0" * 12


def test_base62_characters_are_roughly_uniform() -> None:
    random = counting_random()
    counts: Counter[str] = Counter()
    for _ in range(200):
        counts.update(generate_api_key("live", random=random).key_id)
    # A cycling source over 0..247 (after rejection) hits each residue exactly 4 times per cycle.
    assert max(counts.values()) - min(counts.values()) <= 4 * 2


def test_short_random_source_is_refused() -> None:
    with pytest.raises(ValueError, match="wrong number of bytes"):
        generate_api_key("live", random=lambda n: b"\x00")


@pytest.mark.parametrize("env", ["", "l", "LIVE", "live1", "toolongenv", "li_ve", "lïve"])
def test_invalid_env_is_rejected_at_generation(env: str) -> None:
    with pytest.raises(ValueError, match="env"):
        generate_api_key(env)


def test_a_single_character_typo_fails_the_checksum() -> None:
    token = generate_api_key("live").token
    i = len("lk_live_") + 20
    typo = token[:i] + ("a" if token[i] != "a" else "b") + token[i + 1 :]
    with pytest.raises(MalformedApiKeyError) as exc:
        parse_api_key(typo)
    assert exc.value.reason == "bad checksum"


@given(st.data())
def test_any_substitution_in_the_body_is_detected(data: st.DataObject) -> None:
    token = generate_api_key("live", random=counting_random()).token
    i = data.draw(st.integers(len("lk_live_"), len(token) - 1))
    c = data.draw(st.sampled_from(sorted(BASE62 - {token[i]})))
    with pytest.raises(MalformedApiKeyError):
        parse_api_key(token[:i] + c + token[i + 1 :])


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda t: "xk" + t[2:], "wrong prefix"),
        (lambda t: t.upper(), "wrong prefix"),
        (lambda t: t[:-1], "wrong length or alphabet"),
        (lambda t: t + "0", "wrong length or alphabet"),
        (lambda t: t + "\n", "wrong length or alphabet"),
        (lambda t: " " + t, "wrong prefix"),
        (lambda t: t[:20] + "-" + t[21:], "wrong length or alphabet"),
        (lambda t: t[:20] + "é" + t[21:], "wrong length or alphabet"),
        (lambda t: t[:20] + "٣" + t[21:], "wrong length or alphabet"),  # Arabic-Indic digit
        (lambda t: t.replace("lk_live_", "lk_LIVE_"), "wrong length or alphabet"),
        (lambda t: t.replace("lk_live_", "lk_live"), "wrong length or alphabet"),
        (lambda t: t + "0" * MAX_TOKEN_LENGTH, "too long"),
    ],
)
def test_malformed_tokens_are_rejected_with_a_reason(
    mangle: Callable[[str], str], reason: str
) -> None:
    token = generate_api_key("live").token
    with pytest.raises(MalformedApiKeyError) as exc:
        parse_api_key(mangle(token))
    assert exc.value.reason == reason


def test_error_message_never_contains_the_token() -> None:
    token = generate_api_key("live").token[:-1] + "!"
    with pytest.raises(MalformedApiKeyError) as exc:
        parse_api_key(token)
    assert token not in str(exc.value)
    assert token not in repr(exc.value)


def test_malformed_error_is_a_value_error() -> None:
    assert issubclass(MalformedApiKeyError, ValueError)


@given(st.text(max_size=200))
def test_parse_never_raises_anything_but_malformed(text: str) -> None:
    with contextlib.suppress(MalformedApiKeyError):
        parse_api_key(text)


def test_other_lowercase_envs_of_valid_length_parse() -> None:
    assert parse_api_key(generate_api_key("staging").token).env == "staging"


def test_repr_of_keys_hides_token_and_hash() -> None:
    key = generate_api_key("live")
    assert key.token not in repr(key)
    assert key.secret_hash not in repr(key)
    parsed = parse_api_key(key.token)
    assert key.token not in repr(parsed)


def test_hashes_match_compares_exactly() -> None:
    h = hash_api_key("lk_live_x")
    assert hashes_match(h, h)
    assert not hashes_match(h, hash_api_key("lk_live_y"))
    assert not hashes_match(h, h[:-1])
    assert not hashes_match(h, "é" * 64)
