"""Verify Standard Webhooks v1 deliveries from License Ledger (receiver side).

This module imports the Python standard library only, so a receiver may copy this one file
into its own codebase. Usage::

    webhook = Webhook("whsec_...")
    payload = webhook.verify(raw_body_bytes, request_headers)  # raises WebhookVerificationError

Every failure raises :class:`WebhookVerificationError` and nothing else: missing or duplicated
headers, a malformed or out-of-window timestamp, no matching ``v1`` signature, a replayed
message, or a body that is not a UTF-8 JSON object. Verification is over the raw body bytes;
never re-serialise a parsed body before verifying it.

Replays: a sender re-signs every delivery attempt with a fresh timestamp while keeping its
``webhook-id``. A replay is therefore the same ``(webhook-id, webhook-timestamp)`` pair seen
twice; it is remembered until the timestamp leaves the tolerance window, after which the
timestamp check rejects it anyway. Deduplicating legitimate retries by ``webhook-id`` is the
receiver application's idempotency concern.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import heapq
import hmac
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, cast

__all__ = ["InMemorySeenIdStore", "SeenIdStore", "Webhook", "WebhookVerificationError"]

_SECRET_PREFIX = "whsec_"  # noqa: S105 -- a format prefix, not a secret
_MIN_SECRET_BYTES = 16
_HEADER_FAMILIES = ("webhook", "svix")
_MAX_ID_LENGTH = 256
_MAX_TIMESTAMP_DIGITS = 12
_MAX_SIGNATURE_TOKENS = 32
_SIGNATURE_BYTES = 32


class WebhookVerificationError(Exception):
    """The delivery could not be verified; the message says why, and may be logged."""


class SeenIdStore(Protocol):
    """Remembers verified messages until they expire."""

    def check_and_add(self, key: str, *, expires_at: datetime, now: datetime) -> bool:
        """Record ``key`` until ``expires_at``; return False if it is already recorded."""
        ...


class InMemorySeenIdStore:
    """A thread-safe, process-local :class:`SeenIdStore` that evicts expired entries."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._expiry: dict[str, datetime] = {}
        self._queue: list[tuple[datetime, str]] = []

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)

    def check_and_add(self, key: str, *, expires_at: datetime, now: datetime) -> bool:
        with self._lock:
            self._evict(now)
            if key in self._expiry:
                return False
            if expires_at > now:
                self._expiry[key] = expires_at
                heapq.heappush(self._queue, (expires_at, key))
            return True

    def _evict(self, now: datetime) -> None:
        while self._queue and self._queue[0][0] <= now:
            expires_at, key = heapq.heappop(self._queue)
            if self._expiry.get(key) == expires_at:
                del self._expiry[key]


SecretInput = str | bytes


class Webhook:
    """Verifies deliveries signed with any one of the receiver's secrets.

    ``secret`` is a ``whsec_`` string, raw key bytes, or a sequence of them while rotating
    (any one secret matching any one signature token is enough). A malformed secret is a
    configuration error and raises ``ValueError`` here, not at verification time.
    """

    def __init__(
        self,
        secret: SecretInput | Sequence[SecretInput],
        *,
        tolerance: timedelta = timedelta(minutes=5),
        seen_ids: SeenIdStore | None = None,
    ) -> None:
        if isinstance(secret, str | bytes):
            given: list[SecretInput] = [secret]
        elif isinstance(secret, Sequence):
            given = list(cast("Sequence[SecretInput]", secret))
        else:
            raise TypeError("secret is a whsec_ string, bytes, or a sequence of them")
        if not given:
            raise ValueError("give at least one webhook secret")
        self._keys = [_parse_receiver_secret(s) for s in given]
        if tolerance <= timedelta(0):
            raise ValueError("tolerance must be positive")
        self._tolerance = tolerance
        self._seen_ids: SeenIdStore = InMemorySeenIdStore() if seen_ids is None else seen_ids

    def verify(
        self, body: bytes, headers: Mapping[str, str], *, now: datetime | None = None
    ) -> dict[str, Any]:
        """Return the JSON object in ``body`` once the delivery is authentic and fresh."""
        if now is None:
            now = datetime.now(UTC)
        elif now.tzinfo is None or now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        try:
            msg_id, timestamp, payload = self._authenticate(body, headers, now)
        except WebhookVerificationError:
            raise
        except Exception:  # fail closed: nothing but WebhookVerificationError escapes
            raise WebhookVerificationError("malformed delivery") from None
        # Outside the guard above: a failing store is an infrastructure error, not a bad delivery.
        expires_at = datetime.fromtimestamp(timestamp, UTC) + self._tolerance
        if not self._seen_ids.check_and_add(
            f"{msg_id}.{timestamp}", expires_at=expires_at, now=now
        ):
            raise WebhookVerificationError("message already received (replay)")
        return payload

    def _authenticate(
        self, body: bytes, headers: Mapping[str, str], now: datetime
    ) -> tuple[str, int, dict[str, Any]]:
        if not isinstance(body, bytes | bytearray | memoryview):
            raise WebhookVerificationError("the body must be the raw request bytes")
        raw_body = bytes(body)
        msg_id, raw_timestamp, raw_signatures = _read_headers(headers)
        timestamp = _parse_timestamp(raw_timestamp)
        age = now.timestamp() - timestamp
        tolerance = self._tolerance.total_seconds()
        if age > tolerance:
            raise WebhookVerificationError("message timestamp too old")
        if age < -tolerance:
            raise WebhookVerificationError("message timestamp too new")
        candidates = _parse_signatures(raw_signatures)
        content = f"{msg_id}.{timestamp}.".encode() + raw_body
        if not self._any_matches(content, candidates):
            raise WebhookVerificationError("no matching signature found")
        return msg_id, timestamp, _parse_json_object(raw_body)

    def _any_matches(self, content: bytes, candidates: Iterable[bytes]) -> bool:
        expected = [hmac.new(k, content, hashlib.sha256).digest() for k in self._keys]
        matched = False
        for candidate in candidates:
            for digest in expected:
                matched |= hmac.compare_digest(digest, candidate)
        return matched


