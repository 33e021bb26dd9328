"""The thin JSON body of a delivery (also the NATS message body).

Ids, type, org sequence, occurred-at and the event's plain, non-personal fields. Whatever might be
personal or secret is left out by *type* (personal data, actors, request contexts, any nested object
such as metadata, key claims or validation scope) and by *name* (key hashes, sealed secrets), so a
new event field is only ever sent if it is a plain scalar or a list of strings.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from uuid import UUID

from ledger.events import event_id, event_type_from_topic

__all__ = ["thin_payload", "thin_payload_dict"]

_ENVELOPE = {"originator_id", "originator_version", "timestamp", "originator_topic", "org_id"}
_NEVER = {
    "key_hash",
    "secret",
    "actor",
    "context",
    "metadata",
    "key_claims",
    "scope",
    "licensee_name",
    "licensee_email",
    "email",
    "ip",
    "user_agent",
}


_type_of = lru_cache(maxsize=1024)(event_type_from_topic)


def _rfc3339(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _plain(value: Any) -> tuple[bool, Any]:
    if value is None or isinstance(value, bool | int | float | str):
        return True, value
    if isinstance(value, UUID):
        return True, str(value)
    if isinstance(value, datetime):
        return True, _rfc3339(value)
    if isinstance(value, list | tuple | set | frozenset) and all(isinstance(v, str) for v in value):
        return True, sorted(value) if isinstance(value, set | frozenset) else list(value)
    return False, None


def thin_payload_dict(
    event: Any,
    *,
    org_id: str,
    org_seq: int,
    originator_id: UUID,
    version: int,
    topic: str,
    eid: str | None = None,
) -> dict[str, Any]:
    etype = _type_of(topic)
    data: dict[str, Any] = {}
    for name, value in vars(event).items():
        if name in _ENVELOPE or name in _NEVER or name.startswith("_"):
            continue
        ok, plain = _plain(value)
        if ok:
            data[name] = plain
    body: dict[str, Any] = {
        "id": eid or str(event_id(originator_id, version)),
        "type": etype,
        "org_id": org_id,
        "org_seq": org_seq,
        "aggregate_id": str(originator_id),
        "version": version,
        "occurred_at": _rfc3339(event.timestamp),
    }
    if etype.startswith("license."):
        body["license_id"] = str(originator_id)
    elif "license_id" in data:
        body["license_id"] = data.pop("license_id")
    body["data"] = data
    return body


def thin_payload(event: Any, **kwargs: Any) -> bytes:
    """Compact JSON bytes of :func:`thin_payload_dict` (what is signed and sent)."""
    return json.dumps(
        thin_payload_dict(event, **kwargs), separators=(",", ":"), ensure_ascii=False
    ).encode()
