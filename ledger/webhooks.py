"""Webhook endpoint use cases: create, update, rotate the secret, disable, enable.

Secrets are shown once, when created or rotated. In the log they exist only sealed under the
key-encryption key (AES-256-GCM, associated data binding org, endpoint and secret id), so the
delivery worker can rebuild an endpoint's signing secrets from the log and nobody can read them
from it without the KEK. URLs are checked at the door (absolute http(s), no credentials, and the
host must resolve to public addresses only unless loopback is explicitly allowed) and again on
every delivery attempt (DNS can change).
"""

from __future__ import annotations

import base64
import os
import socket
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx

from consumers.webhooks import signing
from consumers.webhooks.ssrf import (
    ForbiddenDestinationError,
    Resolver,
    UnresolvableDestinationError,
    resolve_checked,
)
from ledger.application import LedgerApplication
from ledger.crypto import aead
from ledger.domain.errors import (
    ForbiddenWebhookDestinationError,
    InvalidWebhookUrlError,
    WebhookEndpointNotFoundError,
)
from ledger.domain.values import Actor, RequestContext
from ledger.domain.webhook import MAX_URL, WebhookEndpoint, check_event_types

__all__ = ["WebhookEndpoints", "deliverable_event_types", "open_secret", "seal_secret"]


def _event_classes() -> list[type]:
    from eventsourcing.domain import Aggregate

    import ledger.domain.apikey
    import ledger.domain.license
    import ledger.domain.organization
    import ledger.domain.records
    import ledger.domain.webhook  # noqa: F401 -- load every aggregate before walking

    found: list[type] = []
    stack: list[type] = [Aggregate.Event]
    while stack:
        cls = stack.pop()
        sub: type
        for sub in cls.__subclasses__():
            stack.append(sub)
            if sub.__module__.startswith("ledger.domain.") and "." in sub.__qualname__:
                found.append(sub)
    return found


def deliverable_event_types() -> frozenset[str]:
    """Every event type a webhook can subscribe to (endpoint changes themselves are not sent)."""
    from ledger.events import event_type_from_topic

    names = {event_type_from_topic(f"{c.__module__}:{c.__qualname__}") for c in _event_classes()}
    return frozenset(n for n in names if not n.startswith("webhook_endpoint."))


def _aad(org_id: UUID, endpoint_id: UUID, secret_id: str) -> bytes:
    return f"license-ledger/webhook-secret/{org_id}/{endpoint_id}/{secret_id}".encode()


def seal_secret(
    kek: aead.KeyEncryptionKey, org_id: UUID, endpoint_id: UUID, secret: str
) -> dict[str, Any]:
    """The event form of a secret: its id, the KEK id and the sealed key bytes (base64)."""
    secret_id = uuid4().hex[:16]
    sealed = aead.seal(
        kek.key,
        signing.parse_secret(secret),
        _aad(org_id, endpoint_id, secret_id),
        nonce=os.urandom(aead.NONCE_SIZE),
        key_id=bytes.fromhex(secret_id[:16])[: aead.KEY_ID_SIZE],
    )
    return {"id": secret_id, "kek_id": kek.kek_id, "sealed": base64.b64encode(sealed).decode()}


def open_secret(
    kek: aead.KeyEncryptionKey, org_id: UUID, endpoint_id: UUID, sealed: dict[str, Any]
) -> bytes:
    """The 32 key bytes of a sealed secret (``aead.DecryptionError`` if moved or tampered with)."""
    blob = base64.b64decode(sealed["sealed"])
    return aead.open_(kek.key, blob, _aad(org_id, endpoint_id, str(sealed["id"])))


