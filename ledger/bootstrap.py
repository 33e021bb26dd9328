"""The composition root: settings in, a wired ledger out. Nothing is built at import time."""

from __future__ import annotations

import getpass
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic
from sqlalchemy.engine import Engine

from ledger.application import LedgerApplication
from ledger.crypto import aead
from ledger.crypto.kek import KekSet, kek_set_from_env, load_kek_set_file
from ledger.crypto.keystore import KeyStore
from ledger.crypto.apikeys import generate_api_key
from ledger.domain.apikey import ApiKey
from ledger.domain.organization import Organization
from ledger.domain.values import Actor, RequestContext
from ledger.keyring import SigningKeyring
from ledger.settings import Settings
from ledger.storage import create_store_engines, event_store_env, schema_lock
from ledger.recording import GroupCommitRecorder
from ledger.validating import ValidationService
from projections.audit import AuditProjection, AuditView
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

    def start_maintenance(self, every_seconds: float = 3600.0) -> None:
        """Periodic tasks in a daemon thread: audit retention."""
        import logging
        import threading

        stop = self.extras.setdefault("maintenance_stop", threading.Event())

        def loop() -> None:
            while not stop.wait(every_seconds):
                try:
                    self.prune_audit()
                except Exception:
                    logging.getLogger(__name__).exception("audit prune failed")

        threading.Thread(target=loop, name="maintenance", daemon=True).start()

    def close(self) -> None:
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


def _listen_for_writes(ledger: Ledger) -> Any:
    """PostgreSQL: wake the projections on the store's NOTIFY, so that a worker in another process
    than the writer follows with low latency instead of waiting for its next poll."""
    import logging
    import threading

    import psycopg
    from psycopg import sql

    channel = getattr(ledger.app.recorder, "channel_name", None)
    url = ledger.settings.database_url
    stop = threading.Event()
    if channel is None or url is None:
        return stop

    def run() -> None:
        while not stop.is_set():
            try:
                with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
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


def projections() -> list[Projection]:
    return [LicenseProjection(), StreamProjection(), AuditProjection()]

PROJECTION_NAMES = ("licenses", "stream", "audit")


def bootstrap(settings: Settings | None = None) -> Ledger:
    settings = settings or Settings()
    writer, reader = create_store_engines(settings)
    keks = load_kek_set(settings)
    keyring = SigningKeyring(writer, keks.legacy(), keks=keks)
    keystore = KeyStore(writer, keks, reader=reader)
    with schema_lock(settings):
        keyring.create_tables()
        keystore.create_tables()
        app = LedgerApplication(
            event_store_env(settings),
            keyring=keyring,
            keystore=keystore,
            encrypt=settings.encryption,
        )
        runner = ProjectionRunner(
            app, writer, projections(), poll_interval=settings.poll_interval, reader=reader
        )
        runner.create_tables()
    licenses = LicenseView(reader)
    recorder = GroupCommitRecorder(app)
    return Ledger(
        settings=settings,
        app=app,
        keyring=keyring,
        writer=writer,
        reader=reader,
        runner=runner,
        licenses=licenses,
        stream=StreamView(reader),
        audit=AuditView(reader),
        recorder=recorder,
        validator=ValidationService(licenses, recorder),
        keystore=keystore,
    )
