"""Statements written once, in the SQL that both engines speak, run on either store's connection: a
sqlite-utils database or sqlite3 connection (the embedded store) or a psycopg connection (PostgreSQL).

For modules whose SQL has nothing engine-specific (accounts, sessions, tokens, dead letters): they keep their
few statements and call ``execute``/``rows``/``row`` here instead of a connection's own ``execute``. Only
the placeholders differ: ``?`` and ``:name`` are written for SQLite and turned into psycopg's ``%s`` and
``%(name)s`` for PostgreSQL (none of these statements holds a literal ``?``, ``%`` or ``:``). Where the
dialects really differ (upserts, nearest units, partitions) a module has a repository class per engine
instead (``routing/repository_pg.py``, ``auth/audit_rows.py``)."""

from __future__ import annotations

import contextlib
import functools
import re
import sqlite3
import sys

import sqlite_utils

_NAMED = re.compile(r":([A-Za-z_]\w*)")


def is_sqlite(db) -> bool:
    return isinstance(db, sqlite_utils.Database | sqlite3.Connection)


def is_database_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the database's own error (SQLite's, or psycopg's where it is loaded: a site on SQLite
    needs no PostgreSQL driver)."""
    psycopg = sys.modules.get("psycopg")
    return isinstance(exc, sqlite3.Error) or (psycopg is not None and isinstance(exc, psycopg.Error))


def json_member(db, column: str, key: str) -> str:
    """The SQL for member ``key`` of the JSON text in ``column``, as text (NULL where absent or JSON null): for
    a comparison with a string or an ``IS NULL`` test."""
    if is_sqlite(db):
        return f"json_extract({column}, '$.{key}')"
    return f"(CAST({column} AS jsonb) ->> '{key}')"  # CAST, not ``::``: a ``:name`` is a placeholder here


@functools.lru_cache(maxsize=512)
def _postgres_style(sql: str, named: bool) -> str:
    sql = sql.replace("%", "%%")
    return _NAMED.sub(r"%(\1)s", sql) if named else sql.replace("?", "%s")


def execute(db, sql: str, params: list | tuple | dict = ()):
    """Run one statement on ``db``; returns the cursor (``rowcount``, ``fetchone``, ``fetchall``)."""
    if isinstance(db, sqlite_utils.Database):
        return db.execute(sql, params)
    if isinstance(db, sqlite3.Connection):
        return db.execute(sql, params)
    return db.execute(_postgres_style(sql, isinstance(params, dict)), params)


@contextlib.contextmanager
def transaction(db):
    """One transaction (committed on leaving, rolled back on an exception) on either store's connection; inside
    a caller's transaction it is a savepoint (sqlite-utils' ``atomic``, psycopg's ``transaction``). A bare
    sqlite3 connection commits as its own context manager does."""
    if isinstance(db, sqlite_utils.Database):
        with db.atomic():
            yield
    elif isinstance(db, sqlite3.Connection):
        with db:
            yield
    else:
        with db.transaction():
            yield


@contextlib.contextmanager
def pipelined(db):
    """On PostgreSQL, psycopg's pipeline mode: a statement whose result nobody reads goes without waiting for
    the server, so a transaction of many statements costs a round trip per result read and one to commit
    (an error surfaces at the next read or at the end). Nothing changes on SQLite."""
    if is_sqlite(db):
        yield
    else:
        with db.pipeline():
            yield


def executemany(db, sql: str, params_seq) -> None:
    """One statement over many parameter rows (psycopg pipelines them)."""
    if is_sqlite(db):
        (db.conn if isinstance(db, sqlite_utils.Database) else db).executemany(sql, params_seq)
        return
    with db.cursor() as cursor:
        cursor.executemany(_postgres_style(sql, False), params_seq)


def rows(db, sql: str, params: list | tuple | dict = ()) -> list[dict]:
    """Every row of a query as a dict by column name."""
    cursor = execute(db, sql, params)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


def row(db, sql: str, params: list | tuple | dict = ()) -> dict | None:
    """The first row of a query as a dict, or None."""
    found = rows(db, sql, params)
    return found[0] if found else None
