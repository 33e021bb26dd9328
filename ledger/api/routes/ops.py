"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ledger import sql
from ledger.api.deps import get_ledger
from ledger.api.problems import problem
from ledger.bootstrap import Ledger

router = APIRouter(tags=["operations"])

Led = Annotated[Ledger, Depends(get_ledger)]

MAX_READY_LAG_SECONDS = 30.0


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: store reachable, projections not far behind")
def readyz(ledger: Led) -> Any:
    try:
        with ledger.reader.connect() as conn:
            sql.ping(conn)
        statuses = ledger.runner.status()
    except Exception as exc:
        return problem(503, "NOT_READY", f"store unreachable: {type(exc).__name__}")
    behind = [s for s in statuses if s.lag_seconds > MAX_READY_LAG_SECONDS]
    if behind:
        names = ", ".join(f"{s.name} ({s.lag_seconds:.0f}s)" for s in behind)
        return problem(503, "NOT_READY", f"projections lagging: {names}")
    return {"status": "ready", "projections": {s.name: s.lag_events for s in statuses}}


@router.get("/metrics", summary="Prometheus metrics")
def metrics(request: Request) -> Response:
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
