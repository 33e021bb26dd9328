from __future__ import annotations

import base64
import itertools
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st

from ledger.crypto import aead
from ledger.crypto.aead import (
    MAX_ENCRYPTIONS,
    DataKey,
    DataKeyExhaustedError,
    DecryptionError,
    KeyEncryptionKey,
    KeyFileError,
    kek_from_env,
    load_or_create_kek_file,
    open_,
    parse_blob,
    seal,
    unwrap_key,
    wrap_key,
)

VECTORS = Path(__file__).parent.parent / "vectors" / "aes_256_gcm.json"
KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
KEY_ID = b"\x01\x02\x03\x04\x05\x06\x07\x08"
NONCE = bytes(12)
AAD = b"org=o1|stream=s1|v=3|event=e1"
PLAINTEXT = b"licensee: Ada Lovelace <ada@example.com>"


def seal_default(plaintext: bytes = PLAINTEXT, aad: bytes = AAD) -> bytes:
    return seal(KEY, plaintext, aad, nonce=NONCE, key_id=KEY_ID)


def counting_random() -> Any:
    counter = itertools.count()

    def random(n: int) -> bytes:
        return bytes(next(counter) % 256 for _ in range(n))

    return random


# --- known answers ---------------------------------------------------------------------------


def _vectors() -> list[dict[str, str]]:
    data: list[dict[str, str]] = json.loads(VECTORS.read_text())["valid"]
    return data


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: v["name"].split(":")[0])
def test_aes_256_gcm_primitive_matches_the_gcm_spec_vectors(vector: dict[str, str]) -> None:
    key, iv, aad_, pt = (bytes.fromhex(vector[k]) for k in ("key", "iv", "aad", "plaintext"))
    expected = bytes.fromhex(vector["ciphertext"] + vector["tag"])
    assert AESGCM(key).encrypt(iv, pt, aad_ or None) == expected
    assert AESGCM(key).decrypt(iv, expected, aad_ or None) == pt


def test_blob_is_version_key_id_nonce_then_gcm_over_header_and_aad() -> None:
    blob = seal_default()
    header = b"\x01" + KEY_ID
    assert blob == header + NONCE + AESGCM(KEY).encrypt(NONCE, PLAINTEXT, header + AAD)
    assert len(blob) == 1 + 8 + 12 + len(PLAINTEXT) + 16


# --- seal / open -----------------------------------------------------------------------------


@given(st.binary(max_size=512), st.binary(max_size=64))
def test_round_trip(plaintext: bytes, aad_: bytes) -> None:
    assert open_(KEY, seal(KEY, plaintext, aad_, nonce=NONCE, key_id=KEY_ID), aad_) == plaintext


def test_parse_blob_exposes_the_header_fields() -> None:
    parsed = parse_blob(seal_default())
    assert (parsed.version, parsed.key_id, parsed.nonce) == (1, KEY_ID, NONCE)
    assert len(parsed.ciphertext) == len(PLAINTEXT) + 16


@given(st.binary(max_size=64).filter(lambda a: a != AAD))
def test_any_other_aad_fails(other: bytes) -> None:
    with pytest.raises(DecryptionError):
        open_(KEY, seal_default(), other)


def test_blobs_swapped_between_two_places_fail() -> None:
    aad_a, aad_b = b"org=o1|event=e1", b"org=o1|event=e2"
    blob_a = seal(KEY, b"alice", aad_a, nonce=bytes(12), key_id=KEY_ID)
    blob_b = seal(KEY, b"bob", aad_b, nonce=b"\x01" * 12, key_id=KEY_ID)
    with pytest.raises(DecryptionError):
        open_(KEY, blob_a, aad_b)
    with pytest.raises(DecryptionError):
        open_(KEY, blob_b, aad_a)


@given(st.data())
def test_any_flipped_bit_fails(data: st.DataObject) -> None:
    blob = bytearray(seal_default())
    i = data.draw(st.integers(0, len(blob) - 1))
    blob[i] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises(DecryptionError):
        open_(KEY, bytes(blob), AAD)


@given(st.integers(0, 1 + 8 + 12 + len(PLAINTEXT) + 15))
def test_truncated_blobs_fail(length: int) -> None:
    with pytest.raises(DecryptionError):
        open_(KEY, seal_default()[:length], AAD)


@given(st.binary(min_size=1, max_size=32))
def test_extended_blobs_fail(suffix: bytes) -> None:
    with pytest.raises(DecryptionError):
        open_(KEY, seal_default() + suffix, AAD)


