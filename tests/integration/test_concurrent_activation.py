"""Machine limits hold under concurrent activation, from threads and from separate processes."""

from __future__ import annotations

import multiprocessing
import queue
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.utils import get_topic

from ledger.bootstrap import Ledger, bootstrap
from ledger.domain.errors import MachineLimitExceededError
from ledger.domain.license import License
from ledger.domain.organization import Organization
from ledger.domain.values import Actor, RequestContext
from ledger.settings import Settings

ACTOR = Actor(kind="cli", id="test")
CTX = RequestContext()
MAX_MACHINES = 5
TIMEOUT = 120  # seconds; a bound on hangs, never an assertion about speed

OK = "ok"
UNCHANGED = "unchanged"
LIMIT = "limit"


def issue_limited_license(ledger: Ledger, org: Organization) -> UUID:
    policy = ledger.app.create_policy(
        org.id, name="Seats", max_machines=MAX_MACHINES, actor=ACTOR, context=CTX
    )
    issued = ledger.app.issue_license(org.id, policy_id=policy.id, actor=ACTOR, context=CTX)
    return issued.license.id


def try_activate(ledger: Ledger, org_id: UUID, license_id: UUID, fingerprint: str) -> str:
    """One activation attempt, as an outcome; anything but the limit error propagates."""
    try:
        _, created = ledger.app.activate_machine(
            org_id, license_id, fingerprint, actor=ACTOR, context=CTX
        )
    except MachineLimitExceededError:
        return LIMIT
    return OK if created else UNCHANGED


def activation_events(ledger: Ledger, license_id: UUID) -> list[License.MachineActivated]:
    """MachineActivated events in the store: in the license's stream and in the whole log."""
    stream = [
        e for e in ledger.app.events.get(license_id) if isinstance(e, License.MachineActivated)
    ]
    topic = get_topic(License.MachineActivated)
    head = ledger.app.recorder.max_notification_id() or 0
    logged = ledger.app.recorder.select_notifications(1, head + 1, topics=[topic])
    assert len(logged) == len(stream)
    return stream


def run_in_threads(n: int, work: Callable[[int], str]) -> list[str]:
    """Run ``work(i)`` for i in range(n) on n threads released together by a barrier."""
    barrier = threading.Barrier(n)

    def lined_up(i: int) -> str:
        barrier.wait(TIMEOUT)
        return work(i)

    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = [pool.submit(lined_up, i) for i in range(n)]
        return [f.result(TIMEOUT) for f in futures]


def assert_exactly_the_winners_are_active(
    ledger: Ledger, org: Organization, license_id: UUID, winners: set[str]
) -> None:
    assert len(winners) == MAX_MACHINES
    lic = ledger.app.get_license(org.id, license_id)
    assert set(lic.machines) == winners
    events = activation_events(ledger, license_id)
    assert sorted(e.fingerprint for e in events) == sorted(winners)
    ledger.runner.catch_up()
    view = ledger.licenses.get(org.id, license_id)
    assert view is not None
    assert set(view["machines"]) == winners


def test_concurrent_threads_cannot_exceed_the_machine_limit(
    ledger: Ledger, org: Organization
) -> None:
    lid = issue_limited_license(ledger, org)
    outcomes = run_in_threads(50, lambda i: try_activate(ledger, org.id, lid, f"fp-{i:02d}"))
    assert sorted(set(outcomes)) == [LIMIT, OK]
    assert outcomes.count(OK) == MAX_MACHINES
    assert outcomes.count(LIMIT) == 50 - MAX_MACHINES
    winners = {f"fp-{i:02d}" for i, o in enumerate(outcomes) if o == OK}
    assert_exactly_the_winners_are_active(ledger, org, lid, winners)


def test_same_fingerprint_from_many_threads_is_activated_once(
    ledger: Ledger, org: Organization
) -> None:
    lid = issue_limited_license(ledger, org)
    outcomes = run_in_threads(10, lambda _: try_activate(ledger, org.id, lid, "fp-shared"))
    assert outcomes.count(OK) == 1
    assert outcomes.count(UNCHANGED) == 9
    assert [e.fingerprint for e in activation_events(ledger, lid)] == ["fp-shared"]
    assert list(ledger.app.get_license(org.id, lid).machines) == ["fp-shared"]


# ---------------------------------------------------------------------- processes

PER_PROCESS = 5


def process_count(settings: Settings) -> int:
    """Ten processes on SQLite; six on PostgreSQL.

    Each process's event store opens its whole pool up front (POSTGRES_POOL_SIZE=10 in
    ledger.storage), so eleven processes would need more than a default server's 100 connections.
    """
    return 6 if settings.is_postgres else 10


def activate_from_process(
    settings: dict[str, Any],
    org_id: str,
    license_id: str,
    fingerprints: list[str],
    ready: Any,
    go: Any,
    results: Any,
) -> None:
    """Child process: its own bootstrap on the same store, then activations on a shared signal."""
    try:
        ledger = bootstrap(Settings(**settings))
    except BaseException as exc:
        ready.wait(TIMEOUT)
        results.put(("error", f"bootstrap: {exc!r}"))
        return
    try:
        ready.wait(TIMEOUT)  # everyone is bootstrapped ...
        go.wait(TIMEOUT)  # ... and the parent says go
        for fp in fingerprints:
            try:
                outcome = try_activate(ledger, UUID(org_id), UUID(license_id), fp)
            except BaseException as exc:
                outcome = f"error: {exc!r}"
            results.put((fp, outcome))
    finally:
        ledger.close()


@pytest.mark.slow
def test_concurrent_processes_cannot_exceed_the_machine_limit(
    settings: Settings, ledger: Ledger, org: Organization
) -> None:
    lid = issue_limited_license(ledger, org)
    processes = process_count(settings)
    plain = {
        "data_dir": str(settings.data_dir),
        "database_url": settings.database_url,
        "database_schema": settings.database_schema,
    }
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Barrier(processes + 1)
    go = ctx.Event()
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=activate_from_process,
            args=(
                plain,
                str(org.id),
                str(lid),
                [f"fp-{p}-{i}" for i in range(PER_PROCESS)],
                ready,
                go,
                results,
            ),
            daemon=True,
        )
        for p in range(processes)
    ]
    for proc in procs:
        proc.start()
    try:
        ready.wait(TIMEOUT)
        go.set()
        outcomes: dict[str, str] = {}
        for _ in range(processes * PER_PROCESS):
            try:
                fp, outcome = results.get(timeout=TIMEOUT)
            except queue.Empty:
                pytest.fail(f"only {len(outcomes)} results arrived: {outcomes}")
            assert not fp.startswith("error"), outcome
            outcomes[fp] = outcome
        for proc in procs:
            proc.join(TIMEOUT)
            assert proc.exitcode == 0
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
        results.close()
        results.join_thread()

    errors = {fp: o for fp, o in outcomes.items() if o not in (OK, LIMIT)}
    assert errors == {}
    assert len(outcomes) == processes * PER_PROCESS
    winners = {fp for fp, o in outcomes.items() if o == OK}
    assert len(winners) == MAX_MACHINES
    assert_exactly_the_winners_are_active(ledger, org, lid, winners)