def check_url(url: str, *, allow_loopback: bool, resolver: Resolver = socket.getaddrinfo) -> str:
    url = url.strip()
    if not url or len(url) > MAX_URL:
        raise InvalidWebhookUrlError(f"the URL must be 1 to {MAX_URL} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError):
        raise InvalidWebhookUrlError(f"not a valid URL: {url!r}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidWebhookUrlError("the URL must be absolute http:// or https://")
    if parsed.userinfo:
        raise InvalidWebhookUrlError("the URL may not carry credentials")
    if parsed.fragment:
        raise InvalidWebhookUrlError("the URL may not carry a #fragment")
    try:
        resolve_checked(
            parsed.raw_host.decode("ascii"),
            parsed.port or (443 if parsed.scheme == "https" else 80),
            allow_loopback=allow_loopback,
            resolver=resolver,
        )
    except ForbiddenDestinationError as exc:
        raise ForbiddenWebhookDestinationError(str(exc)) from None
    except UnresolvableDestinationError as exc:
        raise InvalidWebhookUrlError(str(exc)) from None
    return url


class WebhookEndpoints:
    """Use cases of the ``WebhookEndpoint`` aggregate, on the ledger application."""

    def __init__(
        self,
        app: LedgerApplication,
        kek: aead.KeyEncryptionKey,
        *,
        allow_loopback: bool = False,
        overlap: timedelta = timedelta(hours=24),
        resolver: Resolver = socket.getaddrinfo,
    ) -> None:
        self.app = app
        self.kek = kek
        self.allow_loopback = allow_loopback
        self.overlap = overlap
        self.resolver = resolver
        self.known_types = deliverable_event_types()

    def check_url(self, url: str) -> str:
        return check_url(url, allow_loopback=self.allow_loopback, resolver=self.resolver)

    def create(
        self,
        org_id: UUID,
        *,
        url: str,
        event_types: list[str],
        description: str = "",
        enabled: bool = True,
        actor: Actor,
        context: RequestContext,
    ) -> tuple[WebhookEndpoint, str]:
        self.app.get_organization(org_id)
        url = self.check_url(url)
        types = check_event_types(event_types, self.known_types)
        description = WebhookEndpoint.check_description(description)
        endpoint_id = uuid4()
        secret = signing.new_secret()
        endpoint = WebhookEndpoint._create(  # the id is chosen first: the sealed secret names it
            WebhookEndpoint.Created,
            id=endpoint_id,
            org_id=org_id,
            url=url,
            event_types=types,
            description=description,
            enabled=enabled,
            secret=seal_secret(self.kek, org_id, endpoint_id, secret),
            actor=actor,
            context=context,
        )
        self.app.save(endpoint)
        return endpoint, secret

    def get(self, org_id: UUID, endpoint_id: UUID) -> WebhookEndpoint:
        return self.app._get(WebhookEndpoint, org_id, endpoint_id, WebhookEndpointNotFoundError)

    def update(
        self,
        org_id: UUID,
        endpoint_id: UUID,
        *,
        url: str | None = None,
        event_types: list[str] | None = None,
        description: str | None = None,
        actor: Actor,
        context: RequestContext,
    ) -> WebhookEndpoint:
        new_url = self.check_url(url) if url is not None else None
        types = (
            check_event_types(event_types, self.known_types) if event_types is not None else None
        )
        desc = WebhookEndpoint.check_description(description) if description is not None else None

        def change(ep: WebhookEndpoint) -> None:
            ep.update(
                new_url or ep.url,
                types or ep.event_types,
                ep.description if desc is None else desc,
                actor,
                context,
            )

        return self._modify(org_id, endpoint_id, change)

    def rotate_secret(
        self,
        org_id: UUID,
        endpoint_id: UUID,
        *,
        overlap: timedelta | None = None,
        actor: Actor,
        context: RequestContext,
    ) -> tuple[WebhookEndpoint, str, datetime]:
        """A new secret (shown once); the current one keeps signing for ``overlap``."""
        secret = signing.new_secret()
        sealed = seal_secret(self.kek, org_id, endpoint_id, secret)
        until = self.app.clock() + (self.overlap if overlap is None else overlap)
        endpoint = self._modify(
            org_id, endpoint_id, lambda ep: ep.rotate_secret(sealed, until, actor, context)
        )
        return endpoint, secret, until

    def disable(
        self, org_id: UUID, endpoint_id: UUID, reason: str, *, actor: Actor, context: RequestContext
    ) -> WebhookEndpoint:
        return self._modify(org_id, endpoint_id, lambda ep: ep.disable(reason, actor, context))

    def enable(
        self, org_id: UUID, endpoint_id: UUID, *, actor: Actor, context: RequestContext
    ) -> WebhookEndpoint:
        return self._modify(org_id, endpoint_id, lambda ep: ep.enable(actor, context))

    def _modify(self, org_id: UUID, endpoint_id: UUID, change: Any) -> WebhookEndpoint:
        return self.app._modify(
            WebhookEndpoint, org_id, endpoint_id, WebhookEndpointNotFoundError, change
        )[0]
