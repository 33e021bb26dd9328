"""The webhook worker: the outbox projection (its own runner) feeding the sender.

``serve`` runs it in-process by default; ``license-ledger worker webhooks`` runs it alone.
"""

from __future__ import annotations

import contextlib
from typing import Any
from uuid import UUID

from consumers.webhooks.outbox import WebhookOutbox
from consumers.webhooks.sender import SenderConfig, WebhookSender
from projections.runtime import Projection, ProjectionRunner

__all__ = ["WebhookWorker"]


class _OutboxRunner(ProjectionRunner):
    """A runner that tells the sender as soon as a batch of deliveries is committed."""

    def __init__(self, *args: Any, on_commit: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.on_commit = on_commit

    def run_projection_once(self, projection: Projection) -> int:
        n = super().run_projection_once(projection)
        if n:
            self.on_commit()
        return n


class WebhookWorker:
    def __init__(self, ledger: Any, *, config: SenderConfig | None = None) -> None:
        from ledger.domain.values import Actor, RequestContext

        s = ledger.settings
        self.ledger = ledger
        self.config = config or SenderConfig(
            timeout=s.webhook_timeout,
            schedule=tuple(s.webhook_retry_schedule),
            disable_after=s.webhook_disable_after,
            allow_loopback=s.webhook_allow_loopback,
            concurrency=s.webhook_concurrency,
            poll_interval=max(s.poll_interval, 0.05) * 10,
        )

        def disable(org_id: UUID, endpoint_id: UUID, reason: str) -> None:
            from ledger.domain.errors import IllegalTransitionError

            # IllegalTransitionError: disabled meanwhile.
            with contextlib.suppress(IllegalTransitionError):
                ledger.webhooks.disable(
                    org_id, endpoint_id, reason, actor=Actor.system(), context=RequestContext()
                )

        self.sender = WebhookSender(
            ledger.writer, ledger.reader, ledger.keyring._kek, self.config, disable=disable
        )
        self.outbox = WebhookOutbox()
        self.runner = _OutboxRunner(
            ledger.app,
            ledger.writer,
            [self.outbox],
            poll_interval=s.poll_interval,
            reader=ledger.reader,
            on_commit=self.sender.poke,
        )

    def create_tables(self) -> None:
        from ledger.storage import schema_lock

        with schema_lock(self.ledger.settings):
            self.runner.create_tables()

    def run_once(self) -> int:
        """Queue what the log holds, then work every due queue once (tests, benchmarks)."""
        self.runner.catch_up()
        return self.sender.run_once()

    def start(self) -> None:
        self.create_tables()
        if self.runner.poke not in self.ledger.app.save_listeners:
            self.ledger.app.save_listeners.append(self.runner.poke)
        self.runner.start()
        self.sender.start()

    def stop(self) -> None:
        if self.runner.poke in self.ledger.app.save_listeners:
            self.ledger.app.save_listeners.remove(self.runner.poke)
        self.runner.stop()
        self.sender.close()
