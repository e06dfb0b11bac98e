"""Private Redis databases and PostgreSQL schemas, so test and benchmark runs can share a machine.

Two `make test` runs (or a benchmark beside the tests) each claim their own Redis database
index and create their own PostgreSQL schema, and drop them afterwards; nothing they do can
touch the other's data.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import redis

CLAIM_KEY = "connector:dev:claimed-db:{index}"
CLAIM_SECONDS = 6 * 3600  # longer than any run; a crashed run's claim expires on its own
FIRST_INDEX, LAST_INDEX = 1, 15  # database 0 holds the claims (and is what people use by hand)


class NoFreeDatabaseError(RuntimeError):
    """Raised when every Redis database index is claimed by another run."""


@contextmanager
def claimed_redis_database(server_url: str) -> Iterator[str]:
    """Claim a free database index on the Redis server at `server_url`; yield its URL.

    The claim is a key in database 0 (SET NX with an expiry), released at the end; the
    claimed database is flushed before and after use.
    """
    base = server_url.rstrip("/").rsplit("/", 1)[0] if _has_db(server_url) else server_url
    claims = redis.Redis.from_url(f"{base.rstrip('/')}/0")
    token = secrets.token_hex(8)
    for index in range(FIRST_INDEX, LAST_INDEX + 1):
        key = CLAIM_KEY.format(index=index)
        if claims.set(key, token, nx=True, ex=CLAIM_SECONDS):
            break
    else:
        raise NoFreeDatabaseError(f"all Redis databases {FIRST_INDEX}-{LAST_INDEX} are claimed")
    url = f"{base.rstrip('/')}/{index}"
    own = redis.Redis.from_url(url)
    own.flushdb()
    try:
        yield url
    finally:
        own.flushdb()
        own.close()
        if claims.get(key) == token.encode():
            claims.delete(key)
        claims.close()


def _has_db(url: str) -> bool:
    last = url.rstrip("/").rsplit("/", 1)[-1]
    return last.isdigit() and url.count("/") > 2


def schema_url(database_url: str, schema: str) -> str:
    """The URL whose connections use `schema` (search_path set by a libpq option)."""
    separator = "&" if "?" in database_url else "?"
    return f"{database_url}{separator}options={quote(f'-csearch_path={schema}')}"


def new_schema_name(prefix: str = "test") -> str:
    return f"{prefix}_{secrets.token_hex(6)}"