def test_unknown_version_fails() -> None:
    blob = seal_default()
    with pytest.raises(DecryptionError):
        open_(KEY, b"\x02" + blob[1:], AAD)


def test_wrong_key_fails() -> None:
    with pytest.raises(DecryptionError):
        open_(OTHER_KEY, seal_default(), AAD)


def test_decryption_error_says_nothing_and_chains_nothing() -> None:
    with pytest.raises(DecryptionError) as exc:
        open_(OTHER_KEY, seal_default(), AAD)
    assert str(exc.value) == "decryption failed"
    assert exc.value.__cause__ is None
    assert exc.value.__suppress_context__


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"key": bytes(16)}, "key"),
        ({"nonce": bytes(8)}, "nonce"),
        ({"key_id": bytes(4)}, "key_id"),
    ],
)
def test_seal_rejects_wrong_sizes(kwargs: dict[str, bytes], name: str) -> None:
    args: dict[str, bytes] = {"key": KEY, "nonce": NONCE, "key_id": KEY_ID} | kwargs
    with pytest.raises(ValueError, match=f"^{name} must be"):
        seal(args["key"], PLAINTEXT, AAD, nonce=args["nonce"], key_id=args["key_id"])


# --- data keys -------------------------------------------------------------------------------


def test_data_key_seals_with_a_fresh_random_nonce_and_its_id() -> None:
    data_key = DataKey.generate()
    first, second = data_key.seal(PLAINTEXT, AAD), data_key.seal(PLAINTEXT, AAD)
    assert parse_blob(first).key_id == data_key.key_id
    assert parse_blob(first).nonce != parse_blob(second).nonce
    assert data_key.open(first, AAD) == PLAINTEXT
    assert data_key.encryptions == 2


def test_data_key_refuses_blobs_naming_another_key() -> None:
    data_key = DataKey(KEY_ID, KEY)
    blob = seal(KEY, PLAINTEXT, AAD, nonce=NONCE, key_id=b"\xff" * 8)
    with pytest.raises(DecryptionError):
        data_key.open(blob, AAD)


def test_data_key_is_exhausted_after_max_encryptions() -> None:
    data_key = DataKey(KEY_ID, KEY, encryptions=MAX_ENCRYPTIONS - 1)
    data_key.seal(PLAINTEXT, AAD)
    assert data_key.encryptions == MAX_ENCRYPTIONS
    with pytest.raises(DataKeyExhaustedError):
        data_key.seal(PLAINTEXT, AAD)
    assert data_key.encryptions == MAX_ENCRYPTIONS


def test_exhausted_data_key_still_opens_what_it_sealed() -> None:
    data_key = DataKey(KEY_ID, KEY, encryptions=MAX_ENCRYPTIONS - 1)
    blob = data_key.seal(PLAINTEXT, AAD)
    assert data_key.open(blob, AAD) == PLAINTEXT


def test_max_encryptions_is_two_to_the_thirty() -> None:
    assert MAX_ENCRYPTIONS == 2**30


def test_data_key_repr_hides_the_key() -> None:
    data_key = DataKey(KEY_ID, KEY)
    for text in (repr(data_key), str(data_key)):
        assert KEY.hex() not in text
        assert repr(KEY) not in text
        assert "redacted" in text
        assert KEY_ID.hex() in text


# --- key wrapping ----------------------------------------------------------------------------


def test_wrapped_key_round_trips() -> None:
    wrapped = wrap_key(OTHER_KEY, KEY, "kek-1")
    assert len(wrapped) == 1 + 12 + 32 + 16
    assert unwrap_key(OTHER_KEY, wrapped, "kek-1") == KEY


def test_wrapped_key_is_bound_to_the_kek_id() -> None:
    wrapped = wrap_key(OTHER_KEY, KEY, "kek-1")
    with pytest.raises(DecryptionError):
        unwrap_key(OTHER_KEY, wrapped, "kek-2")


def test_wrapped_key_is_bound_to_the_wrapping_purpose() -> None:
    # A blob sealed under the KEK for data cannot masquerade as a wrapped key, and vice versa.
    nonce = bytes(12)
    plain_gcm = b"\x01" + nonce + AESGCM(OTHER_KEY).encrypt(nonce, KEY, b"kek-1")
    with pytest.raises(DecryptionError):
        unwrap_key(OTHER_KEY, plain_gcm, "kek-1")


def test_unwrap_with_the_wrong_kek_fails() -> None:
    with pytest.raises(DecryptionError):
        unwrap_key(KEY, wrap_key(OTHER_KEY, KEY, "kek-1"), "kek-1")


