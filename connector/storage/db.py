"""Engine, sessions and migrations. SQLite by default, PostgreSQL through DATABASE_URL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

__all__ = [
    "Engine",
    "Session",
    "Sessions",
    "StorageUnavailableError",
    "storage_errors",
    "is_unavailable",
    "make_engine",
    "make_sessionmaker",
    "transaction",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# A factory of sessions (units of work); the rest of the code passes this around.
Sessions = sessionmaker[Session]


class StorageUnavailableError(Exception):
    """Raised when the database cannot be reached or refuses a write; nothing was stored."""


@contextmanager
def storage_errors() -> Iterator[None]:
    """Translate SQLAlchemy's errors into StorageUnavailableError at the storage edge."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StorageUnavailableError(type(exc).__name__) from exc


_SQLITE_UNAVAILABLE = ("locked", "busy", "unable to open", "disk", "readonly")


def is_unavailable(exc: BaseException) -> bool:
    """True when the database could not be reached or was busy (try again later), as
    opposed to refusing what one row holds (a bad value: set that row aside)."""
    if isinstance(exc, OperationalError) and exc.orig.__class__.__module__ == "sqlite3":
        # SQLite says OperationalError for a locked database and for a malformed value.
        return any(word in str(exc.orig) for word in _SQLITE_UNAVAILABLE)
    if isinstance(exc, StorageUnavailableError | OperationalError | InterfaceError):
        return True
    if isinstance(exc, PoolTimeoutError | ConnectionError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def make_engine(database_url: str) -> Engine:
    """Create an engine tuned for the backend: WAL and a busy timeout on SQLite."""
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(database_url, connect_args={"timeout": 15}, hide_parameters=True)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    # No pre-ping: it costs a round trip on every webhook. After a database restart the
    # first statement on a dead connection fails (the webhook gets 503 and Shopify retries,
    # a job is retried) and SQLAlchemy then discards the whole pool.
    # hide_parameters: a failed statement's message never carries the shopper's values
    # into a log line or a stored job failure.
    return create_engine(
        database_url, pool_size=5, max_overflow=10, pool_recycle=1800, hide_parameters=True
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes; WAL keeps it safe
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_sessionmaker(engine: Engine) -> Sessions:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: Sessions) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with sessions() as session, session.begin():
        yield session


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(engine: Engine) -> None:
    """Apply every migration up to head (idempotent)."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")
