"""What every part of central shares: configuration, the database, the live hub and the way out to MQTT.

SQLite connections cannot cross threads, so ``db()`` hands each thread (ingest writer, each web request
thread, routing timers) a connection of its own to the same WAL database. ``close()`` closes them all once the
parts have stopped: a process that starts central more than once (tests, the demo) must not keep every old
connection's file descriptors open.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from kuzet.central.config import CentralConfig
from kuzet.central.live import LiveHub
from kuzet.central.store.schema import open_database

Publish = Callable[[str, bytes], None]


def _not_connected(topic: str, payload: bytes) -> None:
    raise RuntimeError(f"central has no MQTT connection to publish {topic}")


@dataclass
class Central:
    config: CentralConfig
    data_dir: Path
    hub: LiveHub = field(default_factory=LiveHub)
    publish: Publish = _not_connected  # set once the MQTT link is up: publish(topic, payload) at QoS 1
    ingest: Any = None  # the running IngestService (set by its start()), for /healthz and /metrics
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _opened: list[sqlite_utils.Database] = field(default_factory=list, repr=False)
    _opened_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        open_database(self.db_path).close()  # create the schema once, up front

    @property
    def db_path(self) -> Path:
        return self.data_dir / "kuzet.db"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    def db(self) -> sqlite_utils.Database:
        database = getattr(self._local, "db", None)
        if database is None:
            database = open_database(self.db_path, any_thread_may_close=True)
            self._local.db = database
            with self._opened_lock:
                self._opened.append(database)
        return database

    def close(self) -> None:
        """Close every thread's connection (call it after the parts using them have stopped)."""
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for database in opened:
            database.close()
        self._local = threading.local()
