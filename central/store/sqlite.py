"""Central's embedded store (``[store] url`` empty): one SQLite file in WAL mode, with the same face as
``PostgresStore`` (``transaction``, the events repository, routing's repository, ``describe``), so that the
code and tests above it run on either.

SQLite has no partitions: its retention deletes rows in small transactions (``central.store.retention``)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import sqlite_utils

from kuzet.central.routing.repository import SqliteRoutingRepository
from kuzet.central.store import events
from kuzet.central.store.schema import open_database

NEAREST_IN_MEMORY = "in-process-distance"


class SqliteStore:
    backend = "sqlite"
    events = events  # the events repository for this backend
    nearest_method = NEAREST_IN_MEMORY

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._local = threading.local()
        self._opened: list[sqlite_utils.Database] = []
        self._lock = threading.Lock()

    def open(self) -> SqliteStore:
        open_database(self.path).close()  # schema and migrations, once, up front
        return self

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for database in opened:
            database.close()
        self._local = threading.local()

    def db(self) -> sqlite_utils.Database:
        """This thread's connection (SQLite's cannot cross threads), kept until ``close()``: ``Central.db()``."""
        database = getattr(self._local, "db", None)
        if database is None:
            database = self._local.db = open_database(self.path, any_thread_may_close=True)
            with self._lock:
                self._opened.append(database)
        return database

    @contextlib.contextmanager
    def transaction(self) -> Iterator:
        """This thread's connection inside one write transaction: committed on leaving, rolled back on an
        exception."""
        conn = self.db().conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @contextlib.contextmanager
    def connection(self) -> Iterator[sqlite_utils.Database]:
        """This thread's database, each statement its own transaction unless the caller opens one (as
        ``Central.db()``): for modules that take either store's connection (``portable``, ``audit``)."""
        yield self.db()

    def routing_repository(self, conn=None) -> SqliteRoutingRepository:
        """Routing's statements on ``conn``, or on each calling thread's own connection (``db()``)."""
        return SqliteRoutingRepository(self.db if conn is None else lambda: conn)

    def describe(self) -> dict:
        conn = self.db().conn
        version = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
        return {
            "backend": self.backend,
            "server_version": conn.execute("SELECT sqlite_version()").fetchone()[0],
            "schema_version": version,
            "nearest_units": self.nearest_method,
            "partitions": [],
        }
