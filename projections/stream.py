"""The per-organization stream and its Merkle log (the integrity projection).

Numbers each organization's events 1, 2, 3… without gaps (``org_seq``) in notification order, keeps
each event's canonical envelope (its stored form, so personal fields stay as stored) and appends the
envelope's RFC 6962 leaf hash to that org's Merkle log, whose compact state lives in ``org_log``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast
from uuid import UUID

import sqlalchemy as sa
from eventsourcing.persistence import Notification
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Mapped

from ledger.audit.merkle import MerkleLog, leaf_hash
from ledger.events import envelope, event_id, event_type_from_topic
from ledger.tenancy import TenantScoped, TenantSession, columns, map_tenant_table
from projections.runtime import Projection

metadata = sa.MetaData()

org_stream = sa.Table(
    "org_stream",
    metadata,
    sa.Column("org_id", sa.String(36), primary_key=True),
    sa.Column("org_seq", sa.BigInteger, primary_key=True),
    sa.Column("notification_id", sa.BigInteger, nullable=False, unique=True),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("event_type", sa.String(80), nullable=False),
    sa.Column("aggregate_id", sa.String(36), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("envelope", sa.Text, nullable=False),
    sa.Column("leaf_hash", sa.String(64), nullable=False),
)

org_log = sa.Table(
    "org_log",
    metadata,
    sa.Column("org_id", sa.String(36), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("root", sa.String(64), nullable=False),
    sa.Column("subtrees", sa.Text, nullable=False),
)


#: Signed checkpoints of each org's log (``projections.checkpoints``). Not cleared by a rebuild:
#: they are statements already published, and a rebuilt log must still match them.
org_checkpoints = sa.Table(
    "org_checkpoints",
    metadata,
    sa.Column("org_id", sa.String(36), primary_key=True),
    sa.Column("size", sa.BigInteger, primary_key=True),
    sa.Column("root", sa.String(64), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)


class BatchHook(Protocol):
    def after_batch(self, conn: Connection, heads: dict[str, tuple[int, bytes]]) -> None:
        """Called in the batch transaction with each changed org's new (size, root)."""


class StreamRow(TenantScoped):
    org_id: Mapped[str]
    org_seq: Mapped[int]
    notification_id: Mapped[int]
    event_id: Mapped[str]
    event_type: Mapped[str]
    aggregate_id: Mapped[str]
    version: Mapped[int]
    occurred_at: Mapped[datetime]
    envelope: Mapped[str]
    leaf_hash: Mapped[str]


class OrgLogRow(TenantScoped):
    org_id: Mapped[str]
    size: Mapped[int]
    root: Mapped[str]
    subtrees: Mapped[str]


map_tenant_table(StreamRow, org_stream)
map_tenant_table(OrgLogRow, org_log)


class CheckpointRow(TenantScoped):
    org_id: Mapped[str]
    size: Mapped[int]
    root: Mapped[str]
    note: Mapped[str]
    created_at: Mapped[datetime]


map_tenant_table(CheckpointRow, org_checkpoints)


def org_of(event: Any) -> UUID:
    org = getattr(event, "org_id", None)
    return cast(UUID, org if org is not None else event.originator_id)  # Organization.Created


