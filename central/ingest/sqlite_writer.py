"""What ingest's writer does only on the embedded SQLite store: its connection's pragmas, and the WAL
checkpoint on a thread of its own. On PostgreSQL the writer stores on its thread's connection as it is: the
server keeps its own cache and checkpoints, and every commit is durable (``synchronous_commit`` on).

SQLite's automatic checkpoint (copying the WAL back into the database) runs in whichever thread commits; on the
writer it cost about a third of its throughput. ``Checkpointer`` does it instead, PASSIVE so that it never
blocks the writer.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

import sqlite_utils

log = logging.getLogger(__name__)

CHECKPOINT_INTERVAL_S = 1.0
# SQLite page cache of the writer's connection.
WRITER_CACHE_MIB = 64


def is_sqlite(db) -> bool:
    return isinstance(db, sqlite_utils.Database)


def writer_connection(db):
    """The connection the writer stores batches on: for SQLite, the thread's sqlite3 connection tuned for
    the writer; for PostgreSQL, ``db`` itself (a psycopg connection in autocommit)."""
    if not is_sqlite(db):
        return db
    db.execute("PRAGMA wal_autocheckpoint=0")  # this connection only: the Checkpointer does it
    # The indexes ingest writes to stay in memory (SQLite's default cache is 2 MiB).
    db.execute(f"PRAGMA cache_size=-{WRITER_CACHE_MIB * 1024}")
    # A commit is followed by PUBACKs: it must survive a power cut too, not only a killed process (WAL with
    # NORMAL syncs only at checkpoints). One fsync per batch.
    db.execute("PRAGMA synchronous=FULL")
    return db.conn


class Checkpointer:
    """Checkpoints the WAL every ``CHECKPOINT_INTERVAL_S`` on a thread of its own until ``closing`` is set,
    then once more after ``writer`` (the thread that commits) has ended."""

    def __init__(self, db: Callable[[], sqlite_utils.Database], closing: threading.Event):
        self._db, self._closing = db, closing
        self._writer: threading.Thread | None = None
        self._thread = threading.Thread(target=self._run, name="ingest-checkpoint", daemon=True)

    def start(self, writer: threading.Thread) -> Checkpointer:
        self._writer = writer
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        self._thread.join(timeout=timeout)

    def _run(self) -> None:
        db = self._db()
        while True:
            closing = self._closing.wait(CHECKPOINT_INTERVAL_S)
            if closing and self._writer is not None:
                self._writer.join()  # one last round after the writer's last commit
            try:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error as exc:  # e.g. the disk is full: ingest carries on, the WAL grows meanwhile
                log.warning("ingest: WAL checkpoint failed: %s", exc)
            if closing:
                return
