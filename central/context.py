"""What every part of central shares: configuration, the database, the live hub and the way out to MQTT.

Everything here exists before the parts start and nothing is set on ``Central`` afterwards: the way out to
MQTT is an ``Outbound`` made with it, which ingest connects to its MQTT link when that link is up; health
and metrics get ingest handed to them (``central.web.services``), not through this object.

The store is ``[store]``'s (``central.store.backend.open_store``): the embedded SQLite file in the data
directory, or PostgreSQL. ``db()`` hands each thread (ingest writer, each web request thread, routing timers) a
connection of its own: SQLite's cannot cross threads, and on PostgreSQL a thread keeps one in autocommit, so
a statement outside ``portable.transaction`` commits alone on either engine. ``close()`` closes them all
once the parts have stopped: a process that starts central more than once (tests, the demo) must not keep
every old connection open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kuzet.central.config import CentralConfig
from kuzet.central.live import LiveHub
from kuzet.central.store.backend import open_store

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
    # SqliteStore or PostgresStore (central.store.sqlite, central.store.postgres), opened with the schema
    # brought to the newest version.
    store: object = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = Path(self.data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.store = open_store(self.config.store, self.data_dir)
        if self.store.backend != "sqlite":
            from kuzet.central.auth import audit

            # The key never lives on the database server: in the data directory, as SQLite's beside its file.
            audit.use_key_file(self.config.store.url, self.data_dir / self.config.storage.audit_key_file)

    def publish(self, topic: str, payload: bytes, retain: bool = False):
        """Send to a device at QoS 1 (``Outbound.publish``); ``retain``: kept by the broker for it."""
        return self.outbound.publish(topic, payload, retain=retain)

    @property
    def db_path(self) -> Path:
        """The embedded store's file (used only when ``[store] url`` is empty)."""
        return self.data_dir / "kuzet.db"

    @property
    def media_dir(self) -> Path:
        return self.data_dir / "media"

    def db(self):
        """This thread's connection to the store: a sqlite-utils database, or a psycopg connection in
        autocommit (write SQL both run through ``central.store.portable``)."""
        return self.store.db()

    def close(self) -> None:
        """Close every thread's connection (call it after the parts using them have stopped)."""
        self.store.close()