class StreamProjection(Projection):
    name = "stream"
    metadata = metadata
    filter_topics = False

    def __init__(self, checkpoints: BatchHook | None = None) -> None:
        self._checkpoints = checkpoints
        self._rows: list[dict[str, Any]] = []
        self._logs: dict[str, MerkleLog] = {}
        self._dirty: set[str] = set()
        self._known: set[str] = set()

    def clear(self, conn: Connection) -> None:
        conn.execute(sa.delete(org_stream))
        conn.execute(sa.delete(org_log))
        self._logs.clear()
        self._known.clear()

    def _log(self, conn: Connection, org: str) -> MerkleLog:
        log = self._logs.get(org)
        if log is None:
            row = conn.execute(sa.select(org_log).where(org_log.c.org_id == org)).first()
            if row is None:
                log = MerkleLog()
            else:
                self._known.add(org)
                hashes = [bytes.fromhex(h) for h in json.loads(row.subtrees)]
                log = MerkleLog.resume(int(row.size), hashes)
            self._logs[org] = log
        return log

    def handle(self, conn: Connection, event: Any, notification: Notification) -> None:
        org = str(org_of(event))
        log = self._log(conn, org)
        seq = log.size + 1
        env = envelope(
            org_id=org,
            org_seq=seq,
            originator_id=notification.originator_id,
            originator_version=notification.originator_version,
            topic=notification.topic,
            state=notification.state,
        )
        leaf = leaf_hash(env)
        log.append(leaf)
        self._dirty.add(org)
        self._rows.append(
            {
                "org_id": org,
                "org_seq": seq,
                "notification_id": notification.id,
                "event_id": str(
                    event_id(notification.originator_id, notification.originator_version)
                ),
                "event_type": event_type_from_topic(notification.topic),
                "aggregate_id": str(notification.originator_id),
                "version": notification.originator_version,
                "occurred_at": event.timestamp,
                "envelope": env.decode("utf-8"),
                "leaf_hash": leaf.hex(),
            }
        )

    def discard(self) -> None:
        self._rows = []
        self._logs.clear()
        self._known.clear()
        self._dirty.clear()

    def after_batch(self, conn: Connection) -> None:
        if self._rows:
            conn.execute(org_stream.insert(), self._rows)  # one compiled statement, executemany
        self._rows = []
        heads: dict[str, tuple[int, bytes]] = {}
        for org in self._dirty:
            log = self._logs[org]
            heads[org] = (log.size, log.root())
            values = {
                "size": log.size,
                "root": heads[org][1].hex(),
                "subtrees": json.dumps([h.hex() for h in log.subtree_hashes]),
            }
            if org in self._known:
                conn.execute(sa.update(org_log).where(org_log.c.org_id == org).values(**values))
            else:
                conn.execute(sa.insert(org_log).values(org_id=org, **values))
                self._known.add(org)
        if self._checkpoints is not None:
            self._checkpoints.after_batch(conn, heads)
        self._dirty.clear()
        # The cached logs are only valid inside this process's view of committed batches; drop
        # them so a concurrent runner (another process) can never make us append from stale state.
        self._logs.clear()
        self._known.clear()


@dataclass(frozen=True)
class StreamEvent:
    org_seq: int
    event_id: str
    type: str
    aggregate_id: str
    version: int
    occurred_at: Any
    envelope: dict[str, Any]
    leaf_hash: str


class StreamView:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def page(self, org_id: UUID, *, after: int = 0, limit: int = 100) -> list[StreamEvent]:
        stmt = (
            sa.select(*columns(StreamRow))
            .where(StreamRow.org_seq > after)
            .order_by(StreamRow.org_seq)
            .limit(limit)
        )
        with TenantSession(self.engine, org_id) as session:  # adds the org filter
            rows = session.execute(stmt).all()
        return [
            StreamEvent(
                org_seq=int(r.org_seq),
                event_id=r.event_id,
                type=r.event_type,
                aggregate_id=r.aggregate_id,
                version=int(r.version),
                occurred_at=r.occurred_at,
                envelope=json.loads(r.envelope),
                leaf_hash=r.leaf_hash,
            )
            for r in rows
        ]

    def head(self, org_id: UUID) -> tuple[int, str]:
        with TenantSession(self.engine, org_id) as session:
            row = session.execute(sa.select(*columns(OrgLogRow))).first()
        if row is None:
            from ledger.audit.merkle import empty_root

            return 0, empty_root().hex()
        return int(row.size), row.root

    def envelopes(self, org_id: UUID, size: int) -> list[tuple[int, str]]:
        """``(org_seq, envelope text as stored)`` for org_seq 1…size."""
        stmt = (
            sa.select(org_stream.c.org_seq, org_stream.c.envelope)
            .where(org_stream.c.org_id == str(org_id), org_stream.c.org_seq <= size)
            .order_by(org_stream.c.org_seq)
        )
        with self.engine.connect() as conn:
            return [(int(r.org_seq), r.envelope) for r in conn.execute(stmt)]

    def leaf_hashes(self, org_id: UUID, size: int) -> list[bytes]:
        stmt = (
            sa.select(StreamRow.leaf_hash)
            .where(StreamRow.org_seq <= size)
            .order_by(StreamRow.org_seq)
        )
        with TenantSession(self.engine, org_id) as session:
            return [bytes.fromhex(r.leaf_hash) for r in session.execute(stmt)]
