"""Hot-path INSERTs on the driver's own cursor, with the values bound as SQLAlchemy would.

SQLAlchemy's execution of one small statement costs several times what the database takes
to run it: about 0.1 ms of Python. The webhook door runs one INSERT per webhook, the
mapping one per order (the first-order claim) and one per batch (the orders' ledger rows,
`insert_ignore_many`), so those are written here once per table and dialect, in the
driver's parameter style, and run on a DBAPI cursor. Values go through each column type's
bind processing (UTCDateTime's UTC conversion, SQLite's datetime text), so the rows are the
same as SQLAlchemy would write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Dialect, Table
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.sql.schema import ColumnDefault

from connector.storage.db import Session

Binder = Callable[[Any], Any]


@cache
def insert_ignore_sql(
    table: Table, dialect: str, columns: tuple[str, ...], returning: bool = True
) -> str:
    """INSERT … ON CONFLICT DO NOTHING RETURNING the first key column, in the driver's
    parameter style (psycopg's or sqlite3's); a row comes back only when one was inserted.
    `returning=False` leaves the RETURNING out (for executemany)."""
    mark = "%({})s" if dialect == "postgresql" else ":{}"
    names = ", ".join(columns)
    marks = ", ".join(mark.format(column) for column in columns)
    key = next(iter(table.primary_key.columns)).name
    sql = f"INSERT INTO {table.name} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING"
    return f"{sql} RETURNING {key}" if returning else sql


_BINDERS: dict[tuple[str, str], dict[str, Binder | None]] = {}


def bind_values(table: Table, dialect: Dialect, values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` as SQLAlchemy would hand them to the driver for these columns."""
    binders = _BINDERS.get((table.name, dialect.name))
    if binders is None:
        binders = {column.name: column.type.bind_processor(dialect) for column in table.columns}
        _BINDERS[(table.name, dialect.name)] = binders
    bound = {}
    for column, value in values.items():
        binder = binders[column]
        bound[column] = value if binder is None or value is None else binder(value)
    return bound


def insert_ignore(session: Session, table: Table, values: Mapping[str, Any]) -> bool:
    """INSERT unless a row with the same unique key exists, in the session's transaction;
    True when a row was inserted. A driver error is raised as
    SQLAlchemy would raise it (OperationalError for a lost connection, and so on)."""
    if session.autoflush:  # as session.execute would, outside a no_autoflush block
        session.flush()
    connection = session.connection()
    dialect = connection.dialect
    values = _with_defaults(table, values)
    sql = insert_ignore_sql(table, dialect.name, tuple(values))
    row = bind_values(table, dialect, values)
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql, row)
        return cursor.fetchone() is not None
    except dialect.loaded_dbapi.Error as exc:
        raise _as_sqlalchemy_error(sql, row, exc, dialect) from exc
    finally:
        cursor.close()


def insert_ignore_many(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """INSERT each row unless one with the same unique key exists, in one executemany on
    the session's transaction (psycopg sends them in one pipeline: one round trip). Every
    row must name the same columns."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    filled = [_with_defaults(table, values) for values in rows]
    sql = insert_ignore_sql(table, dialect.name, tuple(filled[0]), returning=False)
    bound = [bind_values(table, dialect, values) for values in filled]
    cursor = connection.connection.cursor()
    try:
        cursor.executemany(sql, bound)
    except dialect.loaded_dbapi.Error as exc:
        raise _as_sqlalchemy_error(sql, bound, exc, dialect) from exc
    finally:
        cursor.close()


def _as_sqlalchemy_error(sql: str, params: Any, exc: Exception, dialect: Dialect) -> StatementError:
    """The driver's error as SQLAlchemy would raise it, without the parameters' values."""
    return DBAPIError.instance(
        sql, params, exc, dialect.loaded_dbapi.Error, hide_parameters=True, dialect=dialect
    )


def _with_defaults(table: Table, values: Mapping[str, Any]) -> Mapping[str, Any]:
    """`values` with the Python-side defaults of the columns it leaves out (what a Core
    INSERT would fill in: `default=False`, `default=utcnow`)."""
    filled = dict(values)
    for column in table.columns:
        default = column.default
        if column.name in values or not isinstance(default, ColumnDefault):
            continue
        if default.is_scalar:
            filled[column.name] = default.arg
        elif default.is_callable:  # SQLAlchemy wraps it to take the execution context
            filled[column.name] = default.arg(None)
    return filled
