"""Request-scoped dependencies: the ledger, the authenticated principal, the request context."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from fastapi import Request, Response

from ledger.api.access import AccessControl
from ledger.apikey_usage import ApiKeyUsage
from ledger.bootstrap import Ledger
from ledger.crypto.apikeys import MalformedApiKeyError, hash_api_key, hashes_match, parse_api_key
from ledger.domain.errors import AuthenticationError, PermissionDeniedError
from ledger.domain.values import Actor, RequestContext


@dataclass(frozen=True)
class Principal:
    org_id: UUID
    key_id: str
    permissions: frozenset[str]
    actor: Actor
    context: RequestContext

    def require(self, permission: str) -> None:
        if "admin" not in self.permissions and permission not in self.permissions:
            raise PermissionDeniedError(f"this API key lacks the '{permission}' permission")


def get_ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


def get_access(request: Request) -> AccessControl:
    access: AccessControl = request.app.state.access
    return access


def client_ip(request: Request) -> str | None:
    """The client's address, X-Forwarded-For honoured only from LEDGER_TRUSTED_PROXIES."""
    return get_access(request).client_ip(request)


def authenticate(request: Request, response: Response) -> Principal:
    """Resolve ``Authorization: Bearer lk_…`` to its org. Every failure is the same 401.

    Order: shape and checksum (no I/O), lookup by key id, constant-time hash comparison, expiry
    and revocation, then the key's IP allowlist (403) and rate limit (429).
    """
    ledger = get_ledger(request)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
    try:
        parsed = parse_api_key(token.strip())
    except MalformedApiKeyError:
        raise AuthenticationError("invalid API key") from None
    key = ledger.app.find_api_key(parsed.key_id)
    if key is None or not hashes_match(key.secret_hash, hash_api_key(parsed.token)):
        raise AuthenticationError("invalid API key")
    now = ledger.app.clock()
    if not key.is_usable(now):
        raise AuthenticationError("invalid API key")
    access = get_access(request)
    ip = access.client_ip(request)
    access.check_allowlist(key.allowed_cidrs, ip)
    decision = access.check_key_rate(key.key_id, key.rate_limit)
    if decision is not None:
        response.headers.update(decision.headers())
    actor = Actor(kind="api_key", id=key.key_id)
    context = RequestContext.of(key.org_id, actor, ip, request.headers.get("user-agent"))
    usage: ApiKeyUsage = request.app.state.usage
    if usage.due(key.key_id):
        route = getattr(request.scope.get("route"), "path", request.url.path)
        usage.record(
            key.org_id,
            key.key_id,
            method=request.method,
            route=str(route),
            actor=actor,
            context=context,
            at=now,
        )
    return Principal(key.org_id, key.key_id, frozenset(key.permissions), actor, context)
