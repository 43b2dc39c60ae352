"""Versioned schema migrations for both backends: numbered SQL files in ``migrations/<backend>/``
(``0001_tables.sql``, ``0002_...``), each applied once, in order, and recorded in ``schema_migrations``.

Several central processes may start at once against one database: PostgreSQL serialises them with an advisory
lock held for the transaction, SQLite with ``BEGIN IMMEDIATE``; the second process finds the versions applied
and does nothing. A file is applied with the version row in the same transaction, so a failed migration leaves
the database at the version before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from kuzet.shared import timeutil

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# Any constant: every central process migrating a PostgreSQL database takes this advisory lock.
_PG_MIGRATION_LOCK = 7_523_001
_CREATE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
    "applied_at text NOT NULL)"
)


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available(backend: str) -> list[Migration]:
    """The migration files shipped for ``backend`` ("sqlite" or "postgresql"), in version order."""
    folder = Path(__file__).parent / "migrations" / backend
    found = []
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise RuntimeError(f"{backend} migrations must be numbered 1..n without gaps, found {versions}")
    return found


def migrate_sqlite(conn) -> list[int]:
    """Apply the SQLite migrations not yet applied (``conn``: a sqlite3 connection); returns their versions."""
    conn.execute(_CREATE)
    conn.execute("BEGIN IMMEDIATE")
    try:
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        applied = []
        for migration in available("sqlite"):
            if migration.version in done:
                continue
            for statement in _statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                [migration.version, migration.name, timeutil.now_wire()],
            )
            applied.append(migration.version)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return applied


def migrate_postgresql(conn) -> list[int]:
    """Apply the PostgreSQL migrations not yet applied (``conn``: a psycopg connection, not in a transaction);
    returns their versions."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", [_PG_MIGRATION_LOCK])
        conn.execute(_CREATE)
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        applied = []
        for migration in available("postgresql"):
            if migration.version in done:
                continue
            conn.execute(migration.sql)  # a file may hold several statements (simple query protocol)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                [migration.version, migration.name, timeutil.now_wire()],
            )
            applied.append(migration.version)
    return applied


def _statements(sql: str) -> list[str]:
    """The statements of a SQLite migration file (its files hold no ';' inside a statement)."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
