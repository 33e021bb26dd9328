"""``create_app``: the FastAPI application over a bootstrapped ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ledger import __version__
from ledger.api import openapi, problems
from ledger.api.access import AccessControl
from ledger.api.idempotency import IdempotencyMiddleware, IdempotencyStore
from ledger.api.metrics import Metrics, TimingMiddleware
from ledger.api.middleware import BodyLimitMiddleware, SecurityHeadersMiddleware
from ledger.api.routes import (
    apikeys,
    audit,
    licenses,
    log,
    ops,
    policies,
    public,
    signing_keys,
    subjects,
    webhooks,
)
from ledger.apikey_usage import ApiKeyUsage
from ledger.bootstrap import Ledger, bootstrap
from ledger.settings import Settings
from ledger.storage import schema_lock


def create_app(settings: Settings | None = None, *, ledger: Ledger | None = None) -> FastAPI:
    """Build the HTTP app.

    Given a ledger, the caller owns it; otherwise the app builds and closes one.
    """
    owned = ledger is None
    led = ledger if ledger is not None else bootstrap(settings or Settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if led.settings.run_workers:
            led.start_workers()
            led.start_consumers()
        led.recorder.start()
        try:
            yield
        finally:
            if owned:
                led.close()
            else:
                led.runner.stop()
                led.stop_consumers()

    app = FastAPI(
        title="License Ledger",
        version=__version__,
        summary="Issue, validate and audit software licenses.",
        lifespan=lifespan,
    )
    app.state.ledger = led
    app.state.metrics = Metrics(led)
    app.state.access = AccessControl(led.settings)
    app.state.usage = ApiKeyUsage(
        led.writer, led.recorder, interval=led.settings.api_key_use_interval_seconds
    )
    idempotency = IdempotencyStore(led.writer)
    with schema_lock(led.settings):
        app.state.usage.create_tables()
        idempotency.create_tables()
    problems.install(app)
    openapi.install(app)
    app.include_router(public.router)
    app.include_router(policies.router)
    app.include_router(audit.router)  # before licenses: /v1/licenses/actions/validate-at
    app.include_router(licenses.router)
    app.include_router(log.router)
    app.include_router(ops.router)
    app.include_router(apikeys.router)
    app.include_router(signing_keys.router)
    app.add_middleware(IdempotencyMiddleware, store=idempotency)
    app.add_middleware(BodyLimitMiddleware, max_bytes=led.settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)
    app.include_router(webhooks.router)
    app.include_router(subjects.router)
    app.add_middleware(TimingMiddleware, metrics=app.state.metrics)
    return app
