"""The composition root: settings in, a wired ledger out. Nothing is built at import time."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic
from sqlalchemy.engine import Engine

from consumers.webhooks.store import WebhookView
from ledger.application import LedgerApplication
from ledger.auditlog import AuditLog
from ledger.crypto import aead
from ledger.crypto.apikeys import generate_api_key
from ledger.crypto.kek import KekSet, kek_set_from_env, load_kek_set_file
from ledger.crypto.keystore import KeyStore
from ledger.domain.apikey import ApiKey
from ledger.domain.organization import Organization
from ledger.domain.values import Actor, RequestContext
from ledger.keyring import SigningKeyring
from ledger.logkey import LogSigner
from ledger.recording import GroupCommitRecorder
from ledger.settings import Settings
from ledger.storage import create_store_engines, event_store_env, schema_lock
from ledger.tenancy import install_row_security
from ledger.validating import ValidationService
from projections.audit import AuditProjection, AuditView
from projections.checkpoints import Checkpointer, CheckpointView
from projections.licenses import LicenseProjection, LicenseView
from projections.runtime import Projection, ProjectionRunner
from projections.stream import StreamProjection, StreamView


def kek_file(settings: Settings) -> Path:
    return settings.data_dir / "kek.key"


def load_kek_set(settings: Settings) -> KekSet:
    """The KEKs: ``LEDGER_KEK`` (one or more, last active), else the 0600 key file in data_dir."""
    if settings.kek is not None:
        return kek_set_from_env(settings.kek.get_secret_value())
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return load_kek_set_file(kek_file(settings))


def load_kek(settings: Settings) -> aead.KeyEncryptionKey:
    return load_kek_set(settings).legacy()


@dataclass
class Ledger:
    """Everything a process needs, built once from settings."""

    settings: Settings
    app: LedgerApplication
    keyring: SigningKeyring
    writer: Engine
    reader: Engine
    runner: ProjectionRunner
    licenses: LicenseView
    stream: StreamView
    audit: AuditView
    recorder: GroupCommitRecorder
    validator: ValidationService
    keystore: KeyStore | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    auditlog: AuditLog = field(default=None)  # type: ignore[assignment]  # set by bootstrap

    def start_workers(self) -> None:
        if self.runner.poke not in self.app.save_listeners:
            self.app.save_listeners.append(self.runner.poke)
        self.runner.start()
        if self.settings.is_postgres and "listener" not in self.extras:
            self.extras["listener"] = _listen_for_writes(self)

    def prune_audit(self, days: int | None = None) -> int:
        """Drop validation rows older than the retention period from the audit view."""
        from datetime import UTC, datetime, timedelta

        cutoff = datetime.now(UTC) - timedelta(days=days or self.settings.audit_retention_days)
        return self.audit.prune_validations(cutoff, writer=self.writer)

    def sign_checkpoints(self) -> int:
        """Sign a checkpoint for every org whose log grew since its last one."""
        return self.auditlog.checkpointer.sign_pending(self.writer)

    def start_maintenance(self, every_seconds: float = 3600.0) -> None:
        """Periodic tasks in daemon threads: audit retention, audit-log checkpoints."""
        import logging
        import threading

        stop = self.extras.setdefault("maintenance_stop", threading.Event())

        def loop() -> None:
            while not stop.wait(every_seconds):
                try:
                    self.prune_audit()
                except Exception:
                    logging.getLogger(__name__).exception("audit prune failed")

        def checkpoints() -> None:
            while not stop.wait(self.settings.checkpoint_every_seconds):
                try:
                    self.sign_checkpoints()
                except Exception:
                    logging.getLogger(__name__).exception("checkpoint signing failed")

        threading.Thread(target=loop, name="maintenance", daemon=True).start()
        threading.Thread(target=checkpoints, name="checkpoints", daemon=True).start()

    # ---------------------------------------------------------------- webhooks and NATS

    @property
    def webhooks(self) -> Any:
        """Webhook endpoint use cases (``ledger.webhooks.WebhookEndpoints``)."""
        if "webhooks" not in self.extras:
            from datetime import timedelta

            from ledger.webhooks import WebhookEndpoints

            self.extras["webhooks"] = WebhookEndpoints(
                self.app,
                self.keyring._kek,
                allow_loopback=self.settings.webhook_allow_loopback,
                overlap=timedelta(seconds=self.settings.webhook_secret_overlap),
            )
        return self.extras["webhooks"]

    @property
    def webhook_view(self) -> WebhookView:
        return WebhookView(self.reader, self.writer)

    def webhook_worker(self) -> Any:
        """The webhook outbox and sender (``consumers.webhooks.worker.WebhookWorker``)."""
        if "webhook_worker" not in self.extras:
            from consumers.webhooks.worker import WebhookWorker

            self.extras["webhook_worker"] = WebhookWorker(self)
        return self.extras["webhook_worker"]

    def start_consumers(self, *, webhooks: bool = True, nats: bool | None = None) -> None:
        """Run the webhook worker and (when a NATS URL is set) the NATS publisher in-process."""
        started = self.extras.setdefault("consumers", [])
        if webhooks and not started:
            worker = self.webhook_worker()
            worker.start()
            started.append(worker)
        if (self.settings.nats_url if nats is None else nats) and "nats" not in self.extras:
            from consumers.nats.publisher import NatsPublisher

            publisher = NatsPublisher(self)
            publisher.start()
            self.extras["nats"] = publisher
            started.append(publisher)

    def stop_consumers(self) -> None:
        for consumer in reversed(self.extras.pop("consumers", [])):
            consumer.stop()
        self.extras.pop("nats", None)

    def close(self) -> None:
        self.stop_consumers()
        for name in ("maintenance_stop", "listener"):
            if name in self.extras:
                self.extras[name].set()
        self.recorder.stop()
        self.runner.stop()
        self.app.close()
        self.writer.dispose()
        self.reader.dispose()

    # ---------------------------------------------------------------- first run

    def create_api_key(
        self,
        org_id: UUID,
        *,
        name: str,
        permissions: list[str],
        actor: Actor,
        context: RequestContext | None = None,
        **options: Any,
    ) -> tuple[ApiKey, str]:
        check_api_key_options(options)
        generated = generate_api_key(self.settings.api_key_env)
        key = self.app.create_api_key(
            org_id,
            key_id=generated.key_id,
            secret_hash=generated.secret_hash,
            name=name,
            permissions=permissions,
            actor=actor,
            context=context or RequestContext.none(),
            **options,
        )
        return key, generated.token

    def rotate_api_key(
        self,
        org_id: UUID,
        key_id: str,
        *,
        actor: Actor,
        context: RequestContext | None = None,
        grace_seconds: int | None = None,
    ) -> tuple[ApiKey, ApiKey, str]:
        """A successor for ``key_id`` (its secret returned once); the old key works for the grace
        (default ``settings.api_key_rotation_grace_seconds``)."""
        from datetime import timedelta

        grace = (
            self.settings.api_key_rotation_grace_seconds if grace_seconds is None else grace_seconds
        )
        generated = generate_api_key(self.settings.api_key_env)
        old, new = self.app.rotate_api_key(
            org_id,
            key_id,
            new_key_id=generated.key_id,
            new_secret_hash=generated.secret_hash,
            grace=timedelta(seconds=grace),
            actor=actor,
            context=context or RequestContext.none(),
        )
        return old, new, generated.token

    def has_organizations(self) -> bool:
        topic = get_topic(Organization.Created)
        return bool(self.app.recorder.select_notifications(1, 1, topics=[topic]))

    def ensure_first_org(self, name: str = "Default") -> tuple[Organization, str] | None:
        """On a fresh store, create a first org and its admin API key (shown once)."""
        if self.has_organizations():
            return None
        actor = cli_actor()
        org = self.app.create_organization(name, actor, RequestContext.none())
        _, token = self.create_api_key(
            org.id, name="first admin key", permissions=["admin"], actor=actor
        )
        return org, token


def check_api_key_options(options: dict[str, Any]) -> None:
    """Refuse a rate limit or allowlist the API could not enforce (InvalidInputError)."""
    from ledger.api.ipallow import IpAllowlist
    from ledger.api.ratelimit import RateLimit
    from ledger.domain.errors import InvalidInputError

    try:
        if options.get("rate_limit"):
            RateLimit.parse(options["rate_limit"])
        IpAllowlist(options.get("allowed_cidrs") or [])
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    expires_at = options.get("expires_at")
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInputError("expires_at must carry a time zone")


def _listen_for_writes(ledger: Ledger) -> Any:
    """PostgreSQL: wake the projections on the store's NOTIFY, so that a worker in another process
    than the writer follows with low latency instead of waiting for its next poll."""
    import logging
    import threading

    import psycopg

    from ledger import sql

    channel = getattr(ledger.app.recorder, "channel_name", None)
    url = ledger.settings.database_url
    stop = threading.Event()
    if channel is None or url is None:
        return stop

    def run() -> None:
        while not stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                    sql.listen(conn, channel)
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            ledger.runner.poke()
            except Exception:
                logging.getLogger(__name__).warning("LISTEN failed; polling only", exc_info=True)
                stop.wait(5.0)

    threading.Thread(target=run, name="pg-listen", daemon=True).start()
    return stop


def cli_actor() -> Actor:
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "unknown"
    return Actor(kind="cli", id=user)


def projections(checkpointer: Checkpointer | None = None) -> list[Projection]:
    return [LicenseProjection(), StreamProjection(checkpointer), AuditProjection()]


PROJECTION_NAMES = ("licenses", "stream", "audit")


def bootstrap(settings: Settings | None = None) -> Ledger:
    settings = settings or Settings()
    writer, reader = create_store_engines(settings)
    keks = load_kek_set(settings)
    kek = keks.legacy()
    keyring = SigningKeyring(writer, kek, keks=keks)
    keystore = KeyStore(writer, keks, reader=reader)
    log_signer = LogSigner(writer, kek, name=settings.log_name, keks=keks)
    checkpointer = Checkpointer(log_signer, every_events=settings.checkpoint_every_events)
    with schema_lock(settings):
        keyring.create_tables()
        keystore.create_tables()
        log_signer.create_tables()
        log_signer.ensure()
        app = LedgerApplication(
            event_store_env(settings),
            keyring=keyring,
            keystore=keystore,
            encrypt=settings.encryption,
        )
        runner = ProjectionRunner(
            app,
            writer,
            projections(checkpointer),
            poll_interval=settings.poll_interval,
            reader=reader,
        )
        runner.create_tables()
        if settings.is_postgres:
            install_row_security(writer)  # tenancy's second layer (docs/tenancy.md)
        WebhookView(reader, writer).create_tables()
    licenses = LicenseView(reader)
    stream = StreamView(reader)
    recorder = GroupCommitRecorder(app)
    return Ledger(
        settings=settings,
        app=app,
        keyring=keyring,
        writer=writer,
        reader=reader,
        runner=runner,
        licenses=licenses,
        stream=stream,
        audit=AuditView(reader),
        recorder=recorder,
        validator=ValidationService(licenses, recorder),
        auditlog=AuditLog(log_signer, checkpointer, CheckpointView(reader), stream),
        keystore=keystore,
    )
