"""The durable outbox: every message a device must deliver is written here before it is published, and
moved out of the queue when the broker has acknowledged it (QoS 1 PUBACK).

An acknowledged row is not deleted at once: it is kept in ``delivered`` for a bounded window (a day, and a size
cap: the oldest go first and are counted, ``delivered_dropped``). A broker that crashes, or is replaced, loses
what it had acknowledged but not yet handed to central; central then asks for everything delivered since a
time (``down/resend``), and ``redeliver`` puts those rows back in the queue (central drops repeats by id).

One SQLite file per device (WAL, synchronous=FULL: a power cut must not lose an acknowledged write). A row is
``(topic, payload, priority, kind)``; a row may instead carry a ``ref`` and no payload, for bulky things kept
elsewhere (a clip chunk is read from the clip file when it is sent, so a clip is not stored twice).

Whatever must change together with a queued message lives in the same file and is written in the same
transaction (``with outbox.transaction() as tx``): named counters ("an event was created" and "its message is
queued" commit together), and the tables other modules add with ``add_table`` (the open-event journal, the
clips promised to central). A SIGKILL can then never leave one written without the other.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# A message as queued; a delivered row keeps the same columns (it can be queued again as it was).
_MESSAGE_COLUMNS = """
    topic TEXT NOT NULL,
    payload BLOB,
    ref TEXT,
    kind TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL"""
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT,{_MESSAGE_COLUMNS});
CREATE INDEX IF NOT EXISTS outbox_order ON outbox (priority DESC, id);
CREATE INDEX IF NOT EXISTS outbox_ref ON outbox (ref);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS delivered (id INTEGER PRIMARY KEY,{_MESSAGE_COLUMNS},
    delivered_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS delivered_at ON delivered (delivered_at);
CREATE TABLE IF NOT EXISTS resend_requests (id TEXT PRIMARY KEY, since REAL NOT NULL, rows INTEGER NOT NULL,
    handled_at REAL NOT NULL);
"""
_COLUMNS = "topic, payload, ref, kind, priority, size, created_at"
# Counted when the size cap drops a delivered row before its window ended (it can no longer be resent).
DELIVERED_DROPPED = "delivered_dropped"
RESEND_REQUESTS_KEPT = 50  # ids of handled resend requests remembered (a retained request comes back)

# Priorities: higher goes first within a lane. Events before their snapshots before bulky clip chunks.
PRIORITY_EVENT = 100
PRIORITY_RESULT = 90
PRIORITY_SNAPSHOT = 50
PRIORITY_CLIP = 10


@dataclass(frozen=True)
class Row:
    id: int
    topic: str
    payload: bytes | None
    ref: str | None
    kind: str
    priority: int
    size: int
    created_at: float


