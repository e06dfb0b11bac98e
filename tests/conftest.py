"""Fixtures: real Redis, real databases (SQLite, and PostgreSQL when reachable), real HTTP fakes."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, text

from connector import runtime
from connector.app import create_app
from connector.config import Settings
from connector.dev import embedded_redis
from connector.dev.fake_customerio import FakeCustomerIO
from connector.dev.isolation import claimed_redis_database, new_schema_name, schema_url
from connector.runtime import Runtime
from connector.storage.db import upgrade
from connector.storage.models import Base
from tests.support import API_KEY, SHOP, SITE_ID, add_shop, make_settings

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
TABLES = tuple(table.name for table in reversed(Base.metadata.sorted_tables))


def _reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=0.5).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis database of this run's own: TEST_REDIS_URL as given, else a database
    index claimed on the local server (so runs side by side never meet), else an embedded
    server."""
    if os.environ.get("TEST_REDIS_URL"):
        yield os.environ["TEST_REDIS_URL"]
        return
    if _reachable(LOCAL_REDIS):
        with claimed_redis_database(LOCAL_REDIS) as url:
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


def _engine(url: str) -> Engine:
    return create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """A PostgreSQL schema of this run's own, migrated to head and dropped at the end;
    None when PostgreSQL is not reachable."""
    schema = new_schema_name("test")
    try:
        admin = _engine(POSTGRES_URL)
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception:  # noqa: BLE001 - any failure means "not reachable here"
        yield None
        return
    url = schema_url(POSTGRES_URL, schema)
    try:
        engine = _engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/connector.db"
    url = request.getfixturevalue("postgres_url")
    if url is None:
        pytest.skip("PostgreSQL is not reachable on loopback")
    engine = _engine(url)
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(TABLES) + " CASCADE"))
    engine.dispose()
    return str(url)


@pytest.fixture
def fake_customerio() -> Iterator[FakeCustomerIO]:
    with FakeCustomerIO(credentials={SITE_ID: API_KEY}) as fake:
        yield fake


@pytest.fixture
def settings(
    database_url: str,
    redis_url: str,
    redis_conn: redis.Redis,
    tmp_path: Path,
    fake_customerio: FakeCustomerIO,
) -> Settings:
    return make_settings(
        database_url=database_url,
        redis_url=redis_url,
        instance_dir=tmp_path,
        customerio_track_url=fake_customerio.url,
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
