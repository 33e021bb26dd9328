"""Offline verification of an org's audit bundle (standard library + PyNaCl only).

A bundle (``docs/audit.md``) is one canonical JSON document::

    {"checkpoint": "<signed tlog-checkpoint note>",
     "events": [{"envelope": "<stored envelope text>", "org_seq": 1}, …],
     "format": "license-ledger/audit-bundle/v1",
     "org_id": "<uuid>",
     "origin": "<log name>/orgs/<uuid>",
     "previous": {"checkpoint": "<older note>", "consistency": ["<base64 hash>", …]},  # optional
     "verifier_key": "<name>+<hex id>+<base64 key>"}

serialised with sorted keys, no insignificant whitespace, ASCII only and one final newline, so that
every byte of it is significant. ``verify_bundle`` recomputes each event's leaf hash over the UTF-8
bytes of its envelope — opaque input: what ``state`` holds (plaintext or ciphertext) is never read —
checks the events are exactly ``org_seq`` 1…n of this org, that their RFC 6962 root is the root of
the checkpoint, that a *trusted* key signed the checkpoint, and that any previous checkpoint (in the
bundle, or held by the auditor) is a prefix of this log. Every failure raises the one
``BundleVerificationError`` with a short reason.

Trust: the bundle's own ``verifier_key`` proves nothing (whoever forged the bundle chose it). Pass
the log's key obtained out of band (``GET /v1/log/key``, the operator's published key) as
``trusted_keys``; the embedded key is then only checked to be that key.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ledger.audit.merkle import (
    MerkleLog,
    MerkleProofError,
    empty_root,
    leaf_hash,
    verify_consistency,
)
from ledger.audit.note import (
    Checkpoint,
    NoteKeyError,
    NoteVerificationError,
    open_checkpoint,
    parse_verifier_key,
)

__all__ = [
    "FORMAT",
    "BundleVerificationError",
    "VerifiedBundle",
    "canonical_bundle",
    "origin_for",
    "verify_bundle",
]

FORMAT = "license-ledger/audit-bundle/v1"
_TOP_KEYS = {"checkpoint", "events", "format", "org_id", "origin", "verifier_key"}
_PREVIOUS_KEYS = {"checkpoint", "consistency"}
_EVENT_KEYS = {"envelope", "org_seq"}


class BundleVerificationError(Exception):
    """The bundle does not verify. ``reason`` says which check failed, never more."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"audit bundle does not verify: {reason}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class VerifiedBundle:
    origin: str
    org_id: str
    size: int
    root_hash: bytes
    checkpoint: str
    previous_size: int | None


def origin_for(log_name: str, org_id: str) -> str:
    """The checkpoint origin of one org's log: ``<log name>/orgs/<org id>``."""
    return f"{log_name}/orgs/{org_id}"


def canonical_bundle(bundle: Mapping[str, Any]) -> bytes:
    """The one byte encoding of a bundle (sorted keys, compact, ASCII, final newline)."""
    text = json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text.encode("ascii") + b"\n"


def _fail(reason: str) -> BundleVerificationError:
    return BundleVerificationError(reason)