def _parse_receiver_secret(secret: SecretInput) -> bytes:
    if isinstance(secret, bytes | bytearray):
        key = bytes(secret)
    elif isinstance(secret, str):
        encoded = secret.removeprefix(_SECRET_PREFIX)
        if not encoded.isascii():
            raise ValueError("a webhook secret is ASCII base64")
        try:
            key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
        except binascii.Error:
            raise ValueError("a webhook secret is whsec_ followed by standard base64") from None
    else:
        raise ValueError("a webhook secret is a whsec_ string or bytes")
    if len(key) < _MIN_SECRET_BYTES:
        raise ValueError(f"a webhook secret has at least {_MIN_SECRET_BYTES} bytes")
    return key


def _read_headers(headers: Mapping[str, str]) -> tuple[str, str, str]:
    folded: dict[str, str] = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in folded and folded[lowered] != value:
            raise WebhookVerificationError(f"conflicting {lowered} headers")
        folded[lowered] = value
    for family in _HEADER_FAMILIES:
        names = (f"{family}-id", f"{family}-timestamp", f"{family}-signature")
        present = [folded.get(n) for n in names]
        if any(v is not None for v in present):
            msg_id, timestamp, signatures = present
            if msg_id is None or timestamp is None or signatures is None:
                raise WebhookVerificationError("missing required webhook headers")
            if not all(isinstance(v, str) for v in present):
                raise WebhookVerificationError("webhook headers must be strings")
            _check_id(msg_id)
            return msg_id, timestamp, signatures
    raise WebhookVerificationError("missing required webhook headers")


def _check_id(msg_id: str) -> None:
    printable = all("!" <= c <= "~" for c in msg_id)
    if not msg_id or len(msg_id) > _MAX_ID_LENGTH or not printable:
        raise WebhookVerificationError("malformed webhook-id")


def _parse_timestamp(raw: str) -> int:
    digits_only = raw.isascii() and raw.isdigit()
    canonical = raw == "0" or not raw.startswith("0")
    if not digits_only or not canonical or len(raw) > _MAX_TIMESTAMP_DIGITS:
        raise WebhookVerificationError("webhook-timestamp is not integer seconds")
    return int(raw)


def _parse_signatures(header: str) -> list[bytes]:
    tokens = [t for t in header.split(" ") if t]
    if len(tokens) > _MAX_SIGNATURE_TOKENS:
        raise WebhookVerificationError("too many signatures")
    candidates = []
    for token in tokens:
        version, comma, encoded = token.partition(",")
        if not comma or version != "v1" or not encoded.isascii():
            continue
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        if len(decoded) == _SIGNATURE_BYTES:
            candidates.append(decoded)
    return candidates


def _reject_constant(name: str) -> None:
    raise WebhookVerificationError(f"body contains non-standard JSON constant {name}")


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise WebhookVerificationError("body has duplicate JSON keys")
    return result


def _parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
        payload = json.loads(
            text, parse_constant=_reject_constant, object_pairs_hook=_unique_object
        )
    except (ValueError, RecursionError):
        raise WebhookVerificationError("body is not UTF-8 JSON") from None
    if not isinstance(payload, dict):
        raise WebhookVerificationError("body is not a JSON object")
    return payload
