"""A per-workspace request-rate limiter shared through Redis by every worker and process.

GCRA with a burst of one: grants are spaced at least 1/rate apart, so any one-second window
holds at most `rate` grants. The state is one small hash per key (`tat`: the theoretical
arrival time of the next grant, `pause`: the end of a Retry-After pause), read and written in
a Lua script that takes "now" from Redis `TIME`, so the clocks of the workers do not matter.
Times are integer microseconds, which Lua's doubles hold exactly.
"""

from __future__ import annotations

import math
import time

from redis import Redis

from connector import metrics

_TTL_MARGIN_MS = 1000

# KEYS[1] hash; ARGV[1] interval (us), ARGV[2] ttl margin (ms).
# Returns {wait_us, now_us}; wait_us == 0 means granted (and the TAT moved on by one interval).
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('HGET', KEYS[1], 'tat') or '0')
if tat > now then
  return {tat - now, now}
end
tat = now + tonumber(ARGV[1])
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat))
redis.call('PEXPIRE', KEYS[1], math.ceil((tat - now) / 1000) + tonumber(ARGV[2]))
return {0, now}
"""

# KEYS[1] hash; ARGV[1] pause (us), ARGV[2] ttl margin (ms). Only ever moves times forward.
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local untl = now + tonumber(ARGV[1])
local tat = tonumber(redis.call('HGET', KEYS[1], 'tat') or '0')
local pause = tonumber(redis.call('HGET', KEYS[1], 'pause') or '0')
if untl > tat then tat = untl end
if untl > pause then pause = untl end
local fmt = '%.0f'
redis.call('HSET', KEYS[1], 'tat', fmt:format(tat), 'pause', fmt:format(pause))
redis.call('PEXPIRE', KEYS[1], math.ceil((tat - now) / 1000) + tonumber(ARGV[2]))
return {math.max(pause - now, 0), now}
"""

# KEYS[1] hash. Returns the remaining pause in us (0 when not paused).
_PAUSED_FOR = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local pause = tonumber(redis.call('HGET', KEYS[1], 'pause') or '0')
return math.max(pause - now, 0)
"""


class RateLimitTimeout(Exception):
    """Raised by `RateLimiter.acquire` when the wait would exceed `max_wait`."""

    reason = "rate_limit_timeout"


class RateLimiter:
    """Space requests per key at 1/rate seconds, across threads, processes and machines."""

    def __init__(
        self, redis: Redis, rate_per_second: float, *, prefix: str = "connector:rate"
    ) -> None:
        if rate_per_second <= 0:
            raise ValueError("rate_per_second must be positive")
        self.redis = redis
        self.rate_per_second = rate_per_second
        self.prefix = prefix
        # Round the spacing up so rounding can never let through more than `rate` a second.
        self.interval_us = math.ceil(1_000_000 / rate_per_second)
        self._acquire = redis.register_script(_ACQUIRE)
        self._pause = redis.register_script(_PAUSE)
        self._paused_for = redis.register_script(_PAUSED_FOR)

    def __repr__(self) -> str:
        return f"RateLimiter(rate_per_second={self.rate_per_second}, prefix={self.prefix!r})"

    def try_acquire(self, key: str) -> float:
        """Take a slot now if one is free: return 0.0, else the seconds to wait (atomic)."""
        return self.try_acquire_at(key)[0]

    def try_acquire_at(self, key: str) -> tuple[float, float]:
        """Like `try_acquire`, also returning the Redis time (epoch seconds) of the decision."""
        wait_us, now_us = self._acquire(
            keys=[self._key(key)], args=[self.interval_us, _TTL_MARGIN_MS]
        )
        return int(wait_us) / 1e6, int(now_us) / 1e6

    def acquire(self, key: str, max_wait: float = 30.0) -> float:
        """Sleep until a slot is granted; return the seconds waited.

        Raises RateLimitTimeout (without sleeping further) when the next wait would take the
        total beyond `max_wait`.
        """
        started = time.monotonic()
        while True:
            wait = self.try_acquire(key)
            waited = time.monotonic() - started
            if wait == 0.0:
                metrics.RATELIMIT_WAIT.observe(waited)
                return waited
            if waited + wait > max_wait:
                metrics.RATELIMIT_TIMEOUTS.inc()
                raise RateLimitTimeout(
                    f"rate limit for {key!r}: would wait {waited + wait:.2f}s > {max_wait:.2f}s"
                )
            time.sleep(wait)

    def pause(self, key: str, seconds: float) -> None:
        """Hold every worker off `key` for `seconds` from now (e.g. a 429's Retry-After)."""
        if seconds <= 0:
            return
        self._pause(keys=[self._key(key)], args=[math.ceil(seconds * 1e6), _TTL_MARGIN_MS])

    def paused_for(self, key: str) -> float:
        """Seconds left of a `pause` on `key` (0.0 when not paused)."""
        return int(self._paused_for(keys=[self._key(key)])) / 1e6

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"
