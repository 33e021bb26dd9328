#!/usr/bin/env python3
"""Benchmark the consumers: signed webhook deliveries/s and event-to-delivery latency; NATS acks/s.

    .venv/bin/python scripts/bench_consumers.py [--events 500] [--endpoints 4] [--nats-events 10000]

Baselines, measured in the same run against the same loopback receiver / nats-server:
- webhooks: raw httpx POSTs of the same bodies, same concurrency, one connection per request
  (as the pinned sender does: keep-alive would undo IP pinning for https);
- NATS: raw nats-py JetStream publishes of the same bodies with the same number of acks in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ledger.bootstrap import bootstrap
from ledger.domain.organization import Policy
from ledger.domain.values import Actor, RequestContext
from ledger.settings import Settings

ACTOR = Actor(kind="cli", id="bench")
CTX = RequestContext()


class Receiver:
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.arrivals.append((time.time(), body))
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 1024
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def raw_posts(url: str, bodies: list[bytes], concurrency: int) -> float:
    import httpx

    from consumers.webhooks.transport import new_pinned_client

    chunks = [bodies[i::concurrency] for i in range(concurrency)]

    def work(chunk: list[bytes]) -> None:
        with new_pinned_client(timeout=15) as client:
            for b in chunk:
                client.post(
                    url,
                    content=b,
                    headers={"content-type": "application/json", "Connection": "close"},
                )

    threads = [threading.Thread(target=work, args=(c,)) for c in chunks]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _ = httpx
    return len(bodies) / (time.perf_counter() - t0)


def bench_webhooks(args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    led = bootstrap(
        Settings(
            data_dir=tmp / "wh",
            webhook_allow_loopback=True,
            webhook_concurrency=args.endpoints,
            poll_interval=0.01,
        )
    )
    receiver = Receiver()
    org = led.app.create_organization("Bench", ACTOR, CTX)
    for _ in range(args.endpoints):
        led.webhooks.create(org.id, url=receiver.url, event_types=["*"], actor=ACTOR, context=CTX)
    policy = led.app.create_policy(org.id, name="p", actor=ACTOR, context=CTX)
    for _ in range(args.events):
        led.app.issue_license(org.id, policy_id=policy.id, actor=ACTOR, context=CTX)
    worker = led.webhook_worker()
    worker.create_tables()
    worker.runner.catch_up()  # queue everything first: this measures the sender
    total = args.events * args.endpoints
    worker.sender.start()
    t0 = time.perf_counter()
    while len(receiver.arrivals) < total:
        time.sleep(0.01)
    rate = total / (time.perf_counter() - t0)
    worker.sender.stop()
    bodies = [b for _, b in receiver.arrivals[:total]]
    base = raw_posts(receiver.url, bodies, args.endpoints)

    # Latency: the worker running as in `serve`, events issued one by one at a steady pace.
    receiver.arrivals.clear()
    led.extras.pop("webhook_worker", None)
    led.start_consumers(webhooks=True, nats=False)
    n = args.latency_events
    for _ in range(n):
        led.app.issue_license(org.id, policy_id=policy.id, actor=ACTOR, context=CTX)
        time.sleep(0.02)
    deadline = time.monotonic() + 30
    while len(receiver.arrivals) < n * args.endpoints and time.monotonic() < deadline:
        time.sleep(0.01)
    lat = []
    for arrived, body in receiver.arrivals:
        occurred = datetime.fromisoformat(json.loads(body)["occurred_at"].replace("Z", "+00:00"))
        lat.append((arrived - occurred.timestamp()) * 1000)
    lat.sort()
    led.close()
    receiver.server.shutdown()
    return {
        "deliveries_per_s": rate,
        "raw_posts_per_s": base,
        "p50_ms": statistics.median(lat),
        "p99_ms": lat[int(len(lat) * 0.99) - 1],
    }


async def raw_nats(url: str, bodies: list[bytes]) -> float:
    import nats

    from consumers.nats.publisher import STREAM, publish_all

    nc = await nats.connect(url)
    js = nc.jetstream(timeout=5)
    msgs = [(f"ledger.raw.bench.{i % 10}", b, f"raw-{i}") for i, b in enumerate(bodies)]
    t0 = time.perf_counter()
    await publish_all(js, msgs)
    rate = len(msgs) / (time.perf_counter() - t0)
    await nc.close()
    _ = STREAM
    return rate


def bench_nats(args: argparse.Namespace, tmp: Path) -> dict[str, float]:
    from consumers.nats.publisher import NatsPublisher, ensure_stream
    from tests.integration.nats_server import NatsServer

    server = NatsServer(tmp / "js").start()
    led = bootstrap(Settings(data_dir=tmp / "nats"))
    try:
        org = led.app.create_organization("Bench", ACTOR, CTX)
        for start in range(0, args.nats_events, 500):
            batch = [
                Policy(
                    org_id=org.id,
                    name=f"p{i}",
                    duration_seconds=None,
                    max_machines=None,
                    expiration_strategy="RESTRICT_ACCESS",
                    grace_period_seconds=0,
                    entitlements=[],
                    actor=ACTOR,
                    context=CTX,
                )
                for i in range(start, min(start + 500, args.nats_events))
            ]
            led.app.save(*batch)
        publisher = NatsPublisher(led, url=server.url)
        publisher.create_tables()
        head = led.runner.head()

        async def run() -> float:
            import nats

            nc = await nats.connect(server.url)
            js = nc.jetstream(timeout=10)
            await ensure_stream(js)
            t0 = time.perf_counter()
            while publisher.position() < head:
                await publisher.publish_batch(js)
            rate = head / (time.perf_counter() - t0)
            await nc.close()
            return rate

        ours = asyncio.run(run())
        bodies = [json.dumps({"n": i, "pad": "x" * 300}).encode() for i in range(head)]
        base = asyncio.run(raw_nats(server.url, bodies))
        return {"acks_per_s": ours, "raw_acks_per_s": base, "events": head}
    finally:
        led.close()
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--endpoints", type=int, default=4)
    parser.add_argument("--latency-events", type=int, default=100)
    parser.add_argument("--nats-events", type=int, default=10000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        wh = bench_webhooks(args, Path(d))
        nt = bench_nats(args, Path(d))
    print(
        f"webhooks: {wh['deliveries_per_s']:,.0f} signed deliveries/s "
        f"({args.events} events x {args.endpoints} endpoints); raw httpx POSTs "
        f"{wh['raw_posts_per_s']:,.0f}/s; "
        f"ratio {wh['deliveries_per_s'] / wh['raw_posts_per_s']:.2f}"
        f" (target >= 500/s)"
    )
    print(
        f"webhooks: event-to-delivery latency p50 {wh['p50_ms']:.1f} ms, p99 {wh['p99_ms']:.1f} ms"
        f" (target p50 <= 200 ms)"
    )
    print(
        f"nats: {nt['acks_per_s']:,.0f} acknowledged publishes/s ({nt['events']:.0f} events, "
        f"tracked position committed per batch); raw nats-py {nt['raw_acks_per_s']:,.0f}/s; "
        f"ratio {nt['acks_per_s'] / nt['raw_acks_per_s']:.2f} (target >= 5,000/s)"
    )


if __name__ == "__main__":
    main()
