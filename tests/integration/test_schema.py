"""The schema is known in one place: the migrations build exactly what models.py describes."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from connector.storage.db import make_engine, upgrade
from connector.storage.models import Base


# SQLite cannot reflect an index on an expression (ix_events_checkout_token), so SQLAlchemy
# and alembic warn and leave it out there; PostgreSQL compares it, and the test below
# checks it on SQLite.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_migrations_and_models_agree(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_sqlite_indexes_are_the_ones_models_create(tmp_path: Path) -> None:
    migrated, created = tmp_path / "migrated.db", tmp_path / "created.db"
    engine = make_engine(f"sqlite:///{migrated}")
    upgrade(engine)
    engine.dispose()
    engine = make_engine(f"sqlite:///{created}")
    Base.metadata.create_all(engine)
    engine.dispose()
    assert _index_sql(migrated) == _index_sql(created)
    assert (
        "json_extract(properties, '$.checkout_token')"
        in _index_sql(created)["ix_events_checkout_token"]
    )


def _index_sql(path: Path) -> dict[str, str]:
    """Each named index's CREATE statement, as SQLite stored it."""
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
        return {name: sql for name, sql in rows if sql is not None}


def test_inbox_bodies_are_compressed_with_lz4_on_postgresql(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("a PostgreSQL column setting")
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        with engine.connect() as conn:
            method = conn.exec_driver_sql(
                "SELECT attcompression FROM pg_attribute"
                " WHERE attrelid = 'webhook_deliveries'::regclass AND attname = 'body'"
            ).scalar_one()
    finally:
        engine.dispose()
    assert method == "l"  # lz4 (this server is built with it; others keep pglz)
