"""The ledger's error tree. Every boundary (HTTP, CLI) maps these, and only these, to answers.

LedgerError
├── InvalidInputError            bad arguments to a command (VALIDATION_ERROR)
│   ├── UnknownEventTypeError        a webhook event-type filter names no known event type
│   └── InvalidWebhookUrlError       not an absolute http(s) URL, or carries credentials
│       └── ForbiddenWebhookDestinationError  resolves to a private, loopback or reserved address
├── NotFoundError
│   ├── OrganizationNotFoundError
│   ├── PolicyNotFoundError
│   ├── LicenseNotFoundError
│   ├── MachineNotFoundError
│   ├── ApiKeyNotFoundError
│   ├── WebhookEndpointNotFoundError
│   ├── WebhookDeliveryNotFoundError
│   └── SubjectNotFoundError      no data subject with that id in the caller's org
├── ConflictError
│   ├── IllegalTransitionError       e.g. suspending a suspended license
│   ├── MachineLimitExceededError    max_machines reached
│   ├── ConcurrencyError             optimistic-concurrency retries exhausted
│   └── IdempotencyConflictError     the same Idempotency-Key is still being answered
├── IdempotencyKeyReusedError     an Idempotency-Key reused with a different request
├── AuthenticationError           missing, malformed, unknown, expired or revoked API key
├── PermissionDeniedError         the key lacks a permission
│   └── IpNotAllowedError            the caller is outside the key's IP allowlist
├── RateLimitedError              too many requests for this key or client address
├── UnavailableError              a dependency (store, recorder) cannot serve the request now
└── DataIntegrityError            stored data does not open at its place (tampered, moved, swapped)
"""

from __future__ import annotations


class LedgerError(Exception):
    """Root of every error the ledger raises on purpose."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidInputError(LedgerError):
    pass


class UnknownEventTypeError(InvalidInputError):
    pass


class InvalidWebhookUrlError(InvalidInputError):
    pass


class ForbiddenWebhookDestinationError(InvalidWebhookUrlError):
    pass


class NotFoundError(LedgerError):
    pass


class OrganizationNotFoundError(NotFoundError):
    pass


class PolicyNotFoundError(NotFoundError):
    pass


class LicenseNotFoundError(NotFoundError):
    pass


class MachineNotFoundError(NotFoundError):
    pass


class ApiKeyNotFoundError(NotFoundError):
    pass


class WebhookEndpointNotFoundError(NotFoundError):
    pass


class WebhookDeliveryNotFoundError(NotFoundError):
    pass


class SubjectNotFoundError(NotFoundError):
    pass


class ConflictError(LedgerError):
    pass


class IllegalTransitionError(ConflictError):
    pass


class MachineLimitExceededError(ConflictError):
    pass


class ConcurrencyError(ConflictError):
    pass


class IdempotencyConflictError(ConflictError):
    pass


class IdempotencyKeyReusedError(LedgerError):
    pass


class AuthenticationError(LedgerError):
    pass


class PermissionDeniedError(LedgerError):
    pass


class IpNotAllowedError(PermissionDeniedError):
    pass


class RateLimitedError(LedgerError):
    """Carries the ``Retry-After`` and ``RateLimit-*`` headers the answer must send."""

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers = dict(headers or {})


class UnavailableError(LedgerError):
    pass


class DataIntegrityError(LedgerError):
    pass
