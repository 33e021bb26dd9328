"""The audit trail: one row per ledger event — when, who, from where, what, on which license.

Personal fields (IP, user agent, actor email) are held with their data subject so that erasure can
scrub them. Validation records older than the retention period are pruned from this view only;
the ledger keeps everything.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from eventsourcing.persistence import Notification
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Mapped

from ledger.domain.subject import Subject
from ledger.domain.values import PersonalData
from ledger.events import event_id, event_type_from_topic
from ledger.tenancy import TenantScoped, TenantSession, columns, map_tenant_table
from projections.runtime import Projection
from projections.stream import org_of

metadata = sa.MetaData()

audit = sa.Table(
    "audit_view",
    metadata,
    sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),  # notification id
    sa.Column("org_id", sa.String(36), nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("action", sa.String(80), nullable=False),
    sa.Column("actor", sa.String(120), nullable=False),
    sa.Column("actor_subject", sa.String(36)),
    sa.Column("ip", sa.String(64)),
    sa.Column("user_agent", sa.String(512)),
    sa.Column("license_id", sa.String(36)),
    sa.Column("changes", sa.Text, nullable=False),
    sa.Index("ix_audit_org_id", "org_id", "id"),
    sa.Index("ix_audit_org_license", "org_id", "license_id", "id"),
    sa.Index("ix_audit_action_time", "action", "occurred_at"),
)


class AuditRow(TenantScoped):
    id: Mapped[int]
    org_id: Mapped[str]
    occurred_at: Mapped[datetime]
    event_id: Mapped[str]
    action: Mapped[str]
    actor: Mapped[str]
    actor_subject: Mapped[str | None]
    ip: Mapped[str | None]
    user_agent: Mapped[str | None]
    license_id: Mapped[str | None]
    changes: Mapped[str]


map_tenant_table(AuditRow, audit)

_NOT_CHANGES = {
    "originator_id",
    "originator_version",
    "originator_topic",
    "timestamp",
    "org_id",
    "actor",
    "context",
    "key_claims",
    "licensee_name",
    "licensee_email",
    "metadata",
    "secret_hash",
}

COLUMNS = [
    "id",
    "org_id",
    "occurred_at",
    "event_id",
    "action",
    "actor",
    "ip",
    "user_agent",
    "license_id",
    "changes",
]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, PersonalData):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value


def _pd(value: PersonalData | None) -> str | None:
    return None if value is None else value.value


def _license_of(event: Any, action: str) -> str | None:
    lic = getattr(event, "license_id", None)
    if lic is not None:
        return str(lic)
    return str(event.originator_id) if action.startswith("license.") else None


class AuditProjection(Projection):
    name = "audit"
    metadata = metadata
    filter_topics = False

    def clear(self, conn: Connection) -> None:
        conn.execute(sa.delete(audit))

    def __init__(self) -> None:
        self._rows: list[dict[str, Any]] = []

    def handle(self, conn: Connection, event: Any, notification: Notification) -> None:
        action = event_type_from_topic(notification.topic)
        actor = getattr(event, "actor", None)
        context = getattr(event, "context", None)
        changes = {k: _plain(v) for k, v in vars(event).items() if k not in _NOT_CHANGES}
        ip = context.ip if context is not None else None
        ua = context.user_agent if context is not None else None
        personal = ip or ua
        self._rows.append(
            {
                "id": notification.id,
                "org_id": str(org_of(event)),
                "occurred_at": event.timestamp,
                "event_id": str(
                    event_id(notification.originator_id, notification.originator_version)
                ),
                "action": action,
                "actor": actor.label if actor is not None else "system:ledger",
                "actor_subject": personal.subject if personal is not None else None,
                "ip": _pd(ip),
                "user_agent": _pd(ua),
                "license_id": _license_of(event, action),
                "changes": json.dumps(changes, sort_keys=True, ensure_ascii=False),
            }
        )
        if isinstance(event, Subject.Erased):  # crypto-shredded: scrub what this view holds
            from ledger.privacy import scrub_audit_rows

            scrub_audit_rows(conn, event.subject_id)

    def after_batch(self, conn: Connection) -> None:
        if self._rows:
            conn.execute(audit.insert(), self._rows)  # one compiled statement, executemany
        self._rows = []

    def discard(self) -> None:
        self._rows = []


@dataclass(frozen=True)
class AuditFilter:
    license_id: str | None = None
    actor: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


def _row(r: Any) -> dict[str, Any]:
    at = r.occurred_at if r.occurred_at.tzinfo else r.occurred_at.replace(tzinfo=UTC)
    return {
        "id": int(r.id),
        "org_id": r.org_id,
        "occurred_at": at,
        "event_id": r.event_id,
        "action": r.action,
        "actor": r.actor,
        "ip": r.ip,
        "user_agent": r.user_agent,
        "license_id": r.license_id,
        "changes": json.loads(r.changes),
    }


class AuditView:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _select(self, f: AuditFilter, after: int) -> sa.Select[Any]:
        stmt = sa.select(*columns(AuditRow)).where(AuditRow.id > after)
        if f.license_id:
            stmt = stmt.where(AuditRow.license_id == f.license_id)
        if f.actor:
            stmt = stmt.where(AuditRow.actor == f.actor)
        if f.action:
            if f.action.endswith(".*"):
                stmt = stmt.where(AuditRow.action.startswith(f.action[:-1], autoescape=True))
            else:
                stmt = stmt.where(AuditRow.action == f.action)
        if f.since:
            stmt = stmt.where(AuditRow.occurred_at >= f.since)
        if f.until:
            stmt = stmt.where(AuditRow.occurred_at < f.until)
        return stmt.order_by(AuditRow.id)

    def page(
        self, org_id: UUID, f: AuditFilter, *, after: int = 0, limit: int = 100
    ) -> list[dict[str, Any]]:
        with TenantSession(self.engine, org_id) as session:  # adds the org filter
            rows = session.execute(self._select(f, after).limit(limit)).all()
        return [_row(r) for r in rows]

    def iter_rows(
        self, org_id: UUID, f: AuditFilter, chunk: int = 2000
    ) -> Iterator[dict[str, Any]]:
        """Every matching row, fetched in keyset-paginated chunks: memory stays flat."""
        after = 0
        while True:
            rows = self.page(org_id, f, after=after, limit=chunk)
            yield from rows
            if len(rows) < chunk:
                return
            after = rows[-1]["id"]

    def export(self, org_id: UUID, f: AuditFilter, fmt: str) -> Iterator[str]:
        if fmt == "jsonl":
            for r in self.iter_rows(org_id, f):
                r["occurred_at"] = r["occurred_at"].isoformat()
                yield json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n"
        elif fmt == "csv":
            buf = io.StringIO()
            writer = csv.writer(buf)
            writer.writerow(COLUMNS)
            yield buf.getvalue()
            for r in self.iter_rows(org_id, f):
                buf.seek(0)
                buf.truncate()
                r["changes"] = json.dumps(r["changes"], sort_keys=True, ensure_ascii=False)
                r["occurred_at"] = r["occurred_at"].isoformat()
                writer.writerow([r[c] for c in COLUMNS])
                yield buf.getvalue()
        else:
            raise ValueError(f"unknown export format {fmt!r}")

    def prune_validations(self, older_than: datetime, *, writer: Engine | None = None) -> int:
        """Delete validation rows older than ``older_than`` from this view.

        The ledger keeps them.
        """
        with (writer or self.engine).begin() as conn:
            result = conn.execute(
                sa.delete(audit).where(
                    audit.c.action == "validation.recorded", audit.c.occurred_at < older_than
                )
            )
        return int(result.rowcount or 0)