class Outbox:
    """The storage. Thread-safe: the publisher reads and deletes; messages are queued through the publisher
    (``Publisher.enqueue`` / ``Publisher.transaction``, the outbox's one door), or inside a transaction of the
    delivery modules that keep state next to their rows (the clip spool, the evidence hand-over)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # --- writing ------------------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Writes]:
        """One atomic write: everything done through the yielded ``Writes`` commits together, or not at all."""
        with self._lock, self._transaction():
            yield Writes(self._conn)

    def delete(self, row_ids: list[int]) -> None:
        if not row_ids:
            return
        with self._lock, self._transaction():
            self._conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in row_ids])

    def mark_delivered(self, row_ids: list[int], at: float | None = None) -> None:
        """The broker acknowledged these rows: out of the queue, into ``delivered`` (kept for ``redeliver``)."""
        if not row_ids:
            return
        at = time.time() if at is None else at
        args = [(at, i) for i in row_ids]
        with self._lock, self._transaction():
            self._conn.executemany(
                f"INSERT OR REPLACE INTO delivered (id, {_COLUMNS}, delivered_at)"
                f" SELECT id, {_COLUMNS}, ? FROM outbox WHERE id = ?",
                args,
            )
            self._conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in row_ids])

    def redeliver(self, request_id: str, since: float) -> int | None:
        """Queue again every row delivered at or after ``since`` (epoch seconds), once per request: returns how
        many, or None when ``request_id`` was handled before. The rows go to the end of the queue."""
        with self._lock, self._transaction():
            if self._conn.execute("SELECT 1 FROM resend_requests WHERE id = ?", (request_id,)).fetchone():
                return None
            cursor = self._conn.execute(
                f"INSERT INTO outbox ({_COLUMNS}) SELECT {_COLUMNS} FROM delivered"
                " WHERE delivered_at >= ? ORDER BY delivered_at, id",
                (since,),
            )
            count = cursor.rowcount
            self._conn.execute("DELETE FROM delivered WHERE delivered_at >= ?", (since,))
            self._conn.execute(
                "INSERT INTO resend_requests (id, since, rows, handled_at) VALUES (?, ?, ?, ?)",
                (request_id, since, count, time.time()),
            )
            self._conn.execute(
                "DELETE FROM resend_requests WHERE id NOT IN"
                " (SELECT id FROM resend_requests ORDER BY handled_at DESC LIMIT ?)",
                (RESEND_REQUESTS_KEPT,),
            )
        return count

    def prune_delivered(self, keep_s: float, keep_bytes: int, now: float | None = None) -> int:
        """End the window of delivered rows older than ``keep_s``, then drop the oldest past ``keep_bytes`` of
        payload; returns how many the size cap dropped (also counted as ``delivered_dropped``)."""
        now = time.time() if now is None else now
        with self._lock, self._transaction():
            self._conn.execute("DELETE FROM delivered WHERE delivered_at < ?", (now - keep_s,))
            total = self._conn.execute("SELECT COALESCE(SUM(size), 0) FROM delivered").fetchone()[0]
            if total <= keep_bytes:
                return 0
            cut = None
            for row_id, size in self._conn.execute(
                "SELECT id, size FROM delivered ORDER BY delivered_at, id"
            ):
                total -= size
                if total <= keep_bytes:
                    cut = row_id
                    break
            cursor = self._conn.execute(
                "DELETE FROM delivered WHERE (delivered_at, id) <="
                " (SELECT delivered_at, id FROM delivered WHERE id = ?)",
                (cut,),
            )
            dropped = cursor.rowcount
            Writes(self._conn).count(DELIVERED_DROPPED, dropped)
        return dropped

    def delivered_depth(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM delivered").fetchone()[0]

    def add_table(self, ddl: str) -> None:
        """Create another module's table (``CREATE TABLE IF NOT EXISTS ...``) in this database, so that its rows
        can be written in the same transactions as the messages they go with."""
        with self._lock:
            self._conn.executescript(ddl)

    def query(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, args).fetchall()

    # --- reading ------------------------------------------------------------------------------------------

    def next_rows(
        self, limit: int, *, after_id: int = 0, up_to_id: int | None = None, skip: set[int] = frozenset()
    ) -> list[Row]:
        """Rows with ``after_id < id <= up_to_id`` in sending order (priority, then oldest first)."""
        bound = up_to_id if up_to_id is not None else 2**62
        # A backlog can be tens of thousands of rows: walk the sending-order index and stop at the first few,
        # rather than sorting the whole id range on every call (SQLite's default plan here).
        index = "INDEXED BY outbox_order" if after_id == 0 else ""
        with self._lock:
            cursor = self._conn.execute(
                f"SELECT * FROM outbox {index} WHERE id > ? AND id <= ? ORDER BY priority DESC, id LIMIT ?",
                (after_id, bound, limit + len(skip)),
            )
            rows = [Row(*r) for r in cursor.fetchall()]
        return [r for r in rows if r.id not in skip][:limit]

    def pending_refs(self, prefix: str) -> int:
        with self._lock:
            return self._conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE ref >= ? AND ref < ?", (prefix, prefix + "\uffff")
            ).fetchone()[0]

    def last_id(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0]

    def depth(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]

    def depth_by_kind(self) -> dict[str, int]:
        with self._lock:
            return dict(self._conn.execute("SELECT kind, COUNT(*) FROM outbox GROUP BY kind").fetchall())

    # --- counters -----------------------------------------------------------------------------------------

    def add(self, name: str, amount: int = 1) -> None:
        with self.transaction() as tx:
            tx.count(name, amount)

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._conn.execute("SELECT name, value FROM counters").fetchall())

    def counter(self, name: str) -> int:
        return self.counters().get(name, 0)

    def _transaction(self):
        return _Transaction(self._conn)


class Writes:
    """The writes of one outbox transaction (see ``Outbox.transaction``); valid only inside its ``with``."""

    def __init__(self, conn: sqlite3.Connection):
        self._conn = conn
        self.row_ids: list[int] = []  # the rows queued, for the publisher's bookkeeping

    def put(
        self, topic: str, payload: bytes | None, *, kind: str, priority: int = 0, ref: str | None = None
    ) -> int:
        if payload is None and ref is None:
            raise ValueError("an outbox row needs a payload or a ref")
        cursor = self._conn.execute(
            f"INSERT INTO outbox ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (topic, payload, ref, kind, priority, len(payload or b""), time.time()),
        )
        self.row_ids.append(cursor.lastrowid)
        return cursor.lastrowid

    def has_ref(self, ref: str) -> bool:
        return self._conn.execute("SELECT 1 FROM outbox WHERE ref = ?", (ref,)).fetchone() is not None

    def delete_refs(self, prefix: str) -> int:
        """Remove queued rows whose ref starts with ``prefix`` (a clip dropped by the disk quota)."""
        cursor = self._conn.execute(
            "DELETE FROM outbox WHERE ref >= ? AND ref < ?", (prefix, prefix + "\uffff")
        )
        return cursor.rowcount

    def count(self, name: str, amount: int = 1) -> None:
        self._conn.execute(
            "INSERT INTO counters (name, value) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, amount),
        )

    def execute(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        """A statement on a table added with ``add_table``."""
        return self._conn.execute(sql, args)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error (the connection is in autocommit mode)."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb):
        self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
