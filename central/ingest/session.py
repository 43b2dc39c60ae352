"""Central's MQTT session with the broker, and what to do when the broker has lost it.

The broker acknowledges a device's QoS 1 message as soon as it holds it, and queues it in central's persistent
session until central takes it. A broker killed before it wrote that queue to disk, or replaced by a fresh one,
loses it: the device deleted nothing it could not resend, but nobody asks it to. This module notices and asks.

- ``broker_sessions`` (a table of central's database) records, per broker URL and client id, that central has
  had a session there, and ``stored_at``: the last time ingest committed something (written at most every
  ``RECORD_EVERY_S``; it only grows).
- On every connection the broker says whether it still had the session (``session_present``). "No" where the
  table says there was one means the broker lost it, with whatever it had queued for central. Central then
  publishes ``down/resend`` (retained, QoS 1) to every device it knows that is not revoked, with
  ``since = stored_at - MARGIN_S``: the devices queue again what the broker acknowledged since (they keep it a
  day), and ingest, idempotent by message id, stores what it lacks and counts the rest as duplicates.

The work happens on a thread of its own: paho's thread only reports the connection. The resend requests go out
after the subscription (queued first, on the same connection), so nothing a device resends is missed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from kuzet.central.context import Central
from kuzet.central.store import portable
from kuzet.shared import messages, topics
from kuzet.shared.messages import Resend
from kuzet.shared.mqtt import Link

log = logging.getLogger(__name__)

RECORD_EVERY_S = 1.0
# Subtracted from ``stored_at``: the record's own delay, a batch waiting to commit, and clocks that differ
# between central and the devices (NTP keeps them within a second; a repeat costs only a duplicate).
MARGIN_S = 10.0


class BrokerSession:
    """``start`` it with one of ingest's links (it hooks the connection) and a function giving the time of
    ingest's last commit of a message from that link's broker."""

    def __init__(
        self,
        central: Central,
        link: Link,
        last_commit: Callable[[], float | None],
        announce: Callable[[str, bytes, bool], None] | None = None,
        *,
        margin_s: float = MARGIN_S,
        record_every_s: float = RECORD_EVERY_S,
    ):
        self.central = central
        self.link = link
        self.broker = link.url
        self.last_commit = last_commit
        # How a resend request goes out: on every broker (retained), so that a device that has moved to
        # another broker since gets it too; by default through this link only.
        self.announce = announce or (lambda topic, payload, retain: link.publish(topic, payload, 1, retain))
        self.margin_s = margin_s
        self.record_every_s = record_every_s
        self.lost = 0  # lost sessions noticed since start
        self.requests = 0  # resend requests published since start
        self._connects: queue.SimpleQueue[bool] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker-session", daemon=True)
        self._recorded: float | None = None
        link.on_connect.append(self._connects.put)  # on paho's thread: session_present, handed on

    def start(self) -> BrokerSession:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._record()  # the last commit, for the next start

    # --- the thread -------------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                present = self._connects.get(timeout=self.record_every_s)
            except queue.Empty:
                present = None
            try:
                self._record()
                if present is not None:
                    self.connected(present)
            except Exception:  # e.g. the database's disk is full: tried again on the next round
                log.exception("broker session: bookkeeping failed")
                if present is not None:
                    self._connects.put(present)
                self._stop.wait(self.record_every_s)

    def _record(self) -> None:
        stored = self.last_commit()
        if stored is None or stored == self._recorded:
            return
        db = self.central.db()
        with portable.transaction(db):
            portable.execute(
                db,
                "UPDATE broker_sessions SET stored_at = CASE WHEN COALESCE(stored_at, 0) > ? THEN stored_at"
                " ELSE ? END WHERE broker = ? AND client_id = ?",
                (stored, stored, self.broker, self.link.client_id),
            )
        self._recorded = stored

    def connected(self, session_present: bool) -> float | None:
        """The broker answered a connection; returns the ``since`` of the resend requests sent, if any."""
        key = (self.broker, self.link.client_id)
        conn = self.central.db()
        with portable.transaction(conn):
            row = portable.execute(
                conn,
                "SELECT established_at, stored_at FROM broker_sessions WHERE broker = ? AND client_id = ?",
                key,
            ).fetchone()
            now = time.time()
            if row is None:
                portable.execute(
                    conn,
                    "INSERT INTO broker_sessions (broker, client_id, established_at) VALUES (?, ?, ?)",
                    (*key, now),
                )
                return None
            if session_present:
                return None
            established_at, stored_at = row
            since = (stored_at or established_at) - self.margin_s
            targets = portable.execute(
                conn, "SELECT site, device_id FROM devices WHERE revoked_at IS NULL AND site IS NOT NULL"
            ).fetchall()
        self.lost += 1
        log.error(
            "broker session: %s no longer has central's session (%s): it lost what it had queued; asking %d "
            "device(s) to send again what was delivered since %s",
            self.broker,
            self.link.client_id,
            len(targets),
            _wire(since),
        )
        reason = f"the broker at {self.broker} lost central's session"[:200]
        when = datetime.fromtimestamp(since, UTC)
        for site, device in targets:
            request = Resend(device=device, since=when, reason=reason)
            self.announce(topics.down(site, device, "resend"), messages.encode(request), True)
            self.requests += 1
        # Only now: had the requests not gone out, the next connection would still find the session lost.
        with portable.transaction(conn):
            portable.execute(
                conn,
                "UPDATE broker_sessions SET established_at = ?, lost = lost + 1, lost_at = ?"
                " WHERE broker = ? AND client_id = ?",
                (now, now, *key),
            )
        return since


def _wire(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
