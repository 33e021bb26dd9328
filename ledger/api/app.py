"""``create_app``: the FastAPI application over a bootstrapped ledger."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ledger import __version__
from ledger.api import problems
from ledger.api.metrics import Metrics, TimingMiddleware
from ledger.api.routes import audit, licenses, ops, policies, public, subjects
from ledger.bootstrap import Ledger, bootstrap
from ledger.settings import Settings


def create_app(settings: Settings | None = None, *, ledger: Ledger | None = None) -> FastAPI:
    """Build the HTTP app. Given a ledger, the caller owns it; otherwise the app builds and closes one."""
    owned = ledger is None
    led = ledger if ledger is not None else bootstrap(settings or Settings())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if led.settings.run_workers:
            led.start_workers()
        led.recorder.start()
        try:
            yield
        finally:
            if owned:
                led.close()
            else:
                led.runner.stop()

    app = FastAPI(
        title="License Ledger",
        version=__version__,
        summary="Issue, validate and audit software licenses.",
        lifespan=lifespan,
    )
    app.state.ledger = led
    app.state.metrics = Metrics(led)
    problems.install(app)
    app.include_router(public.router)
    app.include_router(policies.router)
    app.include_router(audit.router)  # before licenses: /v1/licenses/actions/validate-at
    app.include_router(licenses.router)
    app.include_router(ops.router)
    app.include_router(subjects.router)
    app.add_middleware(TimingMiddleware, metrics=app.state.metrics)
    return app
