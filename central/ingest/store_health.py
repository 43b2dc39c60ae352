"""When central's own storage cannot take what devices send: back-pressure, not loss.

A store error that is no fault of the message (the database or disk is full, a disk I/O error, the database
locked beyond its busy timeout, a media disk full) is *transient*: the writer keeps the messages, does not
acknowledge them (so the broker, and behind it the devices' outboxes, keep them too), and tries them again
with a growing pause (``RETRY_FIRST_S`` doubling to ``RETRY_MAX_S``). Only a message that is wrong in itself is
ever dead-lettered.

``Outage`` is the state of one such failure, for /healthz (503 while it lasts, with the reason), the log, and
the operators: a critical alert, stored as soon as the database takes it (at the latest when it recovers) and
sent to open pages at once.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import shutil
import sqlite3
import sys
import time

from kuzet.central import alerts
from kuzet.central.store import portable
from kuzet.shared import timeutil

log = logging.getLogger(__name__)

RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0
# OSErrors of the storage itself, not of a message: no space, no quota left, the disk failing, read-only.
# What happens to the messages while the database cannot be written.
HELD = "messages from the devices wait, unacknowledged, at the broker and on the devices"
_STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS})


# PostgreSQL's SQLSTATE classes of the server's or the connection's trouble, never the row's: connection
# exception, transaction rollback (deadlock, serialization), insufficient resources (disk full, out of memory),
# operator intervention (shutdown, restart), system error. Data and integrity errors (22, 23) are the message's.
_POSTGRES_TRANSIENT = frozenset({"08", "40", "53", "57", "58"})


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` is the store's trouble (try again later) rather than the message's (dead-letter it).
    Every ``sqlite3.OperationalError`` is: full, I/O error, locked, busy, cannot open; none says anything
    about the message being written. On PostgreSQL: the SQLSTATE classes above, or a connection that failed
    without one."""
    if isinstance(exc, sqlite3.OperationalError):
        return True
    if _postgres_transient(exc):
        return True
    return isinstance(exc, OSError) and exc.errno in _STORAGE_ERRNOS


def database_errors() -> tuple[type[BaseException], ...]:
    """The errors either engine's driver raises (psycopg's only where it is loaded), for ``except``."""
    psycopg = sys.modules.get("psycopg")
    return (sqlite3.Error,) if psycopg is None else (sqlite3.Error, psycopg.Error)


def _postgres_transient(exc: BaseException) -> bool:
    psycopg = sys.modules.get("psycopg")  # loaded only where [store] url is PostgreSQL's
    if psycopg is None or not isinstance(exc, psycopg.Error):
        return False
    if exc.sqlstate:
        return exc.sqlstate[:2] in _POSTGRES_TRANSIENT
    return isinstance(exc, psycopg.OperationalError)


class Outage:
    """One kind of storage ("the database") that may fail and recover."""

    def __init__(self, central, what: str, held: str = HELD):
        self.central = central
        self.what = what
        self.held = held  # what happens to the messages meanwhile
        self.error: str | None = None  # the latest error while failing; None while all is well
        self.since: float | None = None
        self.attempts = 0
        self.delay = RETRY_FIRST_S
        self._alert_stored = False

    @property
    def problem(self) -> str | None:
        if self.error is None:
            return None
        return (
            f"{self.what} cannot be written ({self.error}) for {time.time() - self.since:.0f} s, "
            f"{self.attempts} tries: {self.held}"
        )

    def failed(self, exc: BaseException) -> float:
        """Note a failure; returns how long to wait before the next try."""
        if self.error is None:
            self.since = time.time()
            self.delay = RETRY_FIRST_S
            log.error("ingest: %s cannot be written: %s; holding messages and retrying", self.what, exc)
        else:
            self.delay = min(self.delay * 2, RETRY_MAX_S)
        self.error = f"{type(exc).__name__}: {exc}"
        self.attempts += 1
        self._alert()
        return self.delay

    def recovered(self) -> None:
        if self.error is None:
            return
        log.warning(
            "ingest: %s writable again after %.1f s (%d tries)",
            self.what,
            time.time() - self.since,
            self.attempts,
        )
        self._alert()  # if it could not be stored while failing, it is now
        self.error, self.since, self.attempts, self._alert_stored = None, None, 0, False

    def _alert(self) -> None:
        if self._alert_stored:
            return
        text = alerts.say("store_failing", what=self.what, error=str(self.error), held=self.held)
        try:
            db = self.central.db()
            with portable.transaction(db):
                row = alerts.add(db, "critical", text)
        except database_errors():
            if self.attempts == 1:
                shown = {
                    "id": None,
                    "at": timeutil.now_wire(),
                    "level": "critical",
                    "message": text.english,
                    "message_key": text.key,
                    "message_params": text.stored(),
                }
                self.central.hub.publish("alert", shown)  # not stored yet: at least the open pages see it
            return
        self._alert_stored = True
        self.central.hub.publish("alert", row)


class StoreDown(Exception):
    """Raised from a transient store error (its ``__cause__``): the messages concerned are held, not lost."""


@contextlib.contextmanager
def store_errors():
    """Turn a transient store error inside the block into ``StoreDown``; anything else passes unchanged."""
    try:
        yield
    except Exception as exc:
        if transient(exc):
            raise StoreDown(str(exc)) from exc
        raise


def disks(central) -> list[dict]:
    """Free space of the disks under the data folder (database, spool) and the media folder, for /healthz and
    the devices page; ``low`` below ``[storage] min_free_mb``."""
    least = central.config.storage.min_free_mb * 2**20
    report = []
    for name, folder in (("data", central.data_dir), ("media", central.media_dir)):
        try:
            usage = shutil.disk_usage(folder)
        except OSError as exc:
            report.append({"name": name, "path": str(folder), "error": str(exc), "low": True})
            continue
        report.append(
            {
                "name": name,
                "path": str(folder),
                "free_bytes": usage.free,
                "total_bytes": usage.total,
                "low": usage.free < least,
            }
        )
    return report


def disk_problems(central, report: list[dict]) -> list[str]:
    least = central.config.storage.min_free_mb
    return [
        f"the {disk['name']} disk ({disk['path']}) has "
        + (
            f"{disk['free_bytes'] / 2**20:.1f} MiB free"
            if "free_bytes" in disk
            else f"no answer: {disk['error']}"
        )
        + f", below [storage] min_free_mb = {least:g}"
        for disk in report
        if disk["low"]
    ]


def storage_description(store, media) -> dict:
    """What central keeps its data in, for /healthz: the database engine ("sqlite" or "postgresql"), how
    routing finds the nearest units, and where media bytes go (``store``: ``Central.store``; ``media``:
    ingest's ``MediaStore``, None before it has opened)."""
    return {
        "database": store.backend,
        "nearest_units": store.nearest_method,
        "media": media.objects.describe() if media is not None else None,
    }
