"""Engine, sessions and migrations. SQLite by default, PostgreSQL through DATABASE_URL."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, Engine, any_, bindparam, create_engine, event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.orm import Session, sessionmaker

from connector import jsontext

if TYPE_CHECKING:
    from alembic.config import Config

__all__ = [
    "Engine",
    "Session",
    "Sessions",
    "StorageUnavailableError",
    "checkpoint_after_commit",
    "storage_errors",
    "is_unavailable",
    "make_engine",
    "make_sessionmaker",
    "one_of",
    "transaction",
    "upgrade",
]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"

# A factory of sessions (units of work); the rest of the code passes this around.
Sessions = sessionmaker[Session]


def one_of(session: Session, column: Any, values: Iterable[Any]) -> ColumnElement[bool]:
    """`column IN (values)`; on PostgreSQL `column = ANY(:array)`, one parameter whatever
    the number of values, so the statement's text stays the same: psycopg converts it once
    (it converts a statement with more than 50 parameters again on every call) and the
    server can keep its plan."""
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))  # type: ignore[no-any-return]
    return column.in_(list(values))  # type: ignore[no-any-return]


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
        engine = create_engine(
            database_url, connect_args={"timeout": 15}, hide_parameters=True, **_JSON_CODEC
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url.removeprefix("postgresql://")
    # No pre-ping: it costs a round trip per checkout. After a database restart the first
    # statement on a dead connection fails (a job is retried) and SQLAlchemy then discards
    # the whole pool; the webhook's INSERT keeps connections of its own and tries a failed
    # one once more on a new connection (storage/inbox.py).
    # hide_parameters: a failed statement's message never carries the shopper's values
    # into a log line or a stored job failure.
    return create_engine(
        database_url,
        pool_size=5,
        max_overflow=10,
        pool_recycle=1800,
        hide_parameters=True,
        **_JSON_CODEC,
    )


# JSON columns (event properties, sent requests) are written and read on every event.
_JSON_CODEC = {"json_serializer": jsontext.dumps, "json_deserializer": jsontext.loads}


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes; WAL keeps it safe
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Deleted and overwritten content is zeroed in the file, not left in free space: a
    # customers/redact must not leave the erased values readable in the .db file.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def checkpoint_after_commit(session: Session) -> None:
    """On SQLite, once `session` commits, copy the WAL into the database and truncate it.

    Until then the -wal file still holds the pages as they were before an erasure (and a
    PASSIVE checkpoint leaves its old frames in the file). TRUNCATE waits for readers up to
    the busy timeout; a reader holding an old snapshot longer leaves the file as it is
    until the next erasure's checkpoint.
    """
    bind = session.get_bind()
    engine = bind if isinstance(bind, Engine) else bind.engine
    if engine.dialect.name != "sqlite" or session.info.get("checkpoint_after_commit"):
        return
    session.info["checkpoint_after_commit"] = True  # once per unit of work

    def checkpoint(_session: Session) -> None:
        session.info.pop("checkpoint_after_commit", None)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    event.listen(session, "after_commit", checkpoint, once=True)


def make_sessionmaker(engine: Engine) -> Sessions:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(sessions: Sessions) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with sessions() as session, session.begin():
        yield session


def alembic_config(database_url: str) -> Config:
    # Alembic is imported here, not at the top: every worker and CLI command imports this
    # module, and only migrations need Alembic (a tenth of a second at each start).
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, secret_key: str | None = None) -> None:
    """Apply every migration up to head (idempotent).

    `secret_key` (CONNECTOR_SECRET_KEY) is needed by migrations that re-key stored values
    (0009: redaction tombstones), only when there are such values.
    """
    from alembic import command

    url = engine.url.render_as_string(hide_password=False)
    config = alembic_config(url)
    migrating = _transactional_sqlite(url) if engine.dialect.name == "sqlite" else engine
    try:
        with migrating.begin() as connection:
            config.attributes["connection"] = connection
            config.attributes["secret_key"] = secret_key
            command.upgrade(config, "heads")
    finally:
        if migrating is not engine:
            migrating.dispose()


def _transactional_sqlite(url: str) -> Engine:
    """An engine whose transactions include DDL: Python's sqlite3 commits before a schema
    change on its own, so a migration failing half-way would leave the earlier ones applied
    but unrecorded. With the driver's own transaction handling off, BEGIN covers them all."""
    migrating = create_engine(url, connect_args={"timeout": 15})

    @event.listens_for(migrating, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(migrating, "begin")
    def _begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN")

    return migrating
