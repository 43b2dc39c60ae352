"""The audit log's storage: every statement on the ``audit`` table, for SQLite (``SqliteAuditRows``, on a
sqlite-utils database) and PostgreSQL (``PostgresAuditRows``, on a psycopg connection). ``audit.py`` keeps the
chain, the MACs and the checks and calls these methods, so the same log runs on either store.

What differs: placeholders; how an append takes the log's write lock (SQLite ``BEGIN IMMEDIATE``, PostgreSQL a
transaction-scoped advisory lock, so that two workers never chain onto the same entry); where the append-only
triggers come from (SQLite creates them on first append, as older databases lack them; PostgreSQL has them
from migration 0003); and which name the audit key file is registered under (``identity``)."""

from __future__ import annotations

import contextlib
import sqlite3
import weakref
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

COLUMNS = "seq, ts, actor, action, target, detail, prev_hash, hash, mac"
_INSERT = f"INSERT INTO audit ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_HEAD = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
_APPEND_ONLY_SQLITE = [
    f"CREATE TRIGGER IF NOT EXISTS audit_no_{verb.lower()} BEFORE {verb} ON audit"
    " BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
    for verb in ("UPDATE", "DELETE")
]
# Any fixed number: the advisory lock that serialises appends to the chain across workers.
_APPEND_LOCK = 0x6B757A6574_01  # "kuzet" 01
# psycopg connections inside an ``appending`` that holds the lock (each thread has its own connection).
_HOLDING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class SqliteAuditRows:
    def __init__(self, db: sqlite_utils.Database):
        self.db = db

    def _execute(self, sql: str, params=()):
        return self.db.execute(sql, list(params))

    def identity(self) -> str | None:
        """The database file (None for one in memory): the audit key lives beside it unless configured."""
        for _, name, path in self._execute("PRAGMA database_list").fetchall():
            if name == "main":
                return str(Path(path).resolve()) if path else None
        return None

    def default_key_dir(self) -> Path | None:
        identity = self.identity()
        return Path(identity).parent if identity else None

    @contextlib.contextmanager
    def appending(self) -> Iterator[None]:
        """The log's write lock up front, so two writers cannot chain onto the same row; nested use joins the
        outer transaction."""
        conn = self.db.conn
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def prepare(self) -> None:
        """Inside ``appending``: what an append needs that older databases may lack."""
        for statement in _APPEND_ONLY_SQLITE:
            self._execute(statement)
        self.ensure_mac_column()

    def ensure_mac_column(self) -> None:
        columns = {row[1] for row in self._execute("PRAGMA table_info(audit)").fetchall()}
        if "mac" not in columns:
            self._execute("ALTER TABLE audit ADD COLUMN mac TEXT")

    def head(self) -> tuple[int, str] | None:
        row = self._execute(_HEAD).fetchone()
        return (row[0], row[1]) if row else None

    def last_seq(self) -> int:
        return self._execute("SELECT max(seq) FROM audit").fetchone()[0] or 0

    def insert(self, values: list) -> None:
        self._execute(_INSERT, values)

    def all(self):
        self.ensure_mac_column()
        return self._execute(f"SELECT {COLUMNS} FROM audit ORDER BY seq").fetchall()

    def between(self, first: int, last: int):
        self.ensure_mac_column()
        return self._execute(
            f"SELECT {COLUMNS} FROM audit WHERE seq BETWEEN ? AND ?", [first, last]
        ).fetchall()

    def count_upto(self, seq: int) -> int:
        return self._execute("SELECT count(*) FROM audit WHERE seq <= ?", [seq]).fetchone()[0]

    def select(self, where: list[str], params: list, limit: int):
        """Newest first; ``where``: conditions with ``?`` placeholders, ANDed."""
        sql = "SELECT seq, ts, actor, action, target, detail, hash FROM audit"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._execute(sql + " ORDER BY seq DESC LIMIT ?", [*params, limit]).fetchall()


class PostgresAuditRows(SqliteAuditRows):
    """The same statements on a psycopg connection (its own transaction, or the caller's)."""

    def __init__(self, conn):
        self.conn = conn

    def _execute(self, sql: str, params=()):
        return self.conn.execute(sql.replace("?", "%s"), list(params))

    def identity(self) -> str:
        return postgres_identity(self.conn.info.host, self.conn.info.port, self.conn.info.dbname)

    def default_key_dir(self) -> None:
        return None  # the server's files are not ours: the key file must be configured (use_key_file)

    @contextlib.contextmanager
    def appending(self) -> Iterator[None]:
        """The lock for the outermost ``appending`` on this connection; inside it, nothing more: the lock is
        held until that transaction ends (routing's batch appends an entry or two per dispatch, each of which
        would otherwise cost a savepoint, its release and the lock again: three round trips)."""
        if _HOLDING.get(self.conn):
            yield
            return
        with self.conn.transaction():
            self._execute("SELECT pg_advisory_xact_lock(?)", [_APPEND_LOCK])
            _HOLDING[self.conn] = True
            try:
                yield
            finally:
                del _HOLDING[self.conn]

    def prepare(self) -> None:
        return None  # the triggers and the mac column come with migration 0003

    def ensure_mac_column(self) -> None:
        return None


def postgres_identity(host, port, dbname) -> str:
    return f"postgresql://{host or ''}:{port or 5432}/{dbname}"


def rows_for(db) -> SqliteAuditRows:
    """The audit rows of whatever store ``db`` is: a sqlite-utils database, a sqlite3 connection or a psycopg
    connection."""
    if isinstance(db, SqliteAuditRows):
        return db
    if isinstance(db, sqlite_utils.Database):
        return SqliteAuditRows(db)
    if isinstance(db, sqlite3.Connection):  # SqliteStore.transaction's connection
        return SqliteAuditRows(sqlite_utils.Database(db))
    return PostgresAuditRows(db)
