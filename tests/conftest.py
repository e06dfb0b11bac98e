"""Fixtures: real Redis, real databases (SQLite, and PostgreSQL when reachable), real HTTP fakes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text

from connector import embedded_redis, runtime
from connector.app import create_app
from connector.config import Settings
from connector.db import upgrade
from connector.models import Base
from connector.runtime import Runtime
from connector.sandbox import LocalCustomerIO
from tests.support import API_KEY, SHOP, SITE_ID, add_shop, make_settings

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
TABLES = tuple(table.name for table in reversed(Base.metadata.sorted_tables))


def _reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis: TEST_REDIS_URL, else the local server's db 15, else an embedded one."""
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    if _reachable(url):
        yield url
        return
    process, url = embedded_redis.start(tmp_path_factory.mktemp("redis"))
    yield url
    process.terminate()


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    conn.flushdb()
    yield conn
    conn.flushdb()


@pytest.fixture(scope="session")
def postgres_ready() -> bool:
    try:
        engine = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"))
        with engine.begin() as conn:
            conn.execute(
                text("DROP TABLE IF EXISTS " + ", ".join(TABLES) + ", alembic_version CASCADE")
            )
        upgrade(engine)
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable here"
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/connector.db"
    if not request.getfixturevalue("postgres_ready"):
        pytest.skip("PostgreSQL is not reachable on loopback")
    engine = create_engine(POSTGRES_URL.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(TABLES) + " CASCADE"))
    engine.dispose()
    return POSTGRES_URL


@pytest.fixture
def fake_cio() -> Iterator[LocalCustomerIO]:
    with LocalCustomerIO(credentials={SITE_ID: API_KEY}) as fake:
        yield fake


@pytest.fixture
def settings(
    database_url: str,
    redis_url: str,
    redis_conn: redis.Redis,
    tmp_path: Path,
    fake_cio: LocalCustomerIO,
) -> Settings:
    return make_settings(
        database_url=database_url,
        redis_url=redis_url,
        instance_dir=tmp_path,
        customerio_track_url=fake_cio.url,
    )


@pytest.fixture
def rt(settings: Settings) -> Iterator[Runtime]:
    current = runtime.install(Runtime(settings))
    upgrade(current.engine)
    yield current
    current.engine.dispose()


@pytest.fixture
def shop(rt: Runtime) -> str:
    add_shop(rt, SHOP)
    return SHOP


@pytest.fixture
def client(rt: Runtime) -> FlaskClient:
    return create_app(rt).test_client()
