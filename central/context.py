"""What every part of central shares: configuration, the database, the live hub and the way out to MQTT.

Everything here exists before the parts start and nothing is set on ``Central`` afterwards: the way out to
MQTT is an ``Outbound`` made with it, which ingest connects to its MQTT link when that link is up; health
and metrics get ingest handed to them (``central.web.services``), not through this object.

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

import sqlite_utils

from kuzet.central.config import CentralConfig
from kuzet.central.live import LiveHub
from kuzet.central.store.schema import open_database

Publish = Callable[..., None]  # (topic, payload, retain=False)


class Outbound:
    """Central's way out to MQTT: ``publish(topic, payload)`` at QoS 1 through whichever link is connected
    (ingest's, once it has started); before that, publishing raises."""

    def __init__(self) -> None:
        self._publish: Publish | None = None

    def connect(self, publish: Publish) -> None:
        self._publish = publish

    def publish(self, topic: str, payload: bytes, retain: bool = False):
        publish = self._publish
        if publish is None:
            raise RuntimeError(f"central has no MQTT connection to publish {topic}")
        return publish(topic, payload, retain=retain)


@dataclass
class Central:
    config: CentralConfig
    data_dir: Path
    hub: LiveHub = field(default_factory=LiveHub)
    outbound: Outbound = field(default_factory=Outbound)
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _opened: list[sqlite_utils.Database] = field(default_factory=list, repr=False)
    _opened_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        open_database(self.db_path).close()  # create the schema once, up front

    def publish(self, topic: str, payload: bytes, retain: bool = False):
        """Send to a device at QoS 1 (``Outbound.publish``); ``retain``: kept by the broker for it."""
        return self.outbound.publish(topic, payload, retain=retain)

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
