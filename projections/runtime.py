"""The projection runtime: follow the notification log, commit view rows with the position.

Each projection keeps its own position in ``projection_tracking``. A batch of events and the new
position are written in one transaction, so a crash anywhere leaves the view exactly at a recorded
position: nothing lost, nothing applied twice. SQLite has no ``subscribe()`` in eventsourcing 9.5,
so the runner polls, and is woken early by the application's save listener when in the same process.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

import sqlalchemy as sa
from eventsourcing.application import Application
from eventsourcing.persistence import Notification, StoredEvent
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

metadata = sa.MetaData()

tracking = sa.Table(
    "projection_tracking",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("position", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("event_time", sa.DateTime(timezone=True), nullable=True),
)

Handler = Callable[[Any, Connection, Any, Any], None]


def handles(*event_classes: type) -> Callable[[Handler], Handler]:
    """Mark a projection method as the handler of the given event classes."""

    def mark(fn: Handler) -> Handler:
        fn._handles = event_classes  # type: ignore[attr-defined]
        return fn

    return mark


class Projection(ABC):
    """One read model: tables, and a handler per event it cares about."""

    name: ClassVar[str]
    metadata: ClassVar[sa.MetaData]
    _handlers: ClassVar[dict[type, Handler]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handlers = {}
        for attr in dir(cls):
            fn = getattr(cls, attr, None)
            for ev_cls in getattr(fn, "_handles", ()):
                cls._handlers[ev_cls] = fn  # type: ignore[assignment]

    #: Projections that handle only some event types read only those (``True``); the stream and
    #: audit projections handle every event and set this to ``False``.
    filter_topics: ClassVar[bool] = True

    def topics(self) -> list[str]:
        from eventsourcing.utils import get_topic

        return [get_topic(c) for c in self._handlers] if self.filter_topics else []

    def handle(self, conn: Connection, event: Any, notification: Notification) -> None:
        fn = self._handlers.get(type(event))
        if fn is not None:
            fn(self, conn, event, notification)

    def create_tables(self, engine: Engine) -> None:
        self.metadata.create_all(engine)

    @abstractmethod
    def clear(self, conn: Connection) -> None:
        """Delete every row of this projection's tables (before a rebuild)."""

    def after_batch(self, conn: Connection) -> None:  # noqa: B027
        """Hook run inside the batch transaction, after its events."""

    def discard(self) -> None:  # noqa: B027
        """Hook run when a batch's transaction rolled back: drop any in-memory state of it."""


@dataclass(frozen=True)
class Status:
    name: str
    position: int
    head: int
    lag_events: int
    lag_seconds: float
    updated_at: datetime | None


