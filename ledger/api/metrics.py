"""Prometheus metrics: one registry per app (nothing global), an ASGI timing middleware, and a
collector that reads projection lag at scrape time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ProjectionCollector(Collector):
    def __init__(self, ledger: Any) -> None:
        self.ledger = ledger

    def collect(self) -> Iterator[GaugeMetricFamily]:
        pos = GaugeMetricFamily(
            "ledger_projection_position", "last notification applied", labels=["projection"]
        )
        lag_e = GaugeMetricFamily(
            "ledger_projection_lag_events", "events behind the log head", labels=["projection"]
        )
        lag_s = GaugeMetricFamily(
            "ledger_projection_lag_seconds",
            "age of the oldest unapplied event",
            labels=["projection"],
        )
        try:
            statuses = self.ledger.runner.status()
        except Exception:
            statuses = []
        for s in statuses:
            pos.add_metric([s.name], s.position)
            lag_e.add_metric([s.name], s.lag_events)
            lag_s.add_metric([s.name], s.lag_seconds)
        yield from (pos, lag_e, lag_s)
        recorder = self.ledger.recorder
        rec = GaugeMetricFamily(
            "ledger_validation_records_committed", "validation records committed by this process"
        )
        rec.add_metric([], recorder.records)
        batches = GaugeMetricFamily(
            "ledger_validation_record_batches", "group commits by this process"
        )
        batches.add_metric([], recorder.batches)
        yield from (rec, batches)
        for name, fn in self.ledger.extras.get("gauges", {}).items():
            g = GaugeMetricFamily(name, name.replace("_", " "))
            try:
                g.add_metric([], float(fn()))
            except Exception:  # noqa: S112 - a failing gauge callback must not break /metrics
                continue
            yield g


class Metrics:
    def __init__(self, ledger: Any) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Histogram(
            "ledger_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route", "status"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.validations = Counter(
            "ledger_validations_total",
            "validate-key answers by code",
            ["code"],
            registry=self.registry,
        )
        self.registry.register(ProjectionCollector(ledger))


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class TimingMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware overhead): time each request by its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self.metrics.requests.labels(method, path, str(status)).observe(
                time.perf_counter() - start
            )
