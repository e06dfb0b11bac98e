"""RateLimiter against a real Redis (this run's own database: see conftest.redis_url)."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections.abc import Iterator

import pytest
from redis import Redis

from jobs.ratelimit import RateLimiter, RateLimitTimeout

RATE = 20


@pytest.fixture
def redis_db(redis_conn: Redis) -> Iterator[Redis]:
    yield redis_conn


def hammer(url: str, key: str, start_at: float, seconds: float) -> list[float]:
    """Ask for slots as fast as allowed from `start_at` (epoch) on; return the grant times."""
    client = Redis.from_url(url)
    limiter = RateLimiter(client, RATE)
    grants: list[float] = []
    time.sleep(max(0.0, start_at - time.time()))
    while time.time() < start_at + seconds:
        wait, at = limiter.try_acquire_at(key)
        if wait == 0.0:
            grants.append(at)
        else:
            time.sleep(wait)
    client.close()
    return grants


def max_in_one_second(times: list[float]) -> int:
    """Largest number of grants in any half-open window [t, t + 1s)."""
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - 1.0:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def test_grants_are_spaced_by_one_over_rate(redis_db: Redis) -> None:
    limiter = RateLimiter(redis_db, RATE)
    assert limiter.try_acquire("shop-a") == 0.0
    wait = limiter.try_acquire("shop-a")
    assert 0.04 < wait <= 0.05
    time.sleep(wait)
    assert limiter.try_acquire("shop-a") == 0.0
    started = time.monotonic()
    waited = sum(limiter.acquire("shop-a") for _ in range(10))
    elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 0.7 and waited == pytest.approx(elapsed, abs=0.05)


def test_threads_never_exceed_the_rate(redis_db: Redis, redis_url: str) -> None:
    results: list[list[float]] = []
    start_at = time.time() + 0.2

    def run() -> None:
        results.append(hammer(redis_url, "shop-t", start_at, 2.0))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    grants = results[0] + results[1]
    assert all(results), "both threads got slots"
    assert max_in_one_second(grants) <= RATE
    assert 2 * RATE - 3 <= len(grants) <= 2 * RATE + 1


def test_processes_never_exceed_the_rate(redis_db: Redis, redis_url: str) -> None:
    start_at = time.time() + 2.0  # spawning two interpreters takes a while on a busy machine
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.starmap(hammer, [(redis_url, "shop-p", start_at, 2.0)] * 2)
    grants = results[0] + results[1]
    assert all(results), "both processes got slots"
    assert max_in_one_second(grants) <= RATE
    assert 2 * RATE - 3 <= len(grants) <= 2 * RATE + 1


def test_acquire_from_threads_keeps_the_rate(redis_db: Redis) -> None:
    limiter = RateLimiter(redis_db, RATE)
    granted: list[float] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 1.5

    def run() -> None:
        while time.monotonic() < deadline:
            limiter.acquire("shop-q")
            with lock:
                granted.append(time.monotonic())

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Observed (client-side) times carry a little jitter, so allow one extra.
    assert max_in_one_second(granted) <= RATE + 1
    assert 1.5 * RATE - 3 <= len(granted) <= 1.5 * RATE + 4


def test_pause_delays_the_next_grant(redis_db: Redis) -> None:
    limiter = RateLimiter(redis_db, RATE)
    assert limiter.try_acquire("shop-a") == 0.0
    assert limiter.paused_for("shop-a") == 0.0
    limiter.pause("shop-a", 1.0)
    assert 0.95 < limiter.paused_for("shop-a") <= 1.0
    assert 0.95 < limiter.try_acquire("shop-a") <= 1.0
    started = time.monotonic()
    waited = limiter.acquire("shop-a")
    assert 0.9 < waited < 1.2 and 0.9 < time.monotonic() - started < 1.2
    assert limiter.paused_for("shop-a") == 0.0


def test_a_shorter_pause_never_shortens_a_longer_one(redis_db: Redis) -> None:
    limiter = RateLimiter(redis_db, RATE)
    limiter.pause("shop-a", 2.0)
    limiter.pause("shop-a", 0.5)
    assert limiter.paused_for("shop-a") > 1.9
    assert limiter.try_acquire("shop-a") > 1.9


def test_acquire_times_out(redis_db: Redis) -> None:
    limiter = RateLimiter(redis_db, RATE)
    limiter.pause("shop-a", 5.0)
    started = time.monotonic()
    with pytest.raises(RateLimitTimeout):
        limiter.acquire("shop-a", max_wait=0.5)
    assert time.monotonic() - started < 0.1  # fails fast instead of sleeping first


def test_keys_are_independent(redis_db: Redis) -> None:
    limiter = RateLimiter(redis_db, RATE)
    limiter.pause("shop-a", 5.0)
    assert limiter.try_acquire("shop-a") > 4
    assert limiter.try_acquire("shop-b") == 0.0
    assert limiter.try_acquire("shop-c") == 0.0
    assert limiter.try_acquire("shop-b") > 0.0


def test_keys_expire_on_their_own(redis_db: Redis) -> None:
    limiter = RateLimiter(redis_db, RATE, prefix="test:rate")
    limiter.try_acquire("shop-a")
    assert 0 < redis_db.pttl("test:rate:shop-a") <= 1050
    limiter.pause("shop-a", 3.0)
    assert 3000 < redis_db.pttl("test:rate:shop-a") <= 4050


def test_rate_must_be_positive(redis_db: Redis) -> None:
    with pytest.raises(ValueError):
        RateLimiter(redis_db, 0)
