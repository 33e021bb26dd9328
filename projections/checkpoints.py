"""Signed checkpoints of each org's Merkle log: when to sign, and reading them back.

A checkpoint is signed inside the stream projection's batch transaction once an org's log has
grown by ``every_events`` since its last checkpoint (so a checkpoint exists exactly when the log
state it signs is committed), and by ``sign_pending`` — a periodic task — for any org whose log
grew since its last checkpoint. Rows are never cleared: a rebuild that reaches a checkpointed size
with another root raises ``CheckpointMismatchError`` instead of silently re-signing history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from projections.stream import org_checkpoints, org_log

__all__ = [
    "CheckpointMismatchError",
    "CheckpointSigner",
    "CheckpointView",
    "Checkpointer",
    "StoredCheckpoint",
]


class CheckpointMismatchError(Exception):
    """The log reached a checkpointed size with a root other than the signed one."""


class CheckpointSigner(Protocol):
    def sign_checkpoint(self, org_id: str, size: int, root_hash: bytes) -> str: ...


@dataclass(frozen=True)
class StoredCheckpoint:
    org_id: str
    size: int
    root_hash: bytes
    note: str
    created_at: datetime


def _stored(row: sa.Row[object]) -> StoredCheckpoint:
    m = row._mapping
    created = m["created_at"]
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    return StoredCheckpoint(
        m["org_id"], int(m["size"]), bytes.fromhex(m["root"]), m["note"], created
    )


class Checkpointer:
    """The stream projection's batch hook, and the periodic signer of unsigned growth."""

    def __init__(self, signer: CheckpointSigner, *, every_events: int = 1000) -> None:
        if every_events < 1:
            raise ValueError("every_events must be at least 1")
        self.signer = signer
        self.every_events = every_events

    def record(self, conn: Connection, org: str, size: int, root_hash: bytes) -> bool:
        """Sign and store the checkpoint at ``size`` unless it exists; True if one was made."""
        existing = conn.execute(
            sa.select(org_checkpoints.c.root).where(
                org_checkpoints.c.org_id == org, org_checkpoints.c.size == size
            )
        ).first()
        if existing is not None:
            if existing.root != root_hash.hex():
                raise CheckpointMismatchError(
                    f"org {org} log at size {size} has root {root_hash.hex()}, "
                    f"but the signed checkpoint says {existing.root}"
                )
            return False
        note = self.signer.sign_checkpoint(org, size, root_hash)
        conn.execute(
            sa.insert(org_checkpoints).values(
                org_id=org,
                size=size,
                root=root_hash.hex(),
                note=note,
                created_at=datetime.now(UTC),
            )
        )
        return True

    def after_batch(self, conn: Connection, heads: dict[str, tuple[int, bytes]]) -> None:
        for org, (size, root_hash) in heads.items():
            last = conn.execute(
                sa.select(sa.func.max(org_checkpoints.c.size)).where(
                    org_checkpoints.c.org_id == org
                )
            ).scalar()
            last = int(last or 0)
            if size - last >= self.every_events or (size <= last and self._exists(conn, org, size)):
                self.record(conn, org, size, root_hash)  # the second case checks a rebuild

    @staticmethod
    def _exists(conn: Connection, org: str, size: int) -> bool:
        stmt = sa.select(org_checkpoints.c.size).where(
            org_checkpoints.c.org_id == org, org_checkpoints.c.size == size
        )
        return conn.execute(stmt).first() is not None

    def sign_pending(self, engine: Engine, org_id: UUID | None = None) -> int:
        """Checkpoint every org (or one) whose committed log grew since its last checkpoint."""
        latest = (
            sa.select(org_checkpoints.c.org_id, sa.func.max(org_checkpoints.c.size).label("size"))
            .group_by(org_checkpoints.c.org_id)
            .subquery()
        )
        stmt = (
            sa.select(org_log.c.org_id, org_log.c.size, org_log.c.root)
            .outerjoin(latest, latest.c.org_id == org_log.c.org_id)
            .where(org_log.c.size > sa.func.coalesce(latest.c.size, 0))
        )
        if org_id is not None:
            stmt = stmt.where(org_log.c.org_id == str(org_id))
        with engine.connect() as conn:
            pending = conn.execute(stmt).all()
        made = 0
        for row in pending:
            try:
                with engine.begin() as conn:
                    made += self.record(conn, row.org_id, int(row.size), bytes.fromhex(row.root))
            except sa.exc.IntegrityError:
                pass  # the projection or another process signed the same size first
        return made


class CheckpointView:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def latest(self, org_id: UUID) -> StoredCheckpoint | None:
        stmt = (
            sa.select(org_checkpoints)
            .where(org_checkpoints.c.org_id == str(org_id))
            .order_by(org_checkpoints.c.size.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return _stored(row) if row is not None else None

    def at(self, org_id: UUID, size: int) -> StoredCheckpoint | None:
        stmt = sa.select(org_checkpoints).where(
            org_checkpoints.c.org_id == str(org_id), org_checkpoints.c.size == size
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).first()
        return _stored(row) if row is not None else None