@pytest.mark.parametrize(
    "mangle", [lambda w: w[:-1], lambda w: w + b"\x00", lambda w: b"\x02" + w[1:]]
)
def test_malformed_wrapped_keys_fail(mangle: Any) -> None:
    with pytest.raises(DecryptionError):
        unwrap_key(OTHER_KEY, mangle(wrap_key(OTHER_KEY, KEY, "kek-1")), "kek-1")


def test_kek_wraps_and_unwraps_data_keys() -> None:
    kek = KeyEncryptionKey("kek-1", OTHER_KEY)
    data_key = DataKey.generate()
    restored = kek.unwrap(kek.wrap(data_key), data_key.key_id, encryptions=7)
    assert restored.key == data_key.key
    assert restored.encryptions == 7
    assert restored.open(data_key.seal(PLAINTEXT, AAD), AAD) == PLAINTEXT


def test_kek_repr_hides_the_key() -> None:
    kek = KeyEncryptionKey("kek-1", KEY)
    for text in (repr(kek), str(kek)):
        assert text == "KeyEncryptionKey(kek_id='kek-1', key=<redacted>)"


@pytest.mark.parametrize("kek_id", ["", "a:b", "x" * 65, "kék", "a b"])
def test_kek_id_must_be_a_simple_token(kek_id: str) -> None:
    with pytest.raises(ValueError, match="kek_id"):
        KeyEncryptionKey(kek_id, KEY)


# --- loading KEKs ----------------------------------------------------------------------------


def test_kek_file_is_created_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    kek = load_or_create_kek_file(path, random=counting_random())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == kek.to_line() + "\n"
    assert path.read_text().startswith(f"llkek1:{kek.kek_id}:")
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_kek_file_is_created_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        load_or_create_kek_file(tmp_path / "kek")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "kek").stat().st_mode) == 0o600


def test_existing_kek_file_is_loaded_not_replaced(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    first = load_or_create_kek_file(path)
    second = load_or_create_kek_file(path)
    assert (second.kek_id, second.key) == (first.kek_id, first.key)


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o610])
def test_group_or_world_accessible_kek_file_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "kek"
    load_or_create_kek_file(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match="group or others") as exc:
        load_or_create_kek_file(path)
    assert "chmod 600" in str(exc.value)


def test_owner_read_only_kek_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "kek"
    created = load_or_create_kek_file(path)
    path.chmod(0o400)
    assert load_or_create_kek_file(path).key == created.key


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage\n",
        b"llkek1:id:not-base64!\n",
        b"llkek1:id:" + base64.b64encode(bytes(31)) + b"\n",
        b"llkek2:id:" + base64.b64encode(bytes(32)) + b"\n",
        b"llkek1:bad:id:" + base64.b64encode(bytes(32)) + b"\n",
        b"\xff\xfe",
        b"x" * 5000,
    ],
)
def test_malformed_kek_file_is_refused_without_echoing_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "kek"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.raises(KeyFileError) as exc:
        load_or_create_kek_file(path)
    assert base64.b64encode(bytes(32)).decode() not in str(exc.value)


def test_directory_is_not_a_kek_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="not a regular file"):
        load_or_create_kek_file(tmp_path)


def test_kek_file_in_a_missing_directory_is_a_key_file_error(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot create"):
        load_or_create_kek_file(tmp_path / "missing" / "kek")


def test_kek_from_env_accepts_the_line_format() -> None:
    kek = KeyEncryptionKey("prod-2024", KEY)
    loaded = kek_from_env(kek.to_line() + "\n")
    assert (loaded.kek_id, loaded.key) == ("prod-2024", KEY)


def test_kek_from_env_accepts_bare_base64_with_a_stable_derived_id() -> None:
    value = base64.b64encode(KEY).decode()
    first, second = kek_from_env(value), kek_from_env(f" {value} ")
    assert first.key == KEY
    assert first.kek_id == second.kek_id
    assert first.kek_id.startswith("env-")
    assert kek_from_env(base64.b64encode(OTHER_KEY).decode()).kek_id != first.kek_id


@pytest.mark.parametrize(
    "value",
    ["", "short", base64.b64encode(bytes(16)).decode(), "llkek1:x", "é" * 44, "llkek1::AAAA"],
)
def test_kek_from_env_rejects_anything_else(value: str) -> None:
    with pytest.raises(KeyFileError):
        kek_from_env(value)


def test_module_exports_are_all_defined() -> None:
    for name in aead.__all__:
        assert hasattr(aead, name)
