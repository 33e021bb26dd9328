"""The tamper-evident audit log, read side: checkpoints, proofs and offline bundles of an org's log.

Proofs are computed from the org's leaf hashes (``StreamView.leaf_hashes``): O(n) rows read and
O(n) hashes per proof for a log of n events. That is fine up to a few hundred thousand events per
org; beyond that, store the interior nodes (a tile store) instead.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ledger.audit import merkle
from ledger.audit.verify import FORMAT
from ledger.domain.errors import InvalidInputError, NotFoundError
from ledger.logkey import LogSigner
from projections.checkpoints import Checkpointer, CheckpointView, StoredCheckpoint
from projections.stream import StreamView


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass
class AuditLog:
    signer: LogSigner
    checkpointer: Checkpointer
    checkpoints: CheckpointView
    stream: StreamView

    def verifier_key(self) -> str:
        return self.signer.verifier_key()

    def checkpoint(self, org_id: UUID, size: int | None = None) -> StoredCheckpoint:
        """The latest signed checkpoint of the org (or the one at ``size``)."""
        found = (
            self.checkpoints.latest(org_id) if size is None else self.checkpoints.at(org_id, size)
        )
        if found is None:
            where = "" if size is None else f" at size {size}"
            raise NotFoundError(f"no signed checkpoint{where} for this organization")
        return found

    def _leaves(self, org_id: UUID, size: int) -> list[bytes]:
        head, _ = self.stream.head(org_id)
        if size > head:
            raise InvalidInputError(f"the log has {head} events, fewer than {size}")
        return self.stream.leaf_hashes(org_id, size)

    def inclusion(self, org_id: UUID, seq: int, size: int) -> dict[str, Any]:
        """Audit path of the event ``org_seq == seq`` in the tree of ``size`` events."""
        if not 1 <= seq <= size:
            raise InvalidInputError("seq must be between 1 and size")
        leaves = self._leaves(org_id, size)
        return {
            "origin": self.signer.origin(str(org_id)),
            "seq": seq,
            "leaf_index": seq - 1,
            "size": size,
            "leaf_hash": b64(leaves[seq - 1]),
            "root": b64(merkle.root(leaves)),
            "proof": [b64(h) for h in merkle.inclusion_proof(leaves, seq - 1)],
        }

    def consistency(self, org_id: UUID, old: int, new: int) -> dict[str, Any]:
        """Proof that the tree of ``old`` events is a prefix of the tree of ``new`` events."""
        if not 1 <= old <= new:
            raise InvalidInputError("need 1 <= from <= to")
        leaves = self._leaves(org_id, new)
        return {
            "origin": self.signer.origin(str(org_id)),
            "from": old,
            "to": new,
            "from_root": b64(merkle.root(leaves[:old])),
            "to_root": b64(merkle.root(leaves)),
            "proof": [b64(h) for h in merkle.consistency_proof(leaves, old)],
        }

    def bundle(
        self, org_id: UUID, *, size: int | None = None, previous_size: int | None = None
    ) -> dict[str, Any]:
        """An offline-verifiable bundle (``ledger.audit.verify``) of the org's log.

        Without ``size``, first signs the committed head if it grew since the last checkpoint.
        """
        if size is None:
            self.checkpointer.sign_pending(self.stream.engine, org_id)
        cp = self.checkpoint(org_id, size)
        events = self.stream.envelopes(org_id, cp.size)
        if len(events) != cp.size:
            raise InvalidInputError("the stream is behind its checkpoint; catch up first")
        out: dict[str, Any] = {
            "format": FORMAT,
            "org_id": str(org_id),
            "origin": self.signer.origin(str(org_id)),
            "verifier_key": self.verifier_key(),
            "checkpoint": cp.note,
            "events": [{"org_seq": seq, "envelope": text} for seq, text in events],
        }
        if previous_size is not None:
            prev = self.checkpoint(org_id, previous_size)
            if not 0 < prev.size <= cp.size:
                raise InvalidInputError("the previous checkpoint must be non-empty and older")
            leaves = [merkle.leaf_hash(text.encode("utf-8")) for _, text in events]
            proof = merkle.consistency_proof(leaves, prev.size)
            out["previous"] = {"checkpoint": prev.note, "consistency": [b64(h) for h in proof]}
        return out
