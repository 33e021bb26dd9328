"""The public face of ledger events for readers: ids, type names and canonical envelopes.

Projections and consumers use these so that every reader names and identifies an event alike:

- ``event_id``: a UUID derived from (aggregate id, version), stable forever
  (webhook-id, Nats-Msg-Id);
- ``event_type``: ``<aggregate>.<event>`` in snake case, e.g. ``license.machine_activated``;
- ``envelope``: the canonical JSON of an event in its *stored* form (personal fields as stored,
  i.e. encrypted once encryption is on), which is what the per-org Merkle log hashes. Stored state
  that is JSON is embedded as ``state``; anything else (the sealed form, see ``ledger.sealing``)
  as ``state_b64`` (standard base64 of the stored bytes), so erasure never changes a leaf.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from typing import Any
from uuid import UUID

_NS = uuid.UUID("3d0f1b5a-8c2e-4e7f-9a4b-6c1d2e3f4a5b")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")

#: Aggregate class name → public prefix.
_PREFIX = {
    "License": "license",
    "Policy": "policy",
    "Organization": "organization",
    "ApiKey": "api_key",
    "ValidationRecord": "validation",
    "WebhookEndpoint": "webhook_endpoint",
    "Subject": "subject",
}


def event_id(originator_id: UUID | str, originator_version: int) -> UUID:
    return uuid.uuid5(_NS, f"{originator_id}:{originator_version}")


def event_type_from_topic(topic: str) -> str:
    """``ledger.domain.license:License.Suspended`` → ``license.suspended``."""
    qualname = topic.rpartition(":")[2]
    owner, _, name = qualname.rpartition(".")
    prefix = _PREFIX.get(owner.rpartition(".")[2], _CAMEL.sub("_", owner).lower() or "ledger")
    return f"{prefix}.{_CAMEL.sub('_', name).lower()}"


def event_type(event: Any) -> str:
    cls = type(event)
    return event_type_from_topic(f"{cls.__module__}:{cls.__qualname__}")


def envelope(
    *,
    org_id: str,
    org_seq: int,
    originator_id: UUID | str,
    originator_version: int,
    topic: str,
    state: bytes,
) -> bytes:
    """Canonical bytes of one event of an org's stream (the Merkle leaf input)."""
    body: dict[str, Any] = {
        "org_id": org_id,
        "org_seq": org_seq,
        "event_id": str(event_id(originator_id, originator_version)),
        "type": event_type_from_topic(topic),
        "topic": topic,
        "aggregate_id": str(originator_id),
        "version": originator_version,
    }
    if state[:1] == b"{":
        body["state"] = json.loads(state.decode("utf-8"))
    else:
        body["state_b64"] = base64.b64encode(bytes(state)).decode("ascii")
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
