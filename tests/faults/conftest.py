"""Fixtures of the fault suite: the connector behind cuttable proxies, real processes.

The connector (this process's app and runtime, and every subprocess) reaches PostgreSQL
and Redis through a `Proxy` of the test's own, so a test can take them "down" without
touching the shared servers; the test itself looks at the tables directly (`Observer`).
Without PostgreSQL on loopback the suite runs on SQLite and skips the PostgreSQL faults.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from connector.config import Settings
from connector.dev.fake_customerio import FakeCustomerIO
from connector.storage.models import Base
from tests.faults.harness import Observer, Processes
from tests.faults.proxy import Proxy, through, upstream_of
from tests.support import make_settings

TABLES = tuple(table.name for table in reversed(Base.metadata.sorted_tables))


@pytest.fixture
def direct_database_url(postgres_url: str | None, tmp_path: Path) -> str:
    """This test's database as the test sees it: the run's PostgreSQL schema, emptied,
    else a SQLite file."""
    if postgres_url is None:
        return f"sqlite:///{tmp_path}/connector.db"
    engine = create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE " + ", ".join(TABLES) + " CASCADE"))
    engine.dispose()
    return postgres_url


@pytest.fixture
def needs_postgres(postgres_url: str | None) -> None:
    if postgres_url is None:
        pytest.skip("PostgreSQL is not reachable on loopback")


@pytest.fixture
def db_proxy(direct_database_url: str) -> Iterator[Proxy | None]:
    """A cuttable proxy in front of PostgreSQL (None on SQLite: a file has no link to cut)."""
    if direct_database_url.startswith("sqlite"):
        yield None
        return
    with Proxy(upstream_of(direct_database_url)) as proxy:
        yield proxy


@pytest.fixture
def redis_proxy(redis_url: str) -> Iterator[Proxy]:
    with Proxy(upstream_of(redis_url)) as proxy:
        yield proxy


@pytest.fixture
def settings(
    direct_database_url: str,
    db_proxy: Proxy | None,
    redis_url: str,
    redis_proxy: Proxy,
    redis_conn: object,  # flushes the run's Redis database before and after
    tmp_path: Path,
    fake_customerio: FakeCustomerIO,
) -> Settings:
    """The suite's settings with the links through the proxies and time compressed."""
    database_url = direct_database_url
    if db_proxy is not None:
        database_url = through(direct_database_url, db_proxy)
    return make_settings(
        database_url=database_url,
        redis_url=through(redis_url, redis_proxy),
        instance_dir=tmp_path,
        customerio_track_url=fake_customerio.url,
        retry_schedule=(1, 1, 1, 2, 2),
        lease_seconds=3,
        sweep_interval_seconds=1,
    )


@pytest.fixture
def observer(direct_database_url: str) -> Iterator[Observer]:
    observer = Observer(direct_database_url)
    yield observer
    observer.close()


@pytest.fixture
def processes(settings: Settings, tmp_path: Path) -> Iterator[Processes]:
    logs = tmp_path / "logs"
    logs.mkdir()
    procs = Processes(settings, logs)
    yield procs
    procs.stop_all()
