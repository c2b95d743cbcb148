"""The per-server rate limit: a token bucket per second and a sliding window per hour, on a fake clock."""

from __future__ import annotations

import pytest

from newsletter.delivery.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_no_limits_never_wait() -> None:
    limiter = RateLimiter(0, 0, clock=Clock())
    assert all(limiter.delay() == 0.0 for _ in range(10_000))


def test_token_bucket_allows_a_burst_of_one_second_then_paces() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=5, clock=clock)
    assert [limiter.delay() for _ in range(5)] == [0.0] * 5
    assert limiter.delay() == pytest.approx(0.2)
    clock.now += 0.2
    assert limiter.delay() == 0.0
    assert limiter.delay() > 0.0


def test_hourly_window_waits_until_the_oldest_send_is_an_hour_old() -> None:
    clock = Clock()
    limiter = RateLimiter(per_hour=3, clock=clock)
    for _step in range(3):
        assert limiter.delay() == 0.0
        clock.now += 10
    assert limiter.delay() == pytest.approx(3600 - 30)
    clock.now = 1000.0 + 3600
    assert limiter.delay() == 0.0
    assert limiter.delay() > 0.0


def test_both_limits_apply_and_the_longer_wait_wins() -> None:
    clock = Clock()
    limiter = RateLimiter(per_second=100, per_hour=2, clock=clock)
    assert limiter.delay() == 0.0 and limiter.delay() == 0.0
    assert limiter.delay() == pytest.approx(3600)
