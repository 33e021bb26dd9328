from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.api.ratelimit import Decision, GcraLimiter, RateLimit


def allowed_at(limiter: GcraLimiter, limit: RateLimit, times: list[float]) -> list[bool]:
    return [limiter.check("k", limit, now=t).allowed for t in times]


def test_fresh_key_gets_the_full_burst_then_is_denied() -> None:
    limiter = GcraLimiter()
    limit = RateLimit(rate=1, period=1.0, burst=3)
    decisions = [limiter.check("k", limit, now=0.0) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[3].retry_after == pytest.approx(1.0)


def test_after_the_burst_requests_flow_at_the_steady_rate() -> None:
    limiter = GcraLimiter()
    limit = RateLimit(rate=2, period=1.0, burst=2)  # one request every 0.5 s
    times = [0.0, 0.0, 0.0, 0.25, 0.5, 0.5, 0.75, 1.0, 1.0, 1.5]
    assert allowed_at(limiter, limit, times) == [
        True, True, False, False, True, False, False, True, False, True,
    ]  # fmt: skip


def test_an_idle_key_refills_to_the_full_burst_and_no_further() -> None:
    limiter = GcraLimiter()
    limit = RateLimit(rate=1, period=1.0, burst=3)
    assert allowed_at(limiter, limit, [0.0] * 3) == [True] * 3
    # Idle for much longer than burst * T: exactly the burst is available again.
    assert allowed_at(limiter, limit, [100.0] * 4) == [True, True, True, False]


def test_denied_requests_do_not_extend_the_penalty() -> None:
    limiter = GcraLimiter()
    limit = RateLimit(rate=1, period=1.0, burst=1)
    assert limiter.check("k", limit, now=0.0).allowed
    for _ in range(50):
        assert not limiter.check("k", limit, now=0.5).allowed
    assert limiter.check("k", limit, now=1.0).allowed


def test_keys_are_limited_independently() -> None:
    limiter = GcraLimiter()
    limit = RateLimit(rate=1, period=1.0, burst=1)
    assert limiter.check("a", limit, now=0.0).allowed
    assert not limiter.check("a", limit, now=0.0).allowed
    assert limiter.check("b", limit, now=0.0).allowed


def test_retry_after_is_the_wait_until_the_next_allowed_request() -> None:
    limiter = GcraLimiter()
    limit = RateLimit(rate=10, period=10.0, burst=2)  # T = 1 s
    limiter.check("k", limit, now=0.0)
    limiter.check("k", limit, now=0.0)
    denied = limiter.check("k", limit, now=0.25)
    assert not denied.allowed
    assert denied.retry_after == pytest.approx(0.75)
    assert denied.reset_after == pytest.approx(1.75)
    assert not limiter.check("k", limit, now=0.999).allowed
    assert limiter.check("k", limit, now=1.0).allowed


def test_reset_after_is_time_until_full_burst_is_available() -> None:
    limiter = GcraLimiter()
    limit = RateLimit(rate=10, period=10.0, burst=5)
    first = limiter.check("k", limit, now=0.0)
    assert first.reset_after == pytest.approx(1.0)
    assert first.limit == 5
    assert first.remaining == 4
    assert first.retry_after == 0.0


def test_headers_for_an_allowed_request() -> None:
    decision = Decision(allowed=True, limit=100, remaining=7, reset_after=2.1, retry_after=0.0)
    assert decision.headers() == {
        "RateLimit-Limit": "100",
        "RateLimit-Remaining": "7",
        "RateLimit-Reset": "3",
    }


def test_headers_for_a_denied_request_round_up_and_retry_after_is_at_least_one() -> None:
    decision = Decision(allowed=False, limit=5, remaining=0, reset_after=4.2, retry_after=0.01)
    assert decision.headers() == {
        "RateLimit-Limit": "5",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "5",
        "Retry-After": "1",
    }
    assert Decision(False, 5, 0, 4.0, 2.5).headers()["Retry-After"] == "3"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100/minute", RateLimit(100, 60.0, 100)),
        ("10/second", RateLimit(10, 1.0, 10)),
        ("5000/hour", RateLimit(5000, 3600.0, 5000)),
        (" 7 / day ", RateLimit(7, 86400.0, 7)),
    ],
)
def test_parse_accepts_count_per_unit(text: str, expected: RateLimit) -> None:
    assert RateLimit.parse(text) == expected


def test_parse_takes_an_explicit_burst() -> None:
    assert RateLimit.parse("100/minute", burst=10) == RateLimit(100, 60.0, 10)


