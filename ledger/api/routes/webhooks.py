"""Webhook endpoints: register, change, rotate secrets, disable/enable; deliveries and redelivery.

Every route needs the ``webhooks:manage`` permission. A secret is in the answer to create and
rotate-secret only.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from ledger.api.deps import Principal, authenticate, get_ledger
from ledger.api.schemas import Strict
from ledger.bootstrap import Ledger
from ledger.domain.errors import WebhookEndpointNotFoundError
from ledger.domain.webhook import WebhookEndpoint

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"])

Auth = Annotated[Principal, Depends(authenticate)]
Led = Annotated[Ledger, Depends(get_ledger)]
PERMISSION = "webhooks:manage"


class EndpointCreate(Strict):
    url: str = Field(min_length=1, max_length=2048, examples=["https://example.com/hooks/ledger"])
    event_types: list[str] = Field(
        default_factory=lambda: ["license.*"],
        min_length=1,
        max_length=100,
        examples=[["license.*"], ["license.suspended", "license.revoked"]],
    )
    description: str = Field(default="", max_length=500)
    enabled: bool = True


class EndpointUpdate(Strict):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)


class RotateSecret(Strict):
    overlap_seconds: int | None = Field(
        default=None,
        ge=0,
        le=30 * 86400,
        description="how long the current secret keeps signing (default 24 h)",
    )


class DisableBody(Strict):
    reason: str = Field(default="disabled by an operator", max_length=500)


class EndpointOut(BaseModel):
    id: str
    org_id: str
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    secret_ids: list[str]
    failing_since: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    secret: str | None = Field(default=None, description="shown once: on create and rotation")
    previous_secret_expires_at: datetime | None = None


class AttemptOut(BaseModel):
    attempted_at: datetime
    status_code: int | None
    latency_ms: float
    error: str | None
    outcome: str


class DeliveryOut(BaseModel):
    id: int
    endpoint_id: str
    event_id: str
    event_type: str
    org_seq: int
    status: str
    attempt_count: int
    attempts: list[AttemptOut]
    next_attempt_at: datetime | None
    created_at: datetime
    delivered_at: datetime | None
    last_status_code: int | None
    last_error: str | None


def _id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise WebhookEndpointNotFoundError(f"webhook endpoint {value!r} not found") from None


def endpoint_out(ep: WebhookEndpoint, **extra: Any) -> dict[str, Any]:
    return {
        "id": str(ep.id),
        "org_id": str(ep.org_id),
        "url": ep.url,
        "event_types": ep.event_types,
        "description": ep.description,
        "enabled": ep.enabled,
        "disabled_reason": ep.disabled_reason,
        "secret_ids": [s["id"] for s in ep.secrets],
        "created_at": ep.created_on,
        "updated_at": ep.modified_on,
        **extra,
    }


def settle(ledger: Ledger) -> None:
    """Read-your-writes for the endpoint view, when the webhook worker runs in this process."""
    worker = ledger.extras.get("webhook_worker")
    if worker is not None:
        worker.runner.wait_for(
            ledger.app.last_notification_id, ledger.settings.read_your_writes_timeout
        )


@router.post("", status_code=201, response_model=EndpointOut, summary="Register an endpoint")
def create(body: EndpointCreate, who: Auth, ledger: Led) -> dict[str, Any]:
    who.require(PERMISSION)
    ep, secret = ledger.webhooks.create(
        who.org_id, **body.model_dump(), actor=who.actor, context=who.context
    )
    settle(ledger)
    return endpoint_out(ep, secret=secret)


@router.get("", response_model=list[EndpointOut], summary="List endpoints")
def list_endpoints(who: Auth, ledger: Led) -> list[dict[str, Any]]:
    who.require(PERMISSION)
    return [e.as_dict() for e in ledger.webhook_view.endpoints(who.org_id)]


@router.get("/{endpoint_id}", response_model=EndpointOut)
def read(endpoint_id: str, who: Auth, ledger: Led) -> dict[str, Any]:
    who.require(PERMISSION)
    return ledger.webhook_view.endpoint(who.org_id, _id(endpoint_id)).as_dict()


@router.patch("/{endpoint_id}", response_model=EndpointOut, summary="Change URL, filter or text")
def update(endpoint_id: str, body: EndpointUpdate, who: Auth, ledger: Led) -> dict[str, Any]:
    who.require(PERMISSION)
    ep = ledger.webhooks.update(
        who.org_id, _id(endpoint_id), **body.model_dump(), actor=who.actor, context=who.context
    )
    settle(ledger)
    return endpoint_out(ep)


@router.post("/{endpoint_id}/actions/rotate-secret", response_model=EndpointOut)
def rotate_secret(
    endpoint_id: str, who: Auth, ledger: Led, body: RotateSecret | None = None
) -> dict[str, Any]:
    who.require(PERMISSION)
    overlap = None
    if body is not None and body.overlap_seconds is not None:
        overlap = timedelta(seconds=body.overlap_seconds)
    ep, secret, until = ledger.webhooks.rotate_secret(
        who.org_id, _id(endpoint_id), overlap=overlap, actor=who.actor, context=who.context
    )
    settle(ledger)
    return endpoint_out(ep, secret=secret, previous_secret_expires_at=until)


@router.post("/{endpoint_id}/actions/disable", response_model=EndpointOut)
def disable(
    endpoint_id: str, who: Auth, ledger: Led, body: DisableBody | None = None
) -> dict[str, Any]:
    who.require(PERMISSION)
    reason = body.reason if body is not None else "disabled by an operator"
    ep = ledger.webhooks.disable(
        who.org_id, _id(endpoint_id), reason, actor=who.actor, context=who.context
    )
    settle(ledger)
    return endpoint_out(ep)


@router.post("/{endpoint_id}/actions/enable", response_model=EndpointOut)
def enable(endpoint_id: str, who: Auth, ledger: Led) -> dict[str, Any]:
    who.require(PERMISSION)
    ep = ledger.webhooks.enable(who.org_id, _id(endpoint_id), actor=who.actor, context=who.context)
    settle(ledger)
    return endpoint_out(ep)


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=list[DeliveryOut],
    summary="Deliveries, newest first, each with every attempt",
)
def deliveries(
    endpoint_id: str,
    who: Auth,
    ledger: Led,
    status: Literal["pending", "delivered", "failed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    before: Annotated[int | None, Query(ge=1, description="delivery id cursor")] = None,
) -> list[dict[str, Any]]:
    who.require(PERMISSION)
    return ledger.webhook_view.deliveries(
        who.org_id, _id(endpoint_id), status=status, limit=limit, before=before
    )


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/actions/redeliver",
    status_code=202,
    summary="Send a delivery again (fresh retry schedule, head of the queue)",
)
def redeliver(endpoint_id: str, delivery_id: int, who: Auth, ledger: Led) -> dict[str, Any]:
    who.require(PERMISSION)
    ledger.webhook_view.redeliver(who.org_id, _id(endpoint_id), delivery_id, ledger.app.clock())
    worker = ledger.extras.get("webhook_worker")
    if worker is not None:
        worker.sender.poke()
    return {"id": delivery_id, "status": "pending"}
