"""The webhook outbox: turns the notification log into per-endpoint delivery queues, exactly once.

A projection (run by its own ``ProjectionRunner``): each batch of events, the endpoint rows they
change, the deliveries they queue and the new tracked position are committed in one transaction.
Endpoint rows are built from ``WebhookEndpoint`` events in the same log, so an event is queued for
exactly the endpoints that were enabled and subscribed *at that point of the log*.

``org_seq`` is computed here the same way the integrity projection (``projections/stream.py``)
numbers an org's stream (every event of the org, in notification order, from 1): the outbox does
not have to wait for that projection, and the two agree by construction.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from eventsourcing.persistence import Notification
from sqlalchemy.engine import Connection

from consumers.webhooks import store
from consumers.webhooks.payload import thin_payload
from ledger.domain.webhook import WebhookEndpoint, matches
from ledger.events import event_id, event_type_from_topic
from projections.runtime import Projection
from projections.stream import org_of

__all__ = ["WebhookOutbox"]

_ENDPOINT_EVENTS = (
    WebhookEndpoint.Created,
    WebhookEndpoint.Updated,
    WebhookEndpoint.SecretRotated,
    WebhookEndpoint.Disabled,
    WebhookEndpoint.Enabled,
)


class WebhookOutbox(Projection):
    name = "webhooks"
    metadata = store.metadata

    def __init__(self) -> None:
        self._seqs: dict[str, int] = {}
        self._known_seq: set[str] = set()
        self._endpoints: dict[str, list[dict[str, Any]]] = {}
        self.queued = 0

    def clear(self, conn: Connection) -> None:
        for table in (
            store.attempts,
            store.deliveries,
            store.endpoint_state,
            store.org_seq,
            store.endpoints,
        ):
            conn.execute(sa.delete(table))
        self.discard()

    def discard(self) -> None:
        self._seqs.clear()
        self._known_seq.clear()
        self._endpoints.clear()

    def _next_seq(self, conn: Connection, org: str) -> int:
        if org not in self._seqs:
            row = conn.execute(sa.select(store.org_seq.c.seq).where(store.org_seq.c.org_id == org))
            seq = row.scalar()
            if seq is not None:
                self._known_seq.add(org)
            self._seqs[org] = int(seq or 0)
        self._seqs[org] += 1
        return self._seqs[org]

    def _org_endpoints(self, conn: Connection, org: str) -> list[dict[str, Any]]:
        if org not in self._endpoints:
            rows = conn.execute(
                sa.select(store.endpoints.c.id, store.endpoints.c.event_types)
                .where(store.endpoints.c.org_id == org, store.endpoints.c.enabled.is_(True))
                .order_by(store.endpoints.c.created_at)
            )
            self._endpoints[org] = [
                {"id": r.id, "event_types": json.loads(r.event_types)} for r in rows
            ]
        return self._endpoints[org]

    def handle(self, conn: Connection, event: Any, notification: Notification) -> None:
        org = str(org_of(event))
        seq = self._next_seq(conn, org)
        if isinstance(event, _ENDPOINT_EVENTS):
            self._endpoint_changed(conn, org, event)
            return  # endpoint changes are not themselves delivered
        etype = event_type_from_topic(notification.topic)
        targets = [
            e["id"] for e in self._org_endpoints(conn, org) if matches(e["event_types"], etype)
        ]
        if not targets:
            return
        body = thin_payload(
            event,
            org_id=org,
            org_seq=seq,
            originator_id=notification.originator_id,
            version=notification.originator_version,
            topic=notification.topic,
        ).decode("utf-8")
        now = datetime.now(UTC)
        eid = str(event_id(notification.originator_id, notification.originator_version))
        conn.execute(
            sa.insert(store.deliveries),
            [
                {
                    "endpoint_id": t,
                    "org_id": org,
                    "event_id": eid,
                    "event_type": etype,
                    "org_seq": seq,
                    "notification_id": notification.id,
                    "payload": body,
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                    "delivered_at": None,
                    "last_status_code": None,
                    "last_error": None,
                }
                for t in targets
            ],
        )
        self.queued += len(targets)

    def _endpoint_changed(self, conn: Connection, org: str, event: Any) -> None:
        eid = str(event.originator_id)
        t = store.endpoints
        now = event.timestamp
        if isinstance(event, WebhookEndpoint.Created):
            conn.execute(
                sa.insert(t).values(
                    id=eid,
                    org_id=org,
                    url=event.url,
                    event_types=json.dumps(event.event_types),
                    description=event.description,
                    enabled=event.enabled,
                    disabled_reason=None if event.enabled else "created disabled",
                    secrets=json.dumps([dict(event.secret, expires_at=None)]),
                    created_at=now,
                    updated_at=now,
                )
            )
            conn.execute(sa.insert(store.endpoint_state).values(endpoint_id=eid))
        elif isinstance(event, WebhookEndpoint.Updated):
            conn.execute(
                sa.update(t)
                .where(t.c.id == eid)
                .values(
                    url=event.url,
                    event_types=json.dumps(event.event_types),
                    description=event.description,
                    updated_at=now,
                )
            )
        elif isinstance(event, WebhookEndpoint.SecretRotated):
            from ledger.domain.webhook import rotated

            current = conn.execute(sa.select(t.c.secrets).where(t.c.id == eid)).scalar_one()
            secrets = rotated(json.loads(current), event.secret, event.previous_expires_at)
            conn.execute(
                sa.update(t)
                .where(t.c.id == eid)
                .values(secrets=json.dumps(secrets), updated_at=now)
            )
        elif isinstance(event, WebhookEndpoint.Disabled):
            conn.execute(
                sa.update(t)
                .where(t.c.id == eid)
                .values(enabled=False, disabled_reason=event.reason, updated_at=now)
            )
        elif isinstance(event, WebhookEndpoint.Enabled):
            conn.execute(
                sa.update(t)
                .where(t.c.id == eid)
                .values(enabled=True, disabled_reason=None, updated_at=now)
            )
            # A fresh start: the continuous-failure clock restarts when an operator re-enables.
            conn.execute(
                sa.update(store.endpoint_state)
                .where(store.endpoint_state.c.endpoint_id == eid)
                .values(failing_since=None)
            )
        self._endpoints.pop(org, None)

    def after_batch(self, conn: Connection) -> None:
        for org, seq in self._seqs.items():
            if org in self._known_seq:
                conn.execute(
                    sa.update(store.org_seq).where(store.org_seq.c.org_id == org).values(seq=seq)
                )
            else:
                conn.execute(sa.insert(store.org_seq).values(org_id=org, seq=seq))
        # Caches hold only this batch: another process may run the next one.
        self.discard()
