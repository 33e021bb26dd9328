"""Who may call, from where, and how often: client address, IP allowlists and rate limits.

One :class:`AccessControl` per app (built by ``create_app``, nothing global). Limits are kept in
process memory (GCRA, :mod:`ledger.api.ratelimit`); docs/api.md says how they add up across
several API processes.
"""

from __future__ import annotations

import time
from functools import lru_cache

from fastapi import Request

from ledger.api.ipallow import IpAllowlist, client_ip
from ledger.api.ratelimit import Decision, GcraLimiter, RateLimit
from ledger.domain.errors import IpNotAllowedError, RateLimitedError
from ledger.settings import Settings


@lru_cache(maxsize=4096)
def _allowlist(cidrs: tuple[str, ...]) -> IpAllowlist:
    return IpAllowlist(cidrs)


@lru_cache(maxsize=1024)
def _limit(spec: str) -> RateLimit:
    return RateLimit.parse(spec)


class AccessControl:
    def __init__(self, settings: Settings) -> None:
        self.trusted_proxies = IpAllowlist(settings.trusted_proxies)
        self.default_key_limit = settings.api_key_rate_limit
        self.validate_limit = (
            RateLimit.parse(settings.validate_rate_limit) if settings.validate_rate_limit else None
        )
        self.limiter = GcraLimiter()

    def client_ip(self, request: Request) -> str | None:
        """The socket peer, or the first untrusted X-Forwarded-For hop behind trusted proxies."""
        if request.client is None:
            return None
        forwarded = ",".join(request.headers.getlist("x-forwarded-for")) or None
        return client_ip(request.client.host, forwarded, self.trusted_proxies)

    def check_allowlist(self, cidrs: list[str], ip: str | None) -> None:
        if cidrs and (ip is None or not _allowlist(tuple(cidrs)).allows(ip)):
            raise IpNotAllowedError("this API key may not be used from this address")

    def check_key_rate(self, key_id: str, spec: str | None) -> Decision | None:
        spec = spec or self.default_key_limit
        if not spec:
            return None
        return self._check(f"key:{key_id}", _limit(spec))

    def check_ip_rate(self, ip: str | None) -> Decision | None:
        if self.validate_limit is None:
            return None
        return self._check(f"ip:{ip}", self.validate_limit)

    def _check(self, bucket: str, limit: RateLimit) -> Decision:
        decision = self.limiter.check(bucket, limit, now=time.monotonic())
        if not decision.allowed:
            raise RateLimitedError(
                f"rate limit exceeded; retry after {decision.headers()['Retry-After']} s",
                decision.headers(),
            )
        return decision
