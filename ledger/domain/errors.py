"""The ledger's error tree. Every boundary (HTTP, CLI) maps these, and only these, to answers.

LedgerError
├── InvalidInputError            bad arguments to a command (VALIDATION_ERROR)
├── NotFoundError
│   ├── OrganizationNotFoundError
│   ├── PolicyNotFoundError
│   ├── LicenseNotFoundError
│   ├── MachineNotFoundError
│   ├── ApiKeyNotFoundError
│   └── SubjectNotFoundError      no data subject with that id in the caller's org
├── ConflictError
│   ├── IllegalTransitionError       e.g. suspending a suspended license
│   ├── MachineLimitExceededError    max_machines reached
│   └── ConcurrencyError             optimistic-concurrency retries exhausted
├── AuthenticationError           missing, malformed, unknown, expired or revoked API key
├── PermissionDeniedError         the key lacks a permission or the caller is outside its allowlist
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


class AuthenticationError(LedgerError):
    pass


class PermissionDeniedError(LedgerError):
    pass


class UnavailableError(LedgerError):
    pass


class DataIntegrityError(LedgerError):
    pass
