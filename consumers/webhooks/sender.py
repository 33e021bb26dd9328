"""The sender: works each endpoint's delivery queue in order, signing every attempt afresh.

Per endpoint, only the oldest pending delivery (the head of the queue) is ever attempted, so an
endpoint receives its events in log order; a delivery that is waiting for a retry holds back the
ones behind it. A delivery that exhausts the retry schedule is marked ``failed`` and the queue moves
on (it can be sent again by hand). Endpoints are worked in parallel, each under a lease in
``webhook_endpoint_state`` so that two sender processes never work the same queue.

Outcomes of an attempt: 2xx delivered; 410 Gone disables the endpoint; anything else, a 3xx (never
followed), a timeout or a connection error is a failure, retried after the next step of the
schedule with jitter, or later if the receiver's ``Retry-After`` says so. An endpoint whose
attempts have failed continuously for ``disable_after`` seconds is disabled, with the reason.
"""

from __future__ import annotations

import email.utils
import logging
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from consumers.webhooks import signing, store
from consumers.webhooks.ssrf import DestinationError, Resolver
from consumers.webhooks.transport import new_pinned_client, send_pinned
from ledger.crypto import aead

log = logging.getLogger(__name__)

__all__ = ["Attempt", "SenderConfig", "WebhookSender", "parse_retry_after"]

USER_AGENT = "license-ledger-webhooks/1"
LEASE_SECONDS = 120.0
WORK_SLICE_SECONDS = 30.0  # an endpoint's turn; the lease outlasts it by far
MAX_RETRY_AFTER = 86400.0

DisableEndpoint = Callable[[UUID, UUID, str], None]


@dataclass(frozen=True)
class SenderConfig:
    timeout: float = 15.0
    schedule: tuple[float, ...] = (5, 60, 300, 1800, 7200, 18000, 36000, 36000, 86400, 86400)
    disable_after: float = 5 * 86400
    allow_loopback: bool = False
    concurrency: int = 8
    poll_interval: float = 0.5
    jitter: float = 0.2  # each delay is scaled by a random factor in [1 - jitter, 1 + jitter]


@dataclass
class Attempt:
    delivery_id: int
    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None
    outcome: str  # delivered | retry | failed | disabled
    next_attempt_at: datetime | None = None
    attempts: int = 0


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait per a ``Retry-After`` header (delta-seconds or HTTP-date), if valid."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER)


@dataclass
class _Endpoint:
    id: str
    org_id: str
    url: str
    enabled: bool
    secrets: list[bytes] = field(default_factory=list)


