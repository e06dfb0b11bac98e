"""The retry policy, in one place: exponential steps with jitter, honouring Retry-After."""

from __future__ import annotations

import random
from datetime import datetime, timedelta


def next_attempt_at(
    now: datetime,
    attempts: int,
    schedule: tuple[int, ...],
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> datetime | None:
    """When to try again after `attempts` failed tries, or None when the schedule is spent."""
    if attempts > len(schedule):
        return None
    base = schedule[attempts - 1]
    delay = base * (rng or random).uniform(0.8, 1.2)
    if retry_after is not None:
        delay = max(delay, retry_after)
    return now + timedelta(seconds=delay)
