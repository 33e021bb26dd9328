"""Request-scoped dependencies: the ledger, the authenticated principal, the request context."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from fastapi import Request

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


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


def authenticate(request: Request) -> Principal:
    """Resolve ``Authorization: Bearer lk_…`` to its org. Every failure is the same 401."""
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
    if not key.is_usable(ledger.app.clock()):
        raise AuthenticationError("invalid API key")
    actor = Actor(kind="api_key", id=key.key_id)
    context = RequestContext.of(
        key.org_id, actor, client_ip(request), request.headers.get("user-agent")
    )
    return Principal(key.org_id, key.key_id, frozenset(key.permissions), actor, context)