def _load(data: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(data, Mapping):
        return dict(data)
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    try:
        parsed = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise _fail("not a JSON document") from None
    if not isinstance(parsed, dict):
        raise _fail("not a JSON object")
    try:
        canonical = canonical_bundle(parsed)
    except (TypeError, ValueError):
        raise _fail("not a canonical bundle") from None
    if canonical != raw:
        raise _fail("not in canonical form")
    return parsed


def _check_keys(obj: Any, required: set[str], optional: set[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise _fail(f"{what} is not an object")
    keys = set(obj)
    if not required <= keys or not keys <= required | optional:
        raise _fail(f"{what} has missing or unknown fields")
    return obj


def _string(obj: Mapping[str, Any], key: str) -> str:
    value = obj[key]
    if not isinstance(value, str):
        raise _fail(f"{key} is not a string")
    return value


def _trusted(embedded: str, trusted_keys: Sequence[str] | None) -> list[str]:
    try:
        embedded_parsed = parse_verifier_key(embedded)
    except (NoteKeyError, ValueError):
        raise _fail("malformed verifier key in the bundle") from None
    if trusted_keys is None:  # convenience mode: the caller accepts the bundle's own key
        return [embedded]
    try:
        trusted = [parse_verifier_key(k) for k in trusted_keys]
    except (NoteKeyError, ValueError):
        raise _fail("malformed trusted verifier key") from None
    if embedded_parsed not in trusted:
        raise _fail("bundle names a verifier key that is not trusted")
    return list(trusted_keys)


def _open(note: str, keys: list[str], origin: str, what: str) -> Checkpoint:
    try:
        return open_checkpoint(note, keys, origin=origin)
    except (NoteVerificationError, NoteKeyError):
        raise _fail(f"{what} signature or format invalid") from None


def _hashes(items: Any) -> list[bytes]:
    if not isinstance(items, list):
        raise _fail("consistency proof is not a list")
    out = []
    for item in items:
        if not isinstance(item, str):
            raise _fail("consistency proof element is not a string")
        try:
            raw = base64.b64decode(item.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error):
            raise _fail("consistency proof element is not base64") from None
        if base64.b64encode(raw).decode("ascii") != item or len(raw) != 32:
            raise _fail("consistency proof element is not a canonical SHA-256 hash")
        out.append(raw)
    return out


# The canonical envelope (sorted keys, compact) opens with these fields; when neither key occurs
# again later, reading them here gives what ``json.loads`` would, at a fraction of the cost.
_ENVELOPE_HEAD = re.compile(
    r'\{"aggregate_id":"[^"\\]*","event_id":"[^"\\]*",'
    r'"org_id":"([^"\\]*)","org_seq":(0|[1-9][0-9]{0,18})[,}]'
)


def _event_position(text: str, org_id: str) -> int:
    """The ``org_seq`` an envelope claims, after checking it names this org."""
    head = _ENVELOPE_HEAD.match(text)
    if head is not None:
        rest = head.end()
        if text.find('"org_id"', rest) < 0 and text.find('"org_seq"', rest) < 0:
            if head.group(1) != org_id:
                raise _fail("envelope belongs to another organization")
            return int(head.group(2))
    try:
        env = json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        raise _fail("envelope is not JSON") from None
    if not isinstance(env, dict) or env.get("org_id") != org_id:
        raise _fail("envelope belongs to another organization")
    seq = env.get("org_seq")
    if type(seq) is not int:
        raise _fail("envelope has no org_seq")
    return seq


def verify_bundle(
    data: bytes | str | Mapping[str, Any],
    trusted_keys: Sequence[str] | None,
    *,
    previous: str | None = None,
) -> VerifiedBundle:
    """Verify a bundle; return what it proves or raise ``BundleVerificationError``.

    ``data`` is the bundle file's bytes (checked to be canonical) or an already parsed mapping.
    ``trusted_keys`` are verifier key strings obtained out of band; ``None`` trusts the bundle's
    own key (only proves internal consistency). ``previous`` is a signed checkpoint note the
    auditor saw earlier: the bundle's log must extend it.
    """
    bundle = _check_keys(_load(data), _TOP_KEYS, {"previous"}, "bundle")
    if bundle["format"] != FORMAT:
        raise _fail("unknown bundle format")
    org_id, origin = _string(bundle, "org_id"), _string(bundle, "origin")
    if not org_id or not origin.endswith("/orgs/" + org_id) or origin == "/orgs/" + org_id:
        raise _fail("origin does not name the bundle's organization")
    keys = _trusted(_string(bundle, "verifier_key"), trusted_keys)
    note = _string(bundle, "checkpoint")
    checkpoint = _open(note, keys, origin, "checkpoint")

    events = bundle["events"]
    if not isinstance(events, list):
        raise _fail("events is not a list")
    if len(events) != checkpoint.size:
        raise _fail(f"bundle has {len(events)} events, checkpoint covers {checkpoint.size}")

    olds: list[tuple[str, Checkpoint]] = []
    given_proof: list[bytes] | None = None
    if "previous" in bundle:
        prev = _check_keys(bundle["previous"], _PREVIOUS_KEYS, set(), "previous")
        olds.append(
            (
                "previous checkpoint",
                _open(_string(prev, "checkpoint"), keys, origin, "previous checkpoint"),
            )
        )
        given_proof = _hashes(prev["consistency"])
    if previous is not None:
        olds.append(
            (
                "trusted previous checkpoint",
                _open(previous, keys, origin, "trusted previous checkpoint"),
            )
        )
    for what, old in olds:
        if old.size > checkpoint.size:
            raise _fail(f"{what} is larger than the bundle's log (truncated or rolled back)")
    prefix_roots = {old.size: empty_root() if old.size == 0 else b"" for _, old in olds}

    log = MerkleLog()
    for index, item in enumerate(events):
        if type(item) is not dict or item.keys() != _EVENT_KEYS:
            raise _fail(f"event {index + 1} is malformed")
        text, seq = item["envelope"], item["org_seq"]
        if type(text) is not str or type(seq) is not int or seq != index + 1:
            raise _fail(f"event {index + 1} is out of sequence")
        if _event_position(text, org_id) != seq:
            raise _fail(f"event {seq} envelope claims another position")
        try:
            log.append(leaf_hash(text.encode("utf-8")))
        except UnicodeEncodeError:
            raise _fail(f"event {seq} envelope is not UTF-8") from None
        if log.size in prefix_roots:
            prefix_roots[log.size] = log.root()

    if log.root() != checkpoint.root_hash:
        raise _fail("events do not hash to the checkpoint root")
    for what, old in olds:
        if prefix_roots[old.size] != old.root_hash:
            raise _fail(f"{what} is not a prefix of the bundle's log")
    if given_proof is not None:
        old = olds[0][1]
        try:
            verify_consistency(
                old.size, checkpoint.size, given_proof, old.root_hash, checkpoint.root_hash
            )
        except MerkleProofError:
            raise _fail("consistency proof does not verify") from None
    return VerifiedBundle(
        origin=origin,
        org_id=org_id,
        size=checkpoint.size,
        root_hash=checkpoint.root_hash,
        checkpoint=note,
        previous_size=olds[-1][1].size if olds else None,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ledger.audit.verify BUNDLE [--key K]… [--previous FILE]`` for auditors."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m ledger.audit.verify")
    parser.add_argument("bundle")
    parser.add_argument("--key", action="append", help="trusted verifier key (repeatable)")
    parser.add_argument("--previous", help="file holding an earlier signed checkpoint")
    args = parser.parse_args(argv)
    try:
        with open(args.bundle, "rb") as f:
            data = f.read()
        previous = None
        if args.previous:
            with open(args.previous, encoding="utf-8") as f:
                previous = f.read()
    except OSError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    try:
        result = verify_bundle(data, args.key, previous=previous)
    except BundleVerificationError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    trust = "trusted key" if args.key else "the bundle's own key (not independently trusted)"
    print(f"ok: {result.origin} size {result.size} verified under {trust}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
