"""Signed deliveries to real loopback receivers, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
import standardwebhooks

from consumers.webhooks.verify import Webhook, WebhookVerificationError
from ledger.domain.values import Actor, RequestContext
from tests.integration.webhook_receivers import Receiver

ACTOR = Actor(kind="cli", id="test")
CTX = RequestContext()


class Env:
    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger
        self.app = ledger.app
        self.org = ledger.app.create_organization("Acme", ACTOR, CTX)
        self.policy = ledger.app.create_policy(self.org.id, name="p", actor=ACTOR, context=CTX)
        self.worker = ledger.webhook_worker()
        self.worker.create_tables()

    def endpoint(self, receiver: Receiver, types: list[str] | None = None) -> tuple[Any, str]:
        return self.ledger.webhooks.create(  # type: ignore[no-any-return]
            self.org.id,
            url=receiver.url,
            event_types=types or ["license.*"],
            actor=ACTOR,
            context=CTX,
        )

    def issue(self, **kw: Any) -> Any:
        return self.app.issue_license(
            self.org.id, policy_id=self.policy.id, actor=ACTOR, context=CTX, **kw
        ).license

    def run_until(self, check: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            self.worker.run_once()
            if check():
                return
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(0.02)

    def deliveries(self, ep: Any) -> list[dict[str, Any]]:
        return self.ledger.webhook_view.deliveries(self.org.id, ep.id)  # type: ignore[no-any-return]


@pytest.fixture
def env(make_settings: Callable[..., Any]) -> Iterator[Env]:
    from ledger.bootstrap import bootstrap

    led = bootstrap(
        make_settings(
            webhook_allow_loopback=True,
            webhook_timeout=0.5,
            webhook_retry_schedule=[0.2, 0.2, 0.2],
            webhook_disable_after=3600,
        )
    )
    yield Env(led)
    led.close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for r in made:
        r.stop()


def test_deliveries_verify_with_our_verifier_and_with_standardwebhooks(
    env: Env, receivers: list[Receiver]
) -> None:
    ours = Receiver()
    theirs = Receiver()
    receivers += [ours.start(), theirs.start()]
    ep1, secret1 = env.endpoint(ours)
    ep2, secret2 = env.endpoint(theirs)
    ours.verify = Webhook(secret1).verify
    sw = standardwebhooks.Webhook(secret2)
    theirs.verify = lambda body, headers: sw.verify(body, headers)
    lic = env.issue(licensee_name="Ada Lovelace", licensee_email="ada@example.com")
    env.app.suspend(env.org.id, lic.id, "unpaid", actor=ACTOR, context=CTX)
    env.run_until(lambda: len(ours.accepted) == 2 and len(theirs.accepted) == 2)
    env.ledger.runner.catch_up()
    stream = {e.event_id: e.org_seq for e in env.ledger.stream.page(env.org.id)}
    for r in ours.requests + theirs.requests:
        assert r.error is None
        assert r.headers["webhook-signature"] == r.headers["X-Signature"]
        body = json.loads(r.body)
        assert body["id"] == r.headers["webhook-id"]
        assert body["org_seq"] == stream[body["id"]]  # the integrity projection agrees
        assert body["license_id"] == str(lic.id)
        assert b"ada@example.com" not in r.body and b"Lovelace" not in r.body
        assert r.body == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    assert [json.loads(r.body)["type"] for r in ours.requests] == [
        "license.issued",
        "license.suspended",
    ]
    assert all(d["status"] == "delivered" for d in env.deliveries(ep1) + env.deliveries(ep2))


def test_a_receiver_that_is_down_gets_everything_later_in_order(
    env: Env, receivers: list[Receiver]
) -> None:
    receiver = Receiver().start()
    receivers.append(receiver)
    ep, _ = env.endpoint(receiver)
    port = receiver.port
    receiver.stop()
    for _ in range(5):
        env.issue()
    env.worker.run_once()
    time.sleep(0.3)
    env.worker.run_once()
    first = env.deliveries(ep)[-1]
    assert first["status"] == "pending" and first["attempt_count"] >= 1
    assert first["attempts"][0]["status_code"] is None and first["attempts"][0]["error"]
    receiver.port = port
    receiver.start()
    env.run_until(lambda: len(receiver.requests) == 5)
    seqs = [json.loads(r.body)["org_seq"] for r in receiver.requests]
    assert seqs == sorted(seqs)
    assert all(d["status"] == "delivered" for d in env.deliveries(ep))


def test_500_is_retried_with_every_attempt_recorded(env: Env, receivers: list[Receiver]) -> None:
    receiver = Receiver(behaviour=lambda n: (500 if n < 2 else 200, {}, 0.0)).start()
    receivers.append(receiver)
    ep, _ = env.endpoint(receiver)
    env.issue()
    env.run_until(lambda: len(receiver.requests) == 3)
    (delivery,) = env.deliveries(ep)
    assert delivery["status"] == "delivered"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 200]
    assert [a["outcome"] for a in delivery["attempts"]] == ["retry", "retry", "delivered"]
    assert all(a["latency_ms"] >= 0 for a in delivery["attempts"])
    ids = {r.headers["webhook-id"] for r in receiver.requests}
    stamps = [int(r.headers["webhook-timestamp"]) for r in receiver.requests]
    assert len(ids) == 1 and stamps == sorted(stamps)  # same id, re-signed each attempt


def test_429_retry_after_is_honoured(env: Env, receivers: list[Receiver]) -> None:
    receiver = Receiver(
        behaviour=lambda n: (429, {"Retry-After": "1"}, 0.0) if n == 0 else (204, {}, 0.0)
    ).start()
    receivers.append(receiver)
    env.endpoint(receiver)
    env.issue()
    env.run_until(lambda: len(receiver.requests) == 2)
    assert receiver.requests[1].at - receiver.requests[0].at >= 0.95  # not the 0.2 s schedule


def test_410_gone_disables_the_endpoint(env: Env, receivers: list[Receiver]) -> None:
    receiver = Receiver(behaviour=lambda n: (410, {}, 0.0)).start()
    receivers.append(receiver)
    ep, _ = env.endpoint(receiver)
    env.issue()
    env.issue()
    env.run_until(lambda: not env.ledger.webhooks.get(env.org.id, ep.id).enabled)
    env.worker.runner.catch_up()
    row = env.ledger.webhook_view.endpoint(env.org.id, ep.id)
    assert not row.enabled and "410" in (row.disabled_reason or "")
    time.sleep(0.3)
    env.worker.run_once()
    assert len(receiver.requests) == 1  # nothing more is sent to a disabled endpoint


def test_redirects_are_failures_and_never_followed(env: Env, receivers: list[Receiver]) -> None:
    target = Receiver().start()
    receiver = Receiver(behaviour=lambda n: (302, {"Location": target.url}, 0.0)).start()
    receivers += [target, receiver]
    ep, _ = env.endpoint(receiver)
    env.issue()
    env.run_until(lambda: len(receiver.requests) >= 2)
    assert target.requests == []
    assert "redirect" in env.deliveries(ep)[0]["attempts"][0]["error"]


def test_a_too_slow_receiver_times_out(env: Env, receivers: list[Receiver]) -> None:
    receiver = Receiver(behaviour=lambda n: (204, {}, 1.5 if n == 0 else 0.0)).start()
    receivers.append(receiver)
    ep, _ = env.endpoint(receiver)
    env.issue()
    env.run_until(lambda: env.deliveries(ep)[0]["status"] == "delivered")
    attempts = env.deliveries(ep)[0]["attempts"]
    assert "timed out after 0.5 s" in attempts[0]["error"]
    assert attempts[0]["latency_ms"] < 1400
    assert attempts[-1]["outcome"] == "delivered"


def test_a_replayed_request_is_rejected(env: Env, receivers: list[Receiver]) -> None:
    receiver = Receiver().start()
    receivers.append(receiver)
    _, secret = env.endpoint(receiver)
    verifier = Webhook(secret)
    receiver.verify = verifier.verify
    env.issue()
    env.run_until(lambda: len(receiver.accepted) == 1)
    import httpx

    first = receiver.requests[0]
    replay = httpx.post(
        receiver.url,
        content=first.body,
        headers={
            k: v for k, v in first.headers.items() if k.lower().startswith(("webhook-", "x-sig"))
        },
    )
    assert replay.status_code == 400
    assert "replay" in (receiver.requests[-1].error or "")
    with pytest.raises(WebhookVerificationError):
        verifier.verify(first.body, first.headers)


def test_secret_rotation_signs_with_both_secrets_during_the_overlap(
    env: Env, receivers: list[Receiver]
) -> None:
    receiver = Receiver().start()
    receivers.append(receiver)
    ep, old = env.endpoint(receiver)
    _, new, _ = env.ledger.webhooks.rotate_secret(
        env.org.id, ep.id, overlap=timedelta(seconds=2), actor=ACTOR, context=CTX
    )
    env.issue()
    env.run_until(lambda: len(receiver.requests) == 1)
    during = receiver.requests[0]
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(during.body, during.headers)  # an old-only receiver still accepts
    Webhook(new).verify(during.body, during.headers)  # and so does a new-only receiver
    time.sleep(2.1)
    env.issue()
    env.run_until(lambda: len(receiver.requests) == 2)
    after = receiver.requests[1]
    assert len(after.headers["webhook-signature"].split(" ")) == 1
    Webhook(new).verify(after.body, after.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(after.body, after.headers)


def test_an_endpoint_failing_continuously_is_disabled_and_says_why(
    env: Env, receivers: list[Receiver]
) -> None:
    env.worker.sender.config = type(env.worker.config)(
        **{**env.worker.config.__dict__, "disable_after": 0.3, "schedule": (0.1,) * 20}
    )
    receiver = Receiver(behaviour=lambda n: (503, {}, 0.0)).start()
    receivers.append(receiver)
    ep, _ = env.endpoint(receiver)
    env.issue()
    env.run_until(lambda: not env.ledger.webhooks.get(env.org.id, ep.id).enabled)
    reason = env.ledger.webhooks.get(env.org.id, ep.id).disabled_reason
    assert "failing continuously since" in reason and "HTTP 503" in reason
    env.ledger.webhooks.enable(env.org.id, ep.id, actor=ACTOR, context=CTX)
    receiver.behaviour = lambda n: (204, {}, 0.0)
    env.run_until(lambda: env.deliveries(ep)[0]["status"] == "delivered")


def test_a_failed_delivery_can_be_sent_again_by_hand(env: Env, receivers: list[Receiver]) -> None:
    receiver = Receiver(behaviour=lambda n: (500, {}, 0.0)).start()
    receivers.append(receiver)
    ep, _ = env.endpoint(receiver)
    env.issue()
    env.run_until(lambda: env.deliveries(ep)[0]["status"] == "failed")
    assert env.deliveries(ep)[0]["attempt_count"] == 4  # first try + 3 retries
    receiver.behaviour = lambda n: (204, {}, 0.0)
    env.ledger.webhook_view.redeliver(
        env.org.id, ep.id, env.deliveries(ep)[0]["id"], env.app.clock()
    )
    env.run_until(lambda: env.deliveries(ep)[0]["status"] == "delivered")
    assert env.deliveries(ep)[0]["attempt_count"] == 5


def test_only_subscribed_types_of_the_own_org_are_queued(
    env: Env, receivers: list[Receiver]
) -> None:
    receiver = Receiver().start()
    receivers.append(receiver)
    ep, _ = env.endpoint(receiver, ["license.suspended"])
    other = env.app.create_organization("Other", ACTOR, CTX)
    other_policy = env.app.create_policy(other.id, name="p", actor=ACTOR, context=CTX)
    env.app.issue_license(other.id, policy_id=other_policy.id, actor=ACTOR, context=CTX)
    lic = env.issue()
    env.app.suspend(env.org.id, lic.id, "", actor=ACTOR, context=CTX)
    env.run_until(lambda: len(receiver.requests) == 1)
    assert json.loads(receiver.requests[0].body)["type"] == "license.suspended"
    assert len(env.deliveries(ep)) == 1
