"""C2SP signed notes and tlog checkpoints: known answers, round trips, fail-closed opening."""

from __future__ import annotations

import base64

import pytest
from nacl.signing import SigningKey

from ledger.audit.merkle import leaf_hash, root
from ledger.audit.note import (
    MAX_SIGNATURES,
    Checkpoint,
    NoteKeyError,
    NoteVerificationError,
    key_id,
    make_checkpoint,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    parse_signer_key,
    parse_verifier_key,
    sign_note,
    signature_line,
    signer_key,
    verifier_key,
)

# Known answer from golang.org/x/mod/sumdb/note (its package documentation and ExampleSign).
# Ed25519 is deterministic, so signing the text again must reproduce the note byte for byte.
GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2p"
    "ZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

# Example from the C2SP signed-note specification (https://c2sp.org/signed-note).
SPEC_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfX"
    "ppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

ORIGIN = "ledger.example/org/acme"
LOG_KEY = SigningKey(bytes(range(32)))
WITNESS_KEY = SigningKey(bytes(range(32, 64)))
LOG_VKEY = verifier_key(ORIGIN, LOG_KEY.verify_key)
WITNESS_VKEY = verifier_key("witness.example", WITNESS_KEY.verify_key)
ROOT = root([leaf_hash(b"event-1"), leaf_hash(b"event-2")])
BODY = make_checkpoint(ORIGIN, 2, ROOT)


def _signed() -> str:
    return sign_note(BODY, ORIGIN, LOG_KEY)


# --- known answers -----------------------------------------------------------------------


def test_go_reference_signer_key_reproduces_reference_note_byte_for_byte() -> None:
    name, key = parse_signer_key(GO_SKEY)
    assert name == "PeterNeumann"
    assert sign_note(GO_TEXT, name, key) == GO_NOTE
    assert signer_key(name, key) == GO_SKEY
    assert verifier_key(name, key.verify_key) == GO_VKEY


def test_go_reference_verifier_key_opens_reference_note() -> None:
    name, kid, _ = parse_verifier_key(GO_VKEY)
    assert (name, kid) == ("PeterNeumann", 0xC74F20A3)
    assert open_note(GO_NOTE, [GO_VKEY]) == GO_TEXT


def test_c2sp_spec_example_note_opens() -> None:
    assert open_note(SPEC_NOTE, [SPEC_VKEY]) == "This is an example message.\n"


# --- keys --------------------------------------------------------------------------------


def test_key_id_is_sha256_of_name_newline_alg_and_public_key() -> None:
    _, kid, key = parse_verifier_key(GO_VKEY)
    assert key_id("PeterNeumann", key) == kid
    assert key_id("Peter", key) != kid


