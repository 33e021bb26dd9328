"""Group commit for validation records: many waiting requests, one transaction.

``record()`` queues a record and blocks until the transaction holding it has committed, so a
validation is answered only once its record is durable. A single writer thread drains whatever has
queued while the previous transaction was committing, so batches grow with load and no request
waits for a timer.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from ledger.domain.errors import UnavailableError

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    record: Any
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class GroupCommitRecorder:
    def __init__(self, app: Any, *, max_batch: int = 1000, timeout: float = 10.0) -> None:
        self.app = app
        self.max_batch = max_batch
        self.timeout = timeout
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.records = 0

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="validation-records", daemon=True
                )
                self._thread.start()

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(30)

    def record(self, record: Any) -> None:
        """Block until ``record`` is committed; raise UnavailableError if it could not be."""
        if self._thread is None:
            self.start()
        pending = _Pending(record)
        self._queue.put(pending)
        if not pending.done.wait(self.timeout):
            raise UnavailableError("the validation could not be recorded in time; try again")
        if pending.error is not None:
            raise UnavailableError("the validation could not be recorded; try again")

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Pending]) -> None:
        try:
            self.app.save(*(p.record for p in batch))
        except Exception as exc:
            log.exception("could not record %d validation(s)", len(batch))
            for p in batch:
                p.error = exc
        else:
            self.batches += 1
            self.records += len(batch)
        for p in batch:
            p.done.set()
