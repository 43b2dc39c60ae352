"""Central's store on PostgreSQL (``[store] url = "postgresql://..."``): a connection pool, the versioned
migrations, the monthly partitions of ``events`` and retention by dropping them.

Partitions: ``events_YYYY_MM`` covers the received_at strings from ``'YYYY-MM'`` up to the next month's
(ISO-8601 text in the "C" collation sorts as time). ``ensure_partitions`` creates the current month and
``ahead`` more, so inserts never wait on DDL. ``drop_expired_partitions`` drops a month once all of it is older
than the cutoff: in one transaction it detaches the month, puts its held events back (they land in
``events_default``, as no month covers them any more), deletes the timeline and id claims of the others and
drops the table, with an audit entry. An evidence hold is never lost, and no row-by-row DELETE runs over a
month of events; the media, dispatches and evidence those events leave then expire through
``retention.run_on_postgresql`` as belonging to no remaining event.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from psycopg_pool import ConnectionPool

from kuzet.central.auth import audit
from kuzet.central.routing.repository_pg import NEAREST_KNN, NEAREST_SQL, PostgresRoutingRepository
from kuzet.central.store import events_pg, migrate

_PARTITION = re.compile(r"^events_(\d{4})_(\d{2})$")


@dataclass(frozen=True)
class DroppedMonth:
    partition: str
    events: int  # rows dropped with it
    held: int  # held events kept (moved to events_default)


class PostgresStore:
    backend = "postgresql"
    events = events_pg  # the events repository for this backend

    def __init__(self, url: str, *, pool_min: int = 1, pool_max: int = 10, partitions_ahead_months: int = 3):
        self.url = url
        self.partitions_ahead_months = partitions_ahead_months
        # Each connection is checked as it is handed out: one broken by a server restart or failover is
        # replaced, rather than failing the caller's next transaction.
        self.pool = ConnectionPool(
            url,
            min_size=pool_min,
            max_size=pool_max,
            open=False,
            name="kuzet-store",
            check=ConnectionPool.check_connection,
        )
        self.nearest_method = NEAREST_SQL
        self._threads: dict[threading.Thread, psycopg.Connection] = {}  # db(): each thread's own
        self._threads_lock = threading.Lock()

    def open(self, now: datetime | None = None) -> PostgresStore:
        """Open the pool, bring the schema to the newest version and create the coming months' partitions."""
        self.pool.open(wait=True, timeout=30)
        with self.pool.connection() as conn:
            conn.autocommit = True
            try:
                migrate.migrate_postgresql(conn)
                self.nearest_method = NEAREST_KNN if _has_position_column(conn) else NEAREST_SQL
            finally:
                conn.autocommit = False
        self.ensure_partitions(now)
        return self

    def close(self) -> None:
        with self._threads_lock:
            held, self._threads = list(self._threads.values()), {}
        for conn in held:
            conn.close()
        self.pool.close()

    def db(self) -> psycopg.Connection:
        """This thread's own connection in autocommit (``Central.db()``), kept for the thread: each statement
        its own transaction unless the caller opens one (``portable.transaction``, ``audit.transaction``), as
        SQLite's ``db()``. Outside the pool, which keeps its connections for short loans: a thread holds this
        one for its life. One broken by a server restart or failover is replaced on the next call; those of
        threads that have ended are closed when another thread opens one."""
        thread = threading.current_thread()
        conn = self._threads.get(thread)
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        fresh = psycopg.connect(self.url, autocommit=True)
        with self._threads_lock:
            ended = [t for t in self._threads if not t.is_alive()]
            gone = [self._threads.pop(t) for t in ended]
            if conn is not None:
                gone.append(conn)
            self._threads[thread] = fresh
        for old in gone:
            old.close()
        return fresh

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """A pooled connection inside one transaction: committed on leaving, rolled back on an exception."""
        with self.pool.connection() as conn:
            yield conn

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection in autocommit: each statement its own transaction unless the caller opens one
        (``conn.transaction()``, as ``audit.transaction`` does), as SQLite's ``connection()``. A refused
        log-in's failure row is then kept although the call raises."""
        with self.pool.connection() as conn:
            conn.autocommit = True
            try:
                yield conn
            finally:
                conn.autocommit = False

    def routing_repository(self, conn: psycopg.Connection | None = None) -> PostgresRoutingRepository:
        """Routing's statements on ``conn``, or on each calling thread's own connection (``db()``)."""
        connection = self.db if conn is None else lambda: conn
        return PostgresRoutingRepository(connection, nearest_method=self.nearest_method)

    def describe(self) -> dict:
        """For the health page: which engine, schema version, and how nearest units are found."""
        with self.transaction() as conn:
            version = conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0]
            server = conn.execute("SHOW server_version").fetchone()[0]
        return {
            "backend": self.backend,
            "server_version": server,
            "schema_version": version,
            "nearest_units": self.nearest_method,
            "partitions": self.partitions(),
        }

    # --- partitions -----------------------------------------------------------------------------------

    def partitions(self) -> list[str]:
        """The monthly partitions of ``events``, oldest first."""
        with self.transaction() as conn:
            names = [
                row[0]
                for row in conn.execute(
                    "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = 'events'::regclass"
                )
            ]
        return sorted(n for n in names if _PARTITION.match(n))

    def ensure_partitions(self, now: datetime | None = None) -> list[str]:
        """Create the partitions of this month and the next ``partitions_ahead_months``; returns those made."""
        year, month = _month(now)
        made = []
        existing = set(self.partitions())
        for step in range(self.partitions_ahead_months + 1):
            y, m = divmod(month - 1 + step, 12)
            start = (year + y, m + 1)
            name = _name(*start)
            if name in existing:
                continue
            with self.transaction() as conn:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF events "
                    f"FOR VALUES FROM ('{_bound(*start)}') TO ('{_bound(*_next(*start))}')"
                )
            made.append(name)
        return made

    def drop_expired_partitions(self, cutoff: str) -> list[DroppedMonth]:
        """Drop every month wholly older than ``cutoff`` (a wire time), keeping its held events."""
        dropped = []
        for name in self.partitions():
            year, month = (int(part) for part in _PARTITION.match(name).groups())
            if _bound(*_next(year, month)) > cutoff:
                continue
            with self.transaction() as conn:
                conn.execute(f"ALTER TABLE events DETACH PARTITION {name}")
                held = conn.execute(f"INSERT INTO events SELECT * FROM {name} WHERE hold = 1").rowcount
                gone = f"SELECT event_id FROM {name} WHERE hold IS DISTINCT FROM 1"
                conn.execute(f"DELETE FROM event_updates WHERE event_id IN ({gone})")
                conn.execute(f"DELETE FROM event_keys WHERE event_id IN ({gone})")
                conn.execute(f"DELETE FROM clips WHERE event_id IN ({gone})")  # their files: as loose media
                total = conn.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
                conn.execute(f"DROP TABLE {name}")
                month = DroppedMonth(name, total - held, held)
                audit.append(
                    conn, "system", "retention.drop_partition", "events", {"reason": "age", **month.__dict__}
                )
            dropped.append(month)
        return dropped


def _has_position_column(conn) -> bool:
    sql = "SELECT 1 FROM information_schema.columns WHERE table_name = 'units' AND column_name = 'position'"
    return conn.execute(sql).fetchone() is not None


def _month(now: datetime | None) -> tuple[int, int]:
    now = now or datetime.now(UTC)
    return now.year, now.month


def _next(year: int, month: int) -> tuple[int, int]:
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _name(year: int, month: int) -> str:
    return f"events_{year:04d}_{month:02d}"


def _bound(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"
