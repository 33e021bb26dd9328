"""The OpenAPI document, with what middleware adds: the Idempotency-Key header on every POST."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

IDEMPOTENCY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Retry-safe POST: a retry with the same key and the same request gets the first answer "
        "(header Idempotent-Replayed: true) and appends no second event; kept 24 h."
    ),
    "schema": {"type": "string", "maxLength": 255},
    "example": "3f1c2b9e-0d7a-4c1e-9b6f-2a8d5e4c7b10",
}


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = get_openapi(
                title=app.title, version=app.version, summary=app.summary, routes=app.routes
            )
            for path in doc.get("paths", {}).values():
                if "post" in path:
                    path["post"].setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