class WebhookSender:
    def __init__(
        self,
        writer: Engine,
        reader: Engine,
        kek: aead.KeyEncryptionKey,
        config: SenderConfig,
        *,
        disable: DisableEndpoint,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        resolver: Resolver = socket.getaddrinfo,
    ) -> None:
        self.writer = writer
        self.reader = reader
        self.kek = kek
        self.config = config
        self.disable = disable
        self.clock = clock
        self.resolver = resolver
        self.owner = f"{socket.gethostname()[:40]}:{uuid.uuid4().hex[:12]}"
        self.client = new_pinned_client(timeout=config.timeout)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy: set[str] = set()
        self._busy_lock = threading.Lock()
        self.errors = 0

    # ------------------------------------------------------------ queue selection

    def due(self) -> tuple[list[str], datetime | None]:
        """Endpoints whose queue head is due now, and when the next not-yet-due head is."""
        d, e = store.deliveries, store.endpoints
        heads = (
            sa.select(d.c.endpoint_id, sa.func.min(d.c.id).label("head"))
            .where(d.c.status == "pending")
            .group_by(d.c.endpoint_id)
            .subquery()
        )
        stmt = (
            sa.select(heads.c.endpoint_id, d.c.next_attempt_at)
            .join(d, d.c.id == heads.c.head)
            .join(e, e.c.id == heads.c.endpoint_id)
            .where(e.c.enabled.is_(True))
        )
        now = self.clock()
        due: list[str] = []
        later: datetime | None = None
        with self.reader.connect() as conn:
            for r in conn.execute(stmt):
                at = store.utc(r.next_attempt_at)
                assert at is not None
                if at <= now:
                    due.append(r.endpoint_id)
                elif later is None or at < later:
                    later = at
        return due, later

    def run_once(self) -> int:
        """Work every due endpoint once, one after another; returns the attempts made."""
        due, _ = self.due()
        return sum(self.work_endpoint(ep) for ep in due)

    # ------------------------------------------------------------ one endpoint

    def _lease(self, endpoint_id: str, *, release: bool = False) -> bool:
        s = store.endpoint_state
        now = self.clock()
        with self.writer.begin() as conn:
            if release:
                conn.execute(
                    sa.update(s)
                    .where(s.c.endpoint_id == endpoint_id, s.c.lease_owner == self.owner)
                    .values(lease_owner=None, lease_until=None)
                )
                return True
            got = conn.execute(
                sa.update(s)
                .where(
                    s.c.endpoint_id == endpoint_id,
                    sa.or_(
                        s.c.lease_until.is_(None),
                        s.c.lease_until < now,
                        s.c.lease_owner == self.owner,
                    ),
                )
                .values(lease_owner=self.owner, lease_until=now + timedelta(seconds=LEASE_SECONDS))
            )
            return got.rowcount == 1

    def _load(self, endpoint_id: str) -> _Endpoint | None:
        import json

        from ledger.webhooks import open_secret

        with self.reader.connect() as conn:
            r = conn.execute(
                sa.select(store.endpoints).where(store.endpoints.c.id == endpoint_id)
            ).first()
        if r is None or not r.enabled:
            return None
        now = self.clock()
        keys = []
        for s in json.loads(r.secrets):
            exp = s.get("expires_at")
            if exp is None or datetime.fromisoformat(exp) > now:
                keys.append(open_secret(self.kek, UUID(r.org_id), UUID(r.id), s))
        return _Endpoint(r.id, r.org_id, r.url, True, keys)

    def work_endpoint(self, endpoint_id: str) -> int:
        if not self._lease(endpoint_id):
            return 0
        made = 0
        try:
            ep = self._load(endpoint_id)
            if ep is None or not ep.secrets:
                return 0
            deadline = time.monotonic() + WORK_SLICE_SECONDS
            while time.monotonic() < deadline and not self._stop.is_set():
                with self.reader.connect() as conn:
                    rows = conn.execute(
                        sa.select(store.deliveries)
                        .where(
                            store.deliveries.c.endpoint_id == endpoint_id,
                            store.deliveries.c.status == "pending",
                        )
                        .order_by(store.deliveries.c.id)
                        .limit(100)
                    ).all()
                if not rows:
                    break
                results: list[Attempt] = []
                blocked = False
                for r in rows:
                    if store.utc(r.next_attempt_at) > self.clock():  # type: ignore[operator]
                        blocked = True
                        break
                    result = self.attempt(ep, r)
                    results.append(result)
                    made += 1
                    if result.outcome != "delivered":
                        blocked = True
                        break
                    if len(results) >= 50:
                        self._record(ep, results)
                        results = []
                if results and not self._record(ep, results):
                    break
                if blocked:
                    break
        finally:
            self._lease(endpoint_id, release=True)
        return made

    def attempt(self, ep: _Endpoint, row: Any) -> Attempt:
        now = self.clock()
        body = row.payload.encode("utf-8")
        headers = signing.build_headers(ep.secrets, row.event_id, int(now.timestamp()), body)
        headers["user-agent"] = USER_AGENT
        code: int | None = None
        error: str | None = None
        retry_after: float | None = None
        started = time.perf_counter()
        try:
            resp = send_pinned(
                self.client,
                "POST",
                ep.url,
                content=body,
                headers=headers,
                timeout=self.config.timeout,
                allow_loopback=self.config.allow_loopback,
                resolver=self.resolver,
            )
            code = resp.status_code
            retry_after = parse_retry_after(resp.headers.get("retry-after"), now)
        except DestinationError as exc:
            error = f"destination refused: {exc}"
        except httpx.TimeoutException:
            error = f"timed out after {self.config.timeout:g} s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500] or type(exc).__name__
        latency = (time.perf_counter() - started) * 1000.0
        n = int(row.attempts) + 1
        if code is not None and 200 <= code < 300:
            return Attempt(row.id, now, code, latency, None, "delivered", None, n)
        if code is not None:
            error = (
                f"HTTP {code} (redirects are not followed)" if 300 <= code < 400 else f"HTTP {code}"
            )
        if code == 410:
            return Attempt(row.id, now, code, latency, error, "disabled", None, n)
        if n > len(self.config.schedule):
            return Attempt(row.id, now, code, latency, error, "failed", None, n)
        step = self.config.schedule[n - 1]
        j = self.config.jitter
        delay = step * random.uniform(1 - j, 1 + j)
        if retry_after is not None:
            delay = max(delay, retry_after)
        answered = self.clock()  # delays (and Retry-After) count from the answer, not the start
        return Attempt(
            row.id, now, code, latency, error, "retry", answered + timedelta(seconds=delay), n
        )

    def _record(self, ep: _Endpoint, results: list[Attempt]) -> bool:
        """Commit the attempts; returns False if the endpoint was disabled as a result."""
        d, s = store.deliveries, store.endpoint_state
        last = results[-1]
        disable_reason: str | None = None
        with self.writer.begin() as conn:
            conn.execute(
                sa.insert(store.attempts),
                [
                    {
                        "delivery_id": a.delivery_id,
                        "endpoint_id": ep.id,
                        "attempted_at": a.attempted_at,
                        "status_code": a.status_code,
                        "latency_ms": a.latency_ms,
                        "error": a.error,
                        "outcome": a.outcome,
                    }
                    for a in results
                ],
            )
            for a in results:
                values: dict[str, Any] = {
                    "attempts": a.attempts,
                    "last_status_code": a.status_code,
                    "last_error": a.error,
                }
                if a.outcome == "delivered":
                    values.update(status="delivered", delivered_at=a.attempted_at)
                elif a.outcome == "retry":
                    values.update(next_attempt_at=a.next_attempt_at)
                else:
                    values.update(status="failed")
                conn.execute(sa.update(d).where(d.c.id == a.delivery_id).values(**values))
            if last.outcome == "delivered":
                conn.execute(
                    sa.update(s)
                    .where(s.c.endpoint_id == ep.id)
                    .values(failing_since=None, last_success_at=last.attempted_at)
                )
            else:
                since = store.utc(
                    conn.execute(
                        sa.select(s.c.failing_since).where(s.c.endpoint_id == ep.id)
                    ).scalar()
                )
                if since is None:
                    since = last.attempted_at
                    conn.execute(
                        sa.update(s).where(s.c.endpoint_id == ep.id).values(failing_since=since)
                    )
                if last.outcome == "disabled":
                    disable_reason = "the receiver answered 410 Gone"
                elif (last.attempted_at - since).total_seconds() >= self.config.disable_after:
                    disable_reason = (
                        f"failing continuously since {since.isoformat()} (last error: {last.error})"
                    )
        if disable_reason is not None:
            try:
                self.disable(UUID(ep.org_id), UUID(ep.id), disable_reason)
            except Exception:
                log.exception("could not disable webhook endpoint %s", ep.id)
            ep.enabled = False
            return False
        return True

    # ------------------------------------------------------------ background loop

    def poke(self, *_: Any) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._pool = ThreadPoolExecutor(self.config.concurrency, thread_name_prefix="webhook")
        self._thread = threading.Thread(target=self._loop, name="webhook-sender", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
            self._pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        self.stop()
        self.client.close()

    def _work(self, endpoint_id: str) -> None:
        try:
            self.work_endpoint(endpoint_id)
        except Exception:
            self.errors += 1
            log.exception("webhook endpoint %s: sender failed; will retry", endpoint_id)
            self._stop.wait(1.0)
        finally:
            with self._busy_lock:
                self._busy.discard(endpoint_id)
            self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait = self.config.poll_interval
            try:
                due, later = self.due()
                with self._busy_lock:
                    fresh = [ep for ep in due if ep not in self._busy]
                    self._busy.update(fresh)
                for ep in fresh:
                    self._pool.submit(self._work, ep)
                if later is not None:
                    wait = min(wait, max(0.0, (later - self.clock()).total_seconds()))
            except Exception:
                self.errors += 1
                log.exception("webhook sender loop failed; retrying")
                wait = 1.0
            self._wake.wait(wait)
            self._wake.clear()