@pytest.mark.parametrize(
    "encoded",
    [
        "",
        "PeterNeumann",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+0xc74f20+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+Ahpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW=",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ],
)
def test_malformed_verifier_key_is_rejected(encoded: str) -> None:
    with pytest.raises(NoteKeyError):
        parse_verifier_key(encoded)


@pytest.mark.parametrize(
    "encoded",
    [
        GO_SKEY.replace("PRIVATE+KEY", "PUBLIC+KEY"),
        GO_SKEY.replace("c74f20a3", "c74f20a4"),
        GO_VKEY,
        "PRIVATE+KEY+PeterNeumann+c74f20a3",
    ],
)
def test_malformed_signer_key_is_rejected(encoded: str) -> None:
    with pytest.raises(NoteKeyError):
        parse_signer_key(encoded)


@pytest.mark.parametrize("name", ["", "a b", "a+b", "tab\there", "new\nline"])
def test_invalid_key_name_cannot_be_encoded_or_sign(name: str) -> None:
    with pytest.raises(NoteKeyError):
        verifier_key(name, LOG_KEY.verify_key)
    with pytest.raises(NoteKeyError):
        sign_note(BODY, name, LOG_KEY)


def test_conflicting_verifier_keys_with_same_name_and_id_are_refused() -> None:
    other = GO_VKEY[:-4] + "AAAA"
    with pytest.raises(NoteKeyError):
        open_note(GO_NOTE, [GO_VKEY, other])


# --- round trips -------------------------------------------------------------------------


def test_signed_checkpoint_round_trips() -> None:
    note = _signed()
    assert open_note(note, [LOG_VKEY]) == BODY
    assert parse_checkpoint(BODY) == Checkpoint(ORIGIN, 2, ROOT, ())
    assert open_checkpoint(note, [LOG_VKEY], origin=ORIGIN) == Checkpoint(ORIGIN, 2, ROOT)


def test_checkpoint_body_has_origin_size_and_base64_root_lines() -> None:
    root_line = base64.b64encode(ROOT).decode()
    assert make_checkpoint(ORIGIN, 2, ROOT) == f"{ORIGIN}\n2\n{root_line}\n"


def test_checkpoint_extension_lines_round_trip() -> None:
    body = make_checkpoint(ORIGIN, 0, root([]), ["timestamp 1700000000"])
    assert parse_checkpoint(body).extra == ("timestamp 1700000000",)


def test_cosigned_note_opens_with_either_key() -> None:
    note = _signed() + signature_line(BODY, "witness.example", WITNESS_KEY)
    assert open_note(note, [LOG_VKEY]) == BODY
    assert open_note(note, [WITNESS_VKEY]) == BODY
    assert open_note(note, [WITNESS_VKEY, LOG_VKEY]) == BODY


def test_signatures_by_unknown_keys_are_ignored() -> None:
    stranger = SigningKey(bytes(32))
    note = BODY + "\n" + signature_line(BODY, "stranger", stranger)
    note += signature_line(BODY, ORIGIN, LOG_KEY)
    assert open_note(note, [LOG_VKEY]) == BODY


def test_repeated_signature_line_is_tolerated() -> None:
    line = signature_line(BODY, ORIGIN, LOG_KEY)
    assert open_note(BODY + "\n" + line + line, [LOG_VKEY]) == BODY


# --- failures ----------------------------------------------------------------------------


def test_note_signed_only_by_unknown_key_fails() -> None:
    with pytest.raises(NoteVerificationError):
        open_note(_signed(), [WITNESS_VKEY])
    with pytest.raises(NoteVerificationError):
        open_note(_signed(), [])


def test_altered_body_fails() -> None:
    note = _signed().replace("\n2\n", "\n3\n", 1)
    with pytest.raises(NoteVerificationError):
        open_note(note, [LOG_VKEY])


def test_altered_signature_fails() -> None:
    note = _signed()
    prefix, _, encoded = note.rstrip("\n").rpartition(" ")
    blob = bytearray(base64.b64decode(encoded))
    blob[10] ^= 1
    with pytest.raises(NoteVerificationError):
        open_note(f"{prefix} {base64.b64encode(bytes(blob)).decode()}\n", [LOG_VKEY])


def test_signature_under_another_key_with_claimed_name_fails() -> None:
    # Same name, right key id, wrong key: the key id is not a secret.
    forged_line = signature_line(BODY, ORIGIN, WITNESS_KEY)
    kid = key_id(ORIGIN, LOG_KEY.verify_key).to_bytes(4, "big")
    sig = base64.b64decode(forged_line.split(" ")[2])[4:]
    note = BODY + f"\n\u2014 {ORIGIN} {base64.b64encode(kid + sig).decode()}\n"
    with pytest.raises(NoteVerificationError):
        open_note(note, [LOG_VKEY])


def test_bad_signature_by_a_known_key_rejects_note_despite_a_good_one() -> None:
    bad = signature_line("something else\n", "witness.example", WITNESS_KEY)
    note = _signed() + bad
    with pytest.raises(NoteVerificationError):
        open_note(note, [LOG_VKEY, WITNESS_VKEY])


def test_checkpoint_for_another_origin_fails() -> None:
    with pytest.raises(NoteVerificationError):
        open_checkpoint(_signed(), [LOG_VKEY], origin="ledger.example/org/other")


def test_more_than_max_signatures_fails() -> None:
    stranger = signature_line(BODY, "stranger", SigningKey(bytes(32)))
    note = _signed() + stranger * MAX_SIGNATURES
    with pytest.raises(NoteVerificationError):
        open_note(note, [LOG_VKEY])
    assert open_note(_signed() + stranger * (MAX_SIGNATURES - 1), [LOG_VKEY]) == BODY


SIG = "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="


@pytest.mark.parametrize(
    "note",
    [
        pytest.param("", id="empty"),
        pytest.param(GO_TEXT, id="no-signatures"),
        pytest.param(GO_TEXT + "\n", id="blank-line-only"),
        pytest.param(GO_NOTE.rstrip("\n"), id="missing-final-newline"),
        pytest.param(GO_TEXT + f"\u2014 PeterNeumann {SIG}\n", id="no-blank-line"),
        pytest.param(GO_TEXT + f"\n-- PeterNeumann {SIG}\n", id="ascii-dashes"),
        pytest.param(GO_TEXT + f"\n\u2014PeterNeumann {SIG}\n", id="no-space-after-dash"),
        pytest.param(GO_TEXT + f"\n\u2014 PeterNeumann  {SIG}\n", id="double-space"),
        pytest.param(GO_TEXT + f"\n\u2014 PeterNeumann {SIG} \n", id="trailing-space"),
        pytest.param(GO_TEXT + "\n\u2014 PeterNeumann\n", id="no-signature"),
        pytest.param(GO_TEXT + "\n\u2014 PeterNeumann \n", id="empty-signature"),
        pytest.param(GO_TEXT + "\n\u2014 PeterNeumann x08g\n", id="short-signature"),
        pytest.param(GO_TEXT + f"\n\u2014 PeterNeumann {SIG[:-1]}\n", id="bad-padding"),
        pytest.param(GO_TEXT + f"\n\u2014 PeterNeumann {SIG}!\n", id="non-base64"),
        pytest.param(GO_TEXT + f"\n\u2014 PeterNeumann {SIG}=\n", id="excess-padding"),
        pytest.param(GO_TEXT + f"\n\u2014  {SIG}\n", id="empty-name"),
        pytest.param(GO_TEXT + f"\n\u2014 Peter+Neumann {SIG}\n", id="plus-in-name"),
        pytest.param(GO_NOTE + "\n", id="blank-line-after-signatures"),
        pytest.param(GO_NOTE + "trailing text\n", id="text-after-signatures"),
        pytest.param(GO_NOTE.replace("cryptography", "crypto\tgraphy"), id="tab-in-body"),
        pytest.param(GO_NOTE.replace("cryptography", "crypto\rgraphy"), id="cr-in-body"),
        pytest.param(GO_NOTE.replace("cryptography", "crypto\ud800"), id="lone-surrogate"),
        pytest.param(GO_NOTE.replace("\n\u2014", "\r\n\u2014"), id="crlf"),
    ],
)
def test_malformed_note_fails_with_the_one_verification_error(note: str) -> None:
    with pytest.raises(NoteVerificationError):
        open_note(note, [GO_VKEY])


def test_body_must_end_in_newline_to_be_signed() -> None:
    for body in ["", "no newline", "blank\n\nline\n", "\nleading\n", "tab\t\n"]:
        with pytest.raises(ValueError):
            sign_note(body, ORIGIN, LOG_KEY)


# --- checkpoint bodies -------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param("", id="empty"),
        pytest.param(f"{ORIGIN}\n2\n", id="missing-root"),
        pytest.param(BODY[:-1], id="missing-final-newline"),
        pytest.param(BODY.replace("\n2\n", "\n02\n"), id="leading-zero"),
        pytest.param(BODY.replace("\n2\n", "\n-2\n"), id="negative-size"),
        pytest.param(BODY.replace("\n2\n", "\n+2\n"), id="plus-size"),
        pytest.param(BODY.replace("\n2\n", "\n\uff12\n"), id="non-ascii-digit"),
        pytest.param(BODY.replace("\n2\n", f"\n{1 << 64}\n"), id="size-overflow"),
        pytest.param(f"{ORIGIN}\n2\nAAAA\n", id="short-root"),
        pytest.param(f"{ORIGIN}\n2\nnot base64!\n", id="bad-root"),
        pytest.param(f"\n2\n{BODY.split(chr(10))[2]}\n", id="empty-origin"),
        pytest.param(BODY + "\n", id="empty-extension-line"),
    ],
)
def test_malformed_checkpoint_body_fails(body: str) -> None:
    with pytest.raises(NoteVerificationError):
        parse_checkpoint(body)


@pytest.mark.parametrize(
    ("origin", "size", "root_hash", "extra"),
    [
        ("", 1, ROOT, ()),
        ("two\nlines", 1, ROOT, ()),
        (ORIGIN, -1, ROOT, ()),
        (ORIGIN, 1 << 64, ROOT, ()),
        (ORIGIN, 1, ROOT[:31], ()),
        (ORIGIN, 1, ROOT, ("",)),
        (ORIGIN, 1, ROOT, ("a\nb",)),
    ],
)
def test_make_checkpoint_refuses_unencodable_values(
    origin: str, size: int, root_hash: bytes, extra: tuple[str, ...]
) -> None:
    with pytest.raises(ValueError):
        make_checkpoint(origin, size, root_hash, extra)
