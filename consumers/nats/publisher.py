"""Publish every ledger event to NATS JetStream; advance the tracked position only after the acks.

Stream ``LEDGER`` on ``ledger.>``; an event goes to ``ledger.<org>.<aggregate>.<event>`` (its
event type's dot is a subject separator, so ``ledger.*.license.>`` selects license events), each
token limited to ``[A-Za-z0-9_-]``. ``Nats-Msg-Id`` is the event id, so JetStream drops a
re-publish within the stream's duplicate window: after a crash or an outage the publisher simply
publishes again from its last acknowledged position, and nothing is lost or doubled. The body is
the same thin JSON as a webhook delivery (with ``org_seq``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from eventsourcing.persistence import StoredEvent
from sqlalchemy.engine import Connection

from consumers.webhooks.payload import thin_payload
from ledger.events import event_id, event_type_from_topic
from projections.runtime import ProjectionRunner
from projections.stream import org_of

log = logging.getLogger(__name__)

__all__ = ["STREAM", "NatsPublisher", "ensure_stream", "subject_for"]

STREAM = "LEDGER"
SUBJECTS = "ledger.>"
TRACKING_NAME = "nats"
DUPLICATE_WINDOW = 6 * 3600.0  # seconds JetStream remembers message ids
_BAD = re.compile(r"[^A-Za-z0-9_-]")

metadata = sa.MetaData()
nats_org_seq = sa.Table(
    "nats_org_seq",
    metadata,
    sa.Column("org_id", sa.String(36), primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
)


_type_of = lru_cache(maxsize=1024)(event_type_from_topic)


def token(value: str) -> str:
    return _BAD.sub("_", value) or "_"


def subject_for(org_id: str, event_type: str) -> str:
    return ".".join(["ledger", token(org_id), *(token(p) for p in event_type.split("."))])


async def ensure_stream(js: Any) -> None:
    """Create stream ``LEDGER`` on ``ledger.>``, or bring an existing one to this configuration."""
    from nats.js.api import StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    config = StreamConfig(
        name=STREAM,
        subjects=[SUBJECTS],
        storage=StorageType.FILE,
        duplicate_window=DUPLICATE_WINDOW,
    )
    try:
        await js.stream_info(STREAM)
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)


_subject = lru_cache(maxsize=65536)(lambda org, etype: subject_for(org, etype))


class NatsPublisher:
    """A thread running an asyncio loop: connect, ensure the stream, publish batches, repeat."""

    def __init__(self, ledger: Any, *, url: str | None = None, batch_size: int = 1000) -> None:
        self.ledger = ledger
        self.url = url or ledger.settings.nats_url
        if not self.url:
            raise ValueError("no NATS URL: set LEDGER_NATS_URL or pass --nats-url")
        self.batch_size = batch_size
        self.poll_interval = max(ledger.settings.poll_interval, 0.01)
        self._stop = threading.Event()
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.published = 0
        self.errors = 0
        self.connected = threading.Event()

    # ------------------------------------------------------------ tracking

    def create_tables(self) -> None:
        from ledger.storage import schema_lock

        with schema_lock(self.ledger.settings):
            metadata.create_all(self.ledger.writer)

    def position(self) -> int:
        with self.ledger.reader.connect() as conn:
            return ProjectionRunner._read_position(conn, TRACKING_NAME)

    def _load_seqs(self, conn: Connection, orgs: set[str]) -> dict[str, int]:
        rows = conn.execute(sa.select(nats_org_seq).where(nats_org_seq.c.org_id.in_(orgs)))
        return {r.org_id: int(r.seq) for r in rows}

    def _messages(
        self, start: int
    ) -> tuple[list[tuple[str, bytes, str]], int, Any, dict[str, int], set[str]]:
        app = self.ledger.app
        notes = app.recorder.select_notifications(start, self.batch_size)
        if not notes:
            return [], 0, None, {}, set()
        decoded = []
        for n in notes:
            ev = app.mapper.to_domain_event(
                StoredEvent(
                    originator_id=n.originator_id,
                    originator_version=n.originator_version,
                    topic=n.topic,
                    state=n.state,
                )
            )
            decoded.append((n, ev, str(org_of(ev))))
        with self.ledger.reader.connect() as conn:
            known = self._load_seqs(conn, {org for _, _, org in decoded})
        seqs = dict(known)
        out = []
        for n, ev, org in decoded:
            seqs[org] = seqs.get(org, 0) + 1
            etype = _type_of(n.topic)
            eid = str(event_id(n.originator_id, n.originator_version))
            body = thin_payload(
                ev,
                org_id=org,
                org_seq=seqs[org],
                originator_id=n.originator_id,
                version=n.originator_version,
                topic=n.topic,
                eid=eid,
            )
            out.append((_subject(org, etype), body, eid))
        return out, notes[-1].id, decoded[-1][1].timestamp, seqs, set(known)

    def _commit(self, last_id: int, event_time: Any, seqs: dict[str, int], known: set[str]) -> None:
        with self.ledger.writer.begin() as conn:
            ProjectionRunner._read_position(conn, TRACKING_NAME, lock=True)
            for org, seq in seqs.items():
                if org in known:
                    conn.execute(
                        sa.update(nats_org_seq).where(nats_org_seq.c.org_id == org).values(seq=seq)
                    )
                else:
                    conn.execute(sa.insert(nats_org_seq).values(org_id=org, seq=seq))
            ProjectionRunner._write_position(conn, TRACKING_NAME, last_id, event_time)

    # ------------------------------------------------------------ publishing

    async def publish_batch(self, js: Any) -> int:
        """Publish the next batch and wait for every ack; then advance. Returns events published."""
        start = self.position() + 1
        msgs, last_id, event_time, seqs, known = self._messages(start)
        if not msgs:
            return 0
        await publish_all(js, msgs)
        self._commit(last_id, event_time, seqs, known)
        self.published += len(msgs)
        return len(msgs)

    async def run(self) -> None:
        import nats

        self._wake = asyncio.Event()
        while not self._stop.is_set():
            nc = None
            try:
                nc = await nats.connect(
                    self.url,
                    name="license-ledger-publisher",
                    connect_timeout=2,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=0.5,
                )
                js = nc.jetstream(timeout=5)
                await ensure_stream(js)
                self.connected.set()
                while not self._stop.is_set():
                    if await self.publish_batch(js) == 0:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._wake.wait(), self.poll_interval)
                        self._wake.clear()
            except Exception as exc:
                # NATS down, timeouts: wait and publish again from the position
                self.errors += 1
                self.connected.clear()
                log.warning("NATS publisher: %s; retrying", exc or type(exc).__name__)
                await asyncio.sleep(0.5)
            finally:
                if nc is not None:
                    # Best effort: the connection may already be broken.
                    with contextlib.suppress(Exception):
                        await nc.close()

    def poke(self, *_: Any) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            loop.call_soon_threadsafe(wake.set)

    def start(self) -> None:
        if self._thread is not None:
            return
        self.create_tables()
        self._stop.clear()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_thread, name="nats-publisher", daemon=True)
        self._thread.start()
        if self.poke not in self.ledger.app.save_listeners:
            self.ledger.app.save_listeners.append(self.poke)

    def _run_thread(self) -> None:
        assert self._loop is not None
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.run())
        finally:
            self._loop.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self.poke in self.ledger.app.save_listeners:
            self.ledger.app.save_listeners.remove(self.poke)
        self._stop.set()
        self.poke()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
            self._loop = None


async def publish_all(
    js: Any, msgs: Sequence[tuple[str, bytes, str]], *, ack_timeout: float = 10.0
) -> None:
    """Publish with acks pipelined; raise unless every message is acknowledged in time."""
    futures = [
        await js.publish_async(
            subject, body, stream=STREAM, headers={"Nats-Msg-Id": msg_id}, wait_stall=ack_timeout
        )
        for subject, body, msg_id in msgs
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*futures), ack_timeout)
    finally:
        for f in futures:
            if not f.done():
                f.cancel()
