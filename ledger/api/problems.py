"""RFC 9457 problem details: every error the API answers, from one mapping table."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledger.domain import errors as e

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

#: Domain error → (HTTP status, stable code).
#: tests/unit/test_architecture.py checks none is missing.
ERROR_TABLE: dict[type[e.LedgerError], tuple[int, str]] = {
    e.LedgerError: (400, "LEDGER_ERROR"),
    e.InvalidInputError: (422, "VALIDATION_ERROR"),
    e.NotFoundError: (404, "NOT_FOUND"),
    e.OrganizationNotFoundError: (404, "ORGANIZATION_NOT_FOUND"),
    e.PolicyNotFoundError: (404, "POLICY_NOT_FOUND"),
    e.LicenseNotFoundError: (404, "LICENSE_NOT_FOUND"),
    e.MachineNotFoundError: (404, "MACHINE_NOT_FOUND"),
    e.ApiKeyNotFoundError: (404, "API_KEY_NOT_FOUND"),
    e.WebhookEndpointNotFoundError: (404, "WEBHOOK_ENDPOINT_NOT_FOUND"),
    e.WebhookDeliveryNotFoundError: (404, "WEBHOOK_DELIVERY_NOT_FOUND"),
    e.UnknownEventTypeError: (422, "UNKNOWN_EVENT_TYPE"),
    e.InvalidWebhookUrlError: (422, "INVALID_WEBHOOK_URL"),
    e.ForbiddenWebhookDestinationError: (422, "FORBIDDEN_WEBHOOK_DESTINATION"),
    e.SubjectNotFoundError: (404, "SUBJECT_NOT_FOUND"),
    e.ConflictError: (409, "CONFLICT"),
    e.IllegalTransitionError: (409, "ILLEGAL_TRANSITION"),
    e.MachineLimitExceededError: (409, "MACHINE_LIMIT_EXCEEDED"),
    e.ConcurrencyError: (409, "CONCURRENCY_CONFLICT"),
    e.IdempotencyConflictError: (409, "IDEMPOTENCY_IN_PROGRESS"),
    e.IdempotencyKeyReusedError: (422, "IDEMPOTENCY_KEY_REUSED"),
    e.AuthenticationError: (401, "UNAUTHORIZED"),
    e.PermissionDeniedError: (403, "FORBIDDEN"),
    e.IpNotAllowedError: (403, "IP_NOT_ALLOWED"),
    e.RateLimitedError: (429, "RATE_LIMITED"),
    e.UnavailableError: (503, "SERVICE_UNAVAILABLE"),
    e.DataIntegrityError: (503, "DATA_INTEGRITY_ERROR"),  # unservable until an operator restores it
}

_HTTP_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "PAYLOAD_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR",
    429: "RATE_LIMITED",
}


def problem(
    status: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://license-ledger.dev/problems/{code.lower().replace('_', '-')}",
        "title": code.replace("_", " ").capitalize(),
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def status_and_code(exc: e.LedgerError) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return ERROR_TABLE[e.LedgerError]


def install(app: FastAPI) -> None:
    @app.exception_handler(e.LedgerError)
    async def ledger_error(_req: Request, exc: e.LedgerError) -> JSONResponse:
        status, code = status_and_code(exc)
        headers = dict(getattr(exc, "headers", None) or {})
        if status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="license-ledger"'
        return problem(status, code, exc.message, headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_req: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, Any]] = [
            {"loc": [str(p) for p in err.get("loc", ())], "msg": str(err.get("msg", ""))}
            for err in exc.errors()
        ]
        first: dict[str, Any] = errors[0] if errors else {"loc": [], "msg": "invalid request"}
        detail = f"{'.'.join(first['loc'])}: {first['msg']}" if first["loc"] else first["msg"]
        return problem(422, "VALIDATION_ERROR", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_req: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
        headers = dict(exc.headers) if exc.headers else None
        return problem(exc.status_code, code, str(exc.detail), headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(_req: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", exc_info=exc)
        return problem(500, "INTERNAL_ERROR", "an unexpected error occurred; it has been logged")
