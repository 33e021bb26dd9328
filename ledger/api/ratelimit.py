"""In-process GCRA (generic cell rate algorithm) rate limiter.

GCRA keeps one number per key, the *theoretical arrival time* (TAT). With emission interval
``T = period / rate`` a request at ``now`` is allowed when ``max(TAT, now) + T - now`` is at
most ``burst * T``; allowing it advances TAT to ``max(TAT, now) + T``. Consequences:

* a fresh key may make ``burst`` requests at once, then one every ``T`` seconds;
* over any window of length ``W`` at most ``burst + W / T`` requests are allowed;
* denied requests do not move TAT, so hammering a limit does not extend the penalty.

Time is passed in (``now``, seconds on any monotonic scale) and handled internally as integer
nanoseconds, the emission interval rounded up. ``Decision.limit`` and
``remaining`` count in requests against ``burst``, the most that can be made at once.
Memory is bounded by sweeping keys whose TAT is in the past (those are indistinguishable
from fresh keys) whenever the table grows past ``max_keys``; if every key is still active the
next sweep waits until the table has doubled, which keeps the sweep cost amortised O(1).
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass

__all__ = ["Decision", "GcraLimiter", "RateLimit"]

_PERIODS = {"second": 1.0, "minute": 60.0, "hour": 3600.0, "day": 86400.0}
_SPEC_RE = re.compile(r"\s*([0-9]{1,9})\s*/\s*(second|minute|hour|day)\s*")
# Arithmetic is done in integer nanoseconds: in floats, ``(now + T) - now != T`` for most
# ``now``, which would deny a fresh key's first request at some instants.
_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class RateLimit:
    """``rate`` requests per ``period`` seconds, with up to ``burst`` at once."""

    rate: int
    period: float
    burst: int

    def __post_init__(self) -> None:
        if isinstance(self.rate, bool) or self.rate < 1:
            raise ValueError("rate must be a positive integer")
        if not (math.isfinite(self.period) and self.period > 0):
            raise ValueError("period must be a positive, finite number of seconds")
        if isinstance(self.burst, bool) or self.burst < 1:
            raise ValueError("burst must be a positive integer")

    @property
    def emission_interval(self) -> float:
        """Seconds between requests at the steady rate."""
        return self.period / self.rate

    @property
    def emission_interval_ns(self) -> int:
        """The emission interval in whole nanoseconds, rounded up so the rate is never exceeded."""
        return max(1, -(-round(self.period * _NS) // self.rate))

    @classmethod
    def parse(cls, text: str, *, burst: int | None = None) -> RateLimit:
        """Parse ``"100/minute"``, ``"10/second"``, ``"5000/hour"`` or ``"N/day"``.

        ``burst`` defaults to the rate (a full period's allowance may be spent at once).
        """
        match = _SPEC_RE.fullmatch(text)
        if match is None:
            raise ValueError(f"invalid rate limit {text!r}; expected e.g. '100/minute'")
        rate = int(match.group(1))
        return cls(
            rate=rate, period=_PERIODS[match.group(2)], burst=rate if burst is None else burst
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one :meth:`GcraLimiter.check`."""

    allowed: bool
    limit: int
    remaining: int
    reset_after: float
    """Seconds until the key is back to a full burst."""
    retry_after: float
    """Seconds until this request would be allowed; 0 when allowed."""

    def headers(self) -> dict[str, str]:
        """``RateLimit-*`` headers (integer seconds, rounded up), plus ``Retry-After`` on denial."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(math.ceil(self.reset_after)),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


class GcraLimiter:
    """Thread-safe GCRA limiter keyed by arbitrary strings (API key id, client IP, ...)."""

    def __init__(self, *, max_keys: int = 100_000) -> None:
        if max_keys < 1:
            raise ValueError("max_keys must be positive")
        self._max_keys = max_keys
        self._sweep_at = max_keys
        self._tats: dict[str, int] = {}  # key -> TAT in nanoseconds
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._tats)

    def check(self, key: str, limit: RateLimit, *, now: float) -> Decision:
        """Decide whether a request for ``key`` at time ``now`` is within ``limit``."""
        if not math.isfinite(now):
            raise ValueError("now must be finite")
        now_ns = round(now * _NS)
        interval = limit.emission_interval_ns
        tolerance = limit.burst * interval
        with self._lock:
            tat = max(self._tats.get(key, now_ns), now_ns)
            allowed = tat + interval - now_ns <= tolerance
            if allowed:
                tat += interval
                self._tats[key] = tat
                if len(self._tats) > self._sweep_at:
                    self._sweep(now_ns)
        backlog = tat - now_ns  # debt in nanoseconds; 0 for a fresh key
        return Decision(
            allowed=allowed,
            limit=limit.burst,
            remaining=max(0, (tolerance - backlog) // interval),
            reset_after=backlog / _NS,
            retry_after=0.0 if allowed else (backlog + interval - tolerance) / _NS,
        )

    def _sweep(self, now: int) -> None:
        """Drop keys whose TAT has passed; caller holds the lock."""
        self._tats = {k: t for k, t in self._tats.items() if t > now}
        self._sweep_at = max(self._max_keys, 2 * len(self._tats))
