"""Build audit bundles without a database: envelopes, a log key, signed checkpoints."""

from __future__ import annotations

import json
import uuid
from typing import Any

from nacl.signing import SigningKey

from ledger.audit import merkle
from ledger.audit.note import make_checkpoint, sign_note, verifier_key
from ledger.audit.verify import FORMAT, origin_for
from ledger.events import envelope

NAME = "license-ledger.test"
TOPIC = "ledger.domain.license:License.Issued"


class Log:
    """A fake org log signed by a fixed key, with helpers to produce bundles and mutations."""

    def __init__(self, n: int, *, seed: bytes = b"\x07" * 32, org: str | None = None) -> None:
        self.key = SigningKey(seed)
        self.org = org or str(uuid.UUID(int=n + 1))
        self.origin = origin_for(NAME, self.org)
        self.envelopes = [self.envelope(i + 1) for i in range(n)]

    @property
    def verifier(self) -> str:
        return verifier_key(NAME, self.key.verify_key)

    def envelope(self, seq: int, *, state: dict[str, Any] | None = None) -> str:
        state = state or {
            "licensee_email": {"ciphertext": f"AQ{seq:06d}Zm9vYmFy", "subject": "s-1"},
            "name": "Caf\u00e9 \u2603",
            "n": seq,
        }
        return envelope(
            org_id=self.org,
            org_seq=seq,
            originator_id=uuid.UUID(int=seq % 7),
            originator_version=seq,
            topic=TOPIC,
            state=json.dumps(state).encode(),
        ).decode("utf-8")

    def root(self, size: int) -> bytes:
        return merkle.root([merkle.leaf_hash(e.encode()) for e in self.envelopes[:size]])

    def checkpoint(
        self,
        size: int,
        *,
        key: SigningKey | None = None,
        origin: str | None = None,
        root_hash: bytes | None = None,
    ) -> str:
        body = make_checkpoint(origin or self.origin, size, root_hash or self.root(size))
        return sign_note(body, NAME, key or self.key)

    def bundle(self, size: int | None = None, *, previous: int | None = None) -> dict[str, Any]:
        size = len(self.envelopes) if size is None else size
        out: dict[str, Any] = {
            "format": FORMAT,
            "org_id": self.org,
            "origin": self.origin,
            "verifier_key": self.verifier,
            "checkpoint": self.checkpoint(size),
            "events": [
                {"org_seq": i + 1, "envelope": e} for i, e in enumerate(self.envelopes[:size])
            ],
        }
        if previous is not None:
            leaves = [merkle.leaf_hash(e.encode()) for e in self.envelopes[:size]]
            proof = merkle.consistency_proof(leaves, previous)
            out["previous"] = {
                "checkpoint": self.checkpoint(previous),
                "consistency": [__import__("base64").b64encode(h).decode() for h in proof],
            }
        return out
