"""When each API key was last used, and a sampled record of its uses in the org's stream.

Recording every authenticated request as an event would add a store write to every read. Instead,
each process records an ``ApiKeyUse`` event (and upserts the ``api_key_last_used`` row) at most
once per key per ``interval`` seconds; the commands a key makes are in the audit trail anyway,
carrying the key as their actor. So "last used" is exact to within ``interval`` (60 s by default).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.domain.apikey import ApiKeyUse
from ledger.domain.values import Actor, RequestContext

metadata = sa.MetaData()

last_used = sa.Table(
    "api_key_last_used",
    metadata,
    sa.Column("key_id", sa.String(32), primary_key=True),
    sa.Column("org_id", sa.String(36), nullable=False),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
)


class ApiKeyUsage:
    MAX_TRACKED = 100_000

    def __init__(self, engine: Engine, recorder: Any, *, interval: float = 60.0) -> None:
        self._engine = engine
        self._recorder = recorder
        self.interval = interval
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def create_tables(self) -> None:
        metadata.create_all(self._engine)

    def due(self, key_id: str) -> bool:
        """Claim this interval's record for ``key_id`` (True at most once per interval)."""
        now = time.monotonic()
        with self._lock:
            seen = self._seen.get(key_id)
            if seen is not None and now - seen < self.interval:
                return False
            if len(self._seen) >= self.MAX_TRACKED:
                self._seen.clear()
            self._seen[key_id] = now
        return True

    def record(
        self,
        org_id: UUID,
        key_id: str,
        *,
        method: str,
        route: str,
        actor: Actor,
        context: RequestContext,
        at: datetime,
    ) -> None:
        """Append the use to the org's stream (group commit) and move the last-used time."""
        self._recorder.record(
            ApiKeyUse(
                org_id=org_id,
                key_id=key_id,
                method=method,
                route=route,
                actor=actor,
                context=context,
            )
        )
        with self._engine.begin() as conn:
            updated = conn.execute(
                sa.update(last_used)
                .where(last_used.c.key_id == key_id, last_used.c.last_used_at < at)
                .values(last_used_at=at)
            ).rowcount
            if not updated:
                exists = conn.execute(
                    sa.select(last_used.c.key_id).where(last_used.c.key_id == key_id)
                ).first()
                if exists is None:
                    try:
                        with conn.begin_nested():
                            conn.execute(
                                sa.insert(last_used).values(
                                    key_id=key_id, org_id=str(org_id), last_used_at=at
                                )
                            )
                    except sa.exc.IntegrityError:
                        pass  # another process inserted it first; its time is as good

    def last_used(self, key_ids: Iterable[str]) -> dict[str, datetime]:
        ids = list(key_ids)
        if not ids:
            return {}
        with self._engine.connect() as conn:
            rows = conn.execute(
                sa.select(last_used.c.key_id, last_used.c.last_used_at).where(
                    last_used.c.key_id.in_(ids)
                )
            ).all()
        return {r.key_id: _utc(r.last_used_at) for r in rows}


def _utc(dt: datetime) -> datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