@pytest.mark.parametrize(
    "text",
    ["", "100", "/minute", "100/minutes", "100/fortnight", "0/second", "-1/second",
     "1.5/second", "1_000/second", "\u0661\u0660/second", "100/Minute", "1000000000/second"],
)  # fmt: skip
def test_parse_rejects_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        RateLimit.parse(text)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 0, "period": 1.0, "burst": 1},
        {"rate": 1, "period": 0.0, "burst": 1},
        {"rate": 1, "period": float("inf"), "burst": 1},
        {"rate": 1, "period": float("nan"), "burst": 1},
        {"rate": 1, "period": 1.0, "burst": 0},
    ],
)
def test_rate_limit_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RateLimit(**kwargs)  # type: ignore[arg-type]


def test_non_finite_clock_is_rejected() -> None:
    with pytest.raises(ValueError):
        GcraLimiter().check("k", RateLimit(1, 1.0, 1), now=float("nan"))


def test_table_is_swept_of_expired_keys_when_it_grows_past_the_bound() -> None:
    limiter = GcraLimiter(max_keys=10)
    limit = RateLimit(rate=1, period=1.0, burst=1)
    for i in range(1000):
        limiter.check(f"client-{i}", limit, now=float(i) * 2)  # each key expires within 1 s
        assert len(limiter) <= 11


def test_sweep_keeps_active_keys_so_their_limits_still_hold() -> None:
    limiter = GcraLimiter(max_keys=4)
    limit = RateLimit(rate=1, period=100.0, burst=1)
    for i in range(20):
        assert limiter.check(f"client-{i}", limit, now=0.0).allowed
    assert len(limiter) == 20
    for i in range(20):
        assert not limiter.check(f"client-{i}", limit, now=1.0).allowed


def test_concurrent_checks_never_exceed_the_burst() -> None:
    limiter = GcraLimiter()
    limit = RateLimit(rate=1, period=1000.0, burst=50)
    results: list[bool] = []
    lock = threading.Lock()

    def hammer() -> None:
        local = [limiter.check("shared", limit, now=0.0).allowed for _ in range(100)]
        with lock:
            results.extend(local)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(results) == 50


@given(
    rate=st.integers(1, 20),
    period=st.sampled_from([0.1, 1.0, 3.0, 60.0]),
    burst=st.integers(1, 10),
    gaps=st.lists(st.floats(0.0, 5.0, allow_nan=False), min_size=1, max_size=80),
)
def test_no_window_ever_allows_more_than_burst_plus_rate(
    rate: int, period: float, burst: int, gaps: list[float]
) -> None:
    limit = RateLimit(rate=rate, period=period, burst=burst)
    limiter = GcraLimiter()
    now, allowed = 0.0, []
    for gap in gaps:
        now += gap * limit.emission_interval
        if limiter.check("k", limit, now=now).allowed:
            allowed.append(now)
    # The worst windows start and end on allowed requests.
    for i, start in enumerate(allowed):
        for j in range(i, len(allowed)):
            window = allowed[j] - start
            assert j - i + 1 <= burst + rate * window / period + 1e-6


@given(
    rate=st.integers(1, 20),
    burst=st.integers(1, 10),
    gaps=st.lists(st.floats(0.0, 3.0, allow_nan=False), max_size=50),
)
def test_remaining_matches_what_is_actually_allowed_next(
    rate: int, burst: int, gaps: list[float]
) -> None:
    limit = RateLimit(rate=rate, period=1.0, burst=burst)
    limiter = GcraLimiter()
    now = 0.0
    for gap in gaps:
        now += gap
        limiter.check("k", limit, now=now)
    remaining = limiter.check("probe", limit, now=now).remaining  # fresh key: burst - 1
    assert remaining == burst - 1
    before = limiter.check("k", limit, now=now)
    more = 0
    while limiter.check("k", limit, now=now).allowed:
        more += 1
    if before.allowed:
        assert more == before.remaining
    else:
        assert more == 0


@given(
    now=st.floats(0.0, 4e9, allow_nan=False),
    rate=st.integers(1, 1000),
    period=st.sampled_from([0.1, 1.0, 60.0, 3600.0]),
    burst=st.integers(1, 5),
)
def test_a_fresh_key_gets_exactly_its_burst_at_any_instant(
    now: float, rate: int, period: float, burst: int
) -> None:
    # Regression: float arithmetic made (now + T) - now > T and denied first requests.
    limiter = GcraLimiter()
    limit = RateLimit(rate=rate, period=period, burst=burst)
    decisions = [limiter.check("k", limit, now=now) for _ in range(burst + 1)]
    assert [d.allowed for d in decisions] == [True] * burst + [False]
    assert [d.remaining for d in decisions] == [*range(burst - 1, -1, -1), 0]
    assert decisions[-1].retry_after > 0
