"""Time helpers: the one way to read an ISO-8601 time, and the current UTC time. Pure."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


def parse_utc(value: str) -> datetime:
    """Read an ISO-8601 time (`Z` or an offset; none means UTC) as an aware UTC datetime.

    Every CLI flag, console form field and webhook header goes through here, so they all
    accept the same spellings. Raises ValueError naming the value for anything else,
    including times that cannot be expressed in UTC (year 1 with a positive offset, year
    9999 with a negative one), and control characters (CPython's fromisoformat stops at a
    NUL and would read "12:00\\x00" as noon). Never another exception: callers catch
    ValueError only.
    """
    text = value.strip()
    try:
        if not text.isprintable():
            raise ValueError("control characters")
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        if parsed.tzinfo is None:
            return parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not an ISO-8601 time: {value!r}") from exc