class ProjectionRunner:
    """Runs projections against an application's notification log."""

    def __init__(
        self,
        app: Application[Any],
        engine: Engine,
        projections: Sequence[Projection],
        *,
        batch_size: int = 1000,
        poll_interval: float = 0.05,
        reader: Engine | None = None,
    ) -> None:
        self.app = app
        self.engine = engine
        self.reader = reader or engine  # status reads must never queue behind the write lock
        self.projections = list(projections)
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._positions: dict[str, int] = {}
        self._thread: threading.Thread | None = None
        self.errors = 0

    def create_tables(self) -> None:
        metadata.create_all(self.engine)
        for p in self.projections:
            p.create_tables(self.engine)
            self._ensure_tracking_row(p.name)

    def _ensure_tracking_row(self, name: str) -> None:
        # The row must exist so that a batch can lock it (SELECT ... FOR UPDATE on PostgreSQL).
        try:
            with self.engine.begin() as conn:
                if conn.execute(sa.select(tracking.c.name).where(tracking.c.name == name)).first():
                    return
                conn.execute(
                    sa.insert(tracking).values(
                        name=name, position=0, updated_at=datetime.now(UTC), event_time=None
                    )
                )
        except sa.exc.IntegrityError:
            pass  # another process created it first

    def by_name(self, name: str) -> Projection:
        for p in self.projections:
            if p.name == name:
                return p
        raise KeyError(name)

    # ------------------------------------------------------------ positions

    def position(self, name: str) -> int:
        with self.reader.connect() as conn:
            return self._read_position(conn, name)

    @staticmethod
    def _read_position(conn: Connection, name: str, *, lock: bool = False) -> int:
        stmt = sa.select(tracking.c.position).where(tracking.c.name == name)
        if lock:
            stmt = stmt.with_for_update()
        row = conn.execute(stmt).first()
        return int(row.position) if row is not None else 0

    @staticmethod
    def _write_position(conn: Connection, name: str, position: int, event_time: Any) -> None:
        now = datetime.now(UTC)
        updated = conn.execute(
            sa.update(tracking)
            .where(tracking.c.name == name)
            .values(position=position, updated_at=now, event_time=event_time)
        )
        if updated.rowcount == 0:
            conn.execute(
                sa.insert(tracking).values(
                    name=name, position=position, updated_at=now, event_time=event_time
                )
            )

    def head(self) -> int:
        return int(self.app.recorder.max_notification_id() or 0)

    # ------------------------------------------------------------ processing

    def _events(
        self, start: int, limit: int, stop: int | None = None, topics: Sequence[str] = ()
    ) -> Iterator[tuple[Notification, Any]]:
        for n in self.app.recorder.select_notifications(start, limit, stop=stop, topics=topics):
            stored = StoredEvent(
                originator_id=n.originator_id,
                originator_version=n.originator_version,
                topic=n.topic,
                state=n.state,
            )
            yield n, self.app.mapper.to_domain_event(stored)

    def run_projection_once(self, projection: Projection) -> int:
        """Apply the next batch to one projection; returns how many events it consumed."""
        try:
            return self._apply_batch(projection)
        except BaseException:
            projection.discard()
            raise

    def _apply_batch(self, projection: Projection) -> int:
        with self.engine.begin() as conn:
            # Locked: two runners on one projection serialise here instead of applying twice.
            position = self._read_position(conn, projection.name, lock=True)
            topics = projection.topics()
            if topics:
                # Read only the events this projection handles, over a window of the log; ids
                # commit in order (SQLite: one writer; PostgreSQL: the recorder locks the table),
                # so everything up to the head read first is final.
                head = self.head()
                if head <= position:
                    return 0
                stop = min(head, position + self.batch_size * 20)
                events = list(self._events(position + 1, self.batch_size, stop, topics))
                last_id = events[-1][0].id if len(events) == self.batch_size else stop
            else:
                events = list(self._events(position + 1, self.batch_size))
                if not events:
                    return 0
                last_id = events[-1][0].id
            for n, ev in events:
                projection.handle(conn, ev, n)
            projection.after_batch(conn)
            event_time = events[-1][1].timestamp if events else None
            self._write_position(conn, projection.name, last_id, event_time)
        with self._progress:
            self._positions[projection.name] = last_id
            self._progress.notify_all()
        return max(1, last_id - position)

    def run_once(self) -> int:
        return sum(self.run_projection_once(p) for p in self.projections)

    def catch_up(self, progress: Callable[[str, int, int], None] | None = None) -> int:
        total = 0
        for p in self.projections:
            head = self.head()
            while True:
                n = self.run_projection_once(p)
                total += n
                if progress is not None:
                    progress(p.name, self.position(p.name), head)
                if n == 0:
                    break
        return total

    def rebuild(self, name: str, progress: Callable[[str, int, int], None] | None = None) -> int:
        """Drop a projection's rows and position, then replay the whole log into it."""
        projection = self.by_name(name)
        with self.engine.begin() as conn:
            projection.clear(conn)
            self._write_position(conn, name, 0, None)
        head = self.head()
        total = 0
        while (n := self.run_projection_once(projection)) > 0:
            total += n
            if progress is not None:
                progress(name, self.position(name), head)
        return total

    # ------------------------------------------------------------ background loop

    def poke(self, _notification_id: int = 0) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="projections", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:
                self.errors += 1
                log.exception("projection batch failed; retrying")
                busy = 0
                self._stop.wait(1.0)
            if not busy:
                self._wake.wait(self.poll_interval)
                self._wake.clear()

    def wait_for(self, notification_id: int, timeout: float) -> bool:
        """Block until every projection has processed ``notification_id`` (or timeout)."""
        if notification_id <= 0:
            return True
        deadline = time.monotonic() + timeout
        self.poke()
        with self._progress:
            while True:
                if all(self._positions.get(p.name, 0) >= notification_id for p in self.projections):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(min(remaining, self.poll_interval))
                if self._thread is None:
                    return False

    def status(self) -> list[Status]:
        head = self.head()
        out = []
        with self.reader.connect() as conn:
            rows = {r.name: r for r in conn.execute(sa.select(tracking)).all()}
        now = datetime.now(UTC)
        head_time = self._event_time(head)
        for p in self.projections:
            r = rows.get(p.name)
            pos = int(r.position) if r is not None else 0
            lag_s = 0.0
            if pos < head and head_time is not None:
                ev_time = r.event_time if r is not None else None
                if ev_time is not None and ev_time.tzinfo is None:
                    ev_time = ev_time.replace(tzinfo=UTC)
                lag_s = (now - (ev_time or head_time)).total_seconds() if pos else 0.0
            updated = r.updated_at if r is not None else None
            out.append(Status(p.name, pos, head, head - pos, max(0.0, lag_s), updated))
        return out

    def _event_time(self, nid: int) -> datetime | None:
        if nid <= 0:
            return None
        for _, ev in self._events(nid, 1):
            return ev.timestamp  # type: ignore[no-any-return]
        return None
