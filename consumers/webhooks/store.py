"""Webhook delivery state in the store: endpoints (as of the log), queues, attempts, health.

``webhook_endpoints`` and ``webhook_org_seq`` are written only by the outbox projection (rebuilt
from the log); ``webhook_deliveries`` rows are queued by it and worked by the sender, which also
records every attempt in ``webhook_attempts`` and an endpoint's health and lease in
``webhook_endpoint_state``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.domain.errors import WebhookDeliveryNotFoundError, WebhookEndpointNotFoundError

metadata = sa.MetaData()

_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # SQLite autoincrements INTEGER only
_TS = sa.DateTime(timezone=True)

endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("org_id", sa.String(36), nullable=False, index=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("event_types", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("disabled_reason", sa.Text, nullable=True),
    sa.Column("secrets", sa.Text, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("updated_at", _TS, nullable=False),
)

org_seq = sa.Table(
    "webhook_org_seq",
    metadata,
    sa.Column("org_id", sa.String(36), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
)

deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("endpoint_id", sa.String(36), nullable=False),
    sa.Column("org_id", sa.String(36), nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),
    sa.Column("event_type", sa.String(80), nullable=False),
    sa.Column("org_seq", sa.BigInteger, nullable=False),
    sa.Column("notification_id", sa.BigInteger, nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # pending | delivered | failed
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("next_attempt_at", _TS, nullable=False),
    sa.Column("created_at", _TS, nullable=False),
    sa.Column("delivered_at", _TS, nullable=True),
    sa.Column("last_status_code", sa.Integer, nullable=True),
    sa.Column("last_error", sa.Text, nullable=True),
    sa.UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_delivery_event"),
    sa.Index("ix_webhook_deliveries_queue", "status", "endpoint_id", "id"),
    sa.Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
)

attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", _ID, primary_key=True, autoincrement=True),
    sa.Column("delivery_id", sa.BigInteger, nullable=False, index=True),
    sa.Column("endpoint_id", sa.String(36), nullable=False),
    sa.Column("attempted_at", _TS, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("outcome", sa.String(16), nullable=False),  # delivered | retry | failed | disabled
)

endpoint_state = sa.Table(
    "webhook_endpoint_state",
    metadata,
    sa.Column("endpoint_id", sa.String(36), primary_key=True),
    sa.Column("failing_since", _TS, nullable=True),
    sa.Column("last_success_at", _TS, nullable=True),
    sa.Column("lease_owner", sa.String(64), nullable=True),
    sa.Column("lease_until", _TS, nullable=True),
)


def utc(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored here is UTC."""
    if dt is None:
        return None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)


@dataclass(frozen=True)
class EndpointRow:
    id: str
    org_id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    secrets: list[dict[str, Any]]
    created_at: datetime
    updated_at: datetime
    failing_since: datetime | None = None

    @classmethod
    def of(cls, r: Any, failing_since: datetime | None = None) -> EndpointRow:
        return cls(
            id=r.id,
            org_id=r.org_id,
            url=r.url,
            event_types=json.loads(r.event_types),
            description=r.description,
            enabled=bool(r.enabled),
            disabled_reason=r.disabled_reason,
            secrets=json.loads(r.secrets),
            created_at=utc(r.created_at),  # type: ignore[arg-type]
            updated_at=utc(r.updated_at),  # type: ignore[arg-type]
            failing_since=utc(failing_since),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "org_id": self.org_id,
            "url": self.url,
            "event_types": self.event_types,
            "description": self.description,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "secret_ids": [s["id"] for s in self.secrets],
            "failing_since": self.failing_since,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class WebhookView:
    """Reads for the API and CLI: endpoints, deliveries and their attempts (one org at a time)."""

    def __init__(self, engine: Engine, writer: Engine | None = None) -> None:
        self.engine = engine
        self.writer = writer or engine

    def create_tables(self) -> None:
        metadata.create_all(self.writer)

    def endpoints(self, org_id: UUID) -> list[EndpointRow]:
        stmt = (
            sa.select(endpoints, endpoint_state.c.failing_since)
            .outerjoin(endpoint_state, endpoint_state.c.endpoint_id == endpoints.c.id)
            .where(endpoints.c.org_id == str(org_id))
            .order_by(endpoints.c.created_at)
        )
        with self.engine.connect() as conn:
            return [EndpointRow.of(r, r.failing_since) for r in conn.execute(stmt)]

    def endpoint(self, org_id: UUID, endpoint_id: UUID) -> EndpointRow:
        stmt = (
            sa.select(endpoints, endpoint_state.c.failing_since)
            .outerjoin(endpoint_state, endpoint_state.c.endpoint_id == endpoints.c.id)
            .where(endpoints.c.org_id == str(org_id), endpoints.c.id == str(endpoint_id))
        )
        with self.engine.connect() as conn:
            r = conn.execute(stmt).first()
        if r is None:
            raise WebhookEndpointNotFoundError(f"webhook endpoint {endpoint_id} not found")
        return EndpointRow.of(r, r.failing_since)

    def deliveries(
        self,
        org_id: UUID,
        endpoint_id: UUID,
        *,
        status: str | None = None,
        limit: int = 100,
        before: int | None = None,
    ) -> list[dict[str, Any]]:
        """Newest first, each with its attempts (oldest first)."""
        self.endpoint(org_id, endpoint_id)
        stmt = sa.select(deliveries).where(
            deliveries.c.org_id == str(org_id), deliveries.c.endpoint_id == str(endpoint_id)
        )
        if status is not None:
            stmt = stmt.where(deliveries.c.status == status)
        if before is not None:
            stmt = stmt.where(deliveries.c.id < before)
        stmt = stmt.order_by(deliveries.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
            ids = [r.id for r in rows]
            tries: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
            if ids:
                for a in conn.execute(
                    sa.select(attempts)
                    .where(attempts.c.delivery_id.in_(ids))
                    .order_by(attempts.c.id)
                ):
                    tries[a.delivery_id].append(
                        {
                            "attempted_at": utc(a.attempted_at),
                            "status_code": a.status_code,
                            "latency_ms": round(a.latency_ms, 3),
                            "error": a.error,
                            "outcome": a.outcome,
                        }
                    )
        return [
            {
                "id": r.id,
                "endpoint_id": r.endpoint_id,
                "event_id": r.event_id,
                "event_type": r.event_type,
                "org_seq": r.org_seq,
                "status": r.status,
                "attempts": tries[r.id],
                "attempt_count": len(tries[r.id]),
                "next_attempt_at": utc(r.next_attempt_at) if r.status == "pending" else None,
                "created_at": utc(r.created_at),
                "delivered_at": utc(r.delivered_at),
                "last_status_code": r.last_status_code,
                "last_error": r.last_error,
            }
            for r in rows
        ]

    def redeliver(self, org_id: UUID, endpoint_id: UUID, delivery_id: int, now: datetime) -> None:
        """Queue a delivery again (whatever its state) with a fresh retry schedule; it goes out
        at the head of its endpoint's queue."""
        self.endpoint(org_id, endpoint_id)
        with self.writer.begin() as conn:
            updated = conn.execute(
                sa.update(deliveries)
                .where(
                    deliveries.c.id == delivery_id,
                    deliveries.c.org_id == str(org_id),
                    deliveries.c.endpoint_id == str(endpoint_id),
                )
                .values(status="pending", next_attempt_at=now, attempts=0)
            )
        if updated.rowcount == 0:
            raise WebhookDeliveryNotFoundError(f"delivery {delivery_id} not found")
