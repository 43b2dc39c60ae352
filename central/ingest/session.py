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

- A broker that kept the session but restarted (crashed, or stopped and started again) may have lost what it
  acknowledged after its last save (it saves every ``BROKER_AUTOSAVE_S``). Central reads Mosquitto's
  ``$SYS/broker/uptime`` on every connection: a broker started after central last lost it is asked about in
  the same way, from ``lost_at - BROKER_AUTOSAVE_S - 1.5 x keepalive - MARGIN_S`` (what the broker can have
  acknowledged and not saved before central noticed it gone; what it held from before was saved), or from
  ``stored_at - MARGIN_S`` when central did not see it go. A broker without ``$SYS`` (NATS) is never taken as
  restarted: only a lost session is noticed there.

- Several ingest workers each have their own session with the broker, and a restart loses them all at once:
  each worker finds its session lost. One request per device is enough: a worker sends nothing where the
  table shows a request (``resent_at``, ``resent_since``) that another worker's session made to this broker
  since it started (or, where its start is unknown, since this worker lost it), from no later than its own
  ``since``. That request went out after its worker subscribed again, so whatever was lost before, it covers,
  and nothing delivered since was lost. A worker claims its request in the transaction that decides it, before
  sending (sending ten thousand takes seconds, and the others decide meanwhile); its own claim never covers
  it, so a worker killed while sending asks again when it comes back. Without this every worker had every
  device send its last minutes again, once per worker (docs/scale.md).

The work happens on a thread of its own: paho's thread only reports the connection. The resend requests go out
after the subscription (queued first, on the same connection), so nothing a device resends is missed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from kuzet.central.context import Central
from kuzet.central.store import portable
from kuzet.shared import messages, topics
from kuzet.shared.messages import Resend
from kuzet.shared.mqtt import BROKER_AUTOSAVE_S, Link

log = logging.getLogger(__name__)

RECORD_EVERY_S = 1.0
# Subtracted from ``stored_at``: the record's own delay, a batch waiting to commit, and clocks that differ
# between central and the devices (NTP keeps them within a second; a repeat costs only a duplicate).
MARGIN_S = 10.0
UPTIME_TOPIC = "$SYS/broker/uptime"  # Mosquitto's, "<seconds> seconds", published every 10 s and retained
# How long a connection waits for the uptime before taking the broker as one without it. The uptime is retained,
# but a broker that kept central's session sends it only after what it had queued for central: at 10,000 devices
# that was a minute and more after a restart, and a 3 s wait took the restarted broker for one up all along
# (docs/scale.md). Waiting costs nothing meanwhile: the request's ``since`` does not move.
UPTIME_WAIT_S = 600.0
POLL_S = 0.2  # how often a connection waiting for the uptime looks


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
        self.restarts = 0  # restarts of the broker noticed since start
        self.covered = 0  # losses noticed that another session's request already covered (none sent)
        # (session_present, when central had last lost the broker) of each connection, handed on
        self._connects: queue.SimpleQueue[tuple[bool, float | None]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker-session", daemon=True)
        self._recorded: float | None = None
        # (the broker's uptime, when heard) on this connection; None until it comes
        self._uptime: tuple[float, float] | None = None
        link.on_connect.append(self._on_connect)
        link.subscribe(UPTIME_TOPIC, self._heard_uptime, qos=0, optional=True)

    def _on_connect(self, session_present: bool) -> None:
        """On paho's thread, before any message of the new connection: note it and hand it on."""
        self._uptime = None
        self._connects.put((session_present, self.link.lost_at))

    def _heard_uptime(self, topic: str, payload: bytes, message=None) -> None:
        try:
            seconds = float(payload.split()[0])
        except (ValueError, IndexError):
            return
        self._uptime = (seconds, time.time())

    def start(self) -> BrokerSession:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._record()  # the last commit, for the next start

    # --- the thread -------------------------------------------------------------------------------------

    def _run(self) -> None:
        pending: _Connection | None = None  # the connection not judged yet (waiting for the broker's uptime)
        while not self._stop.is_set():
            try:
                connection = self._connects.get(timeout=self.record_every_s if pending is None else POLL_S)
                pending = _Connection.merge(pending, *connection)
            except queue.Empty:
                pass
            try:
                # Not while a connection waits to be judged: its own commits would make a restarted broker look
                # up since before it started (``stored_at`` stays at the last commit before it).
                if pending is None:
                    self._record()
                elif self._judge(pending):
                    pending = None
            except Exception:  # e.g. the database's disk is full: tried again on the next round
                log.exception("broker session: bookkeeping failed")
                self._stop.wait(self.record_every_s)

    def _judge(self, connection: _Connection) -> bool:
        """Ask the devices again if the connection shows a loss; False while it must still wait for the uptime
        (only a session the broker kept needs it: a restart lost what was not saved)."""
        if connection.present and self._uptime is None and time.monotonic() < connection.until:
            return False
        started_at = self._broker_started_at() if connection.present else None
        self.connected(connection.present, started_at=started_at, lost_at=connection.lost_at)
        return True

    def _broker_started_at(self) -> float | None:
        """When the broker of this connection started (time.time()), from its uptime; None if it did not say."""
        if self._uptime is None:
            return None
        seconds, heard_at = self._uptime
        return heard_at - seconds

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

    def connected(
        self, session_present: bool, started_at: float | None = None, lost_at: float | None = None
    ) -> float | None:
        """The broker answered a connection (``started_at``: when the broker started, where it says; ``lost_at``:
        when central last lost it, where it did); returns the ``since`` of the resend requests sent, if any."""
        key = (self.broker, self.link.client_id)
        conn = self.central.db()
        with portable.transaction(conn):
            now = time.time()
            # A write first: on SQLite the transaction then waits for the write lock up front (busy_timeout),
            # where a read upgraded to a write later fails at once with "database is locked".
            if portable.execute(
                conn,
                "INSERT INTO broker_sessions (broker, client_id, established_at) VALUES (?, ?, ?)"
                " ON CONFLICT (broker, client_id) DO NOTHING",
                (*key, now),
            ).rowcount:
                return None  # the first session with this broker
            established_at, stored_at = portable.execute(
                conn,
                "SELECT established_at, stored_at FROM broker_sessions WHERE broker = ? AND client_id = ?",
                key,
            ).fetchone()
            if session_present:
                # Restarted since central last had it (the uptime is up to 10 s old: a start may look later
                # than it was, never earlier)?
                known_up = max(established_at, stored_at or 0, lost_at or 0)
                if started_at is None or started_at <= known_up:
                    return None
                what = "restarted: what it had acknowledged and not yet saved is lost"
                unsaved = BROKER_AUTOSAVE_S + 1.5 * self.link.settings.keepalive_s
                since = (lost_at - unsaved if lost_at else (stored_at or established_at)) - self.margin_s
                self.restarts += 1
            else:
                what = "no longer has central's session: it lost what it had queued"
                since = (stored_at or established_at) - self.margin_s
                self.lost += 1
            asked_after = started_at if session_present else lost_at
            if asked_after is not None and self._covered(conn, asked_after, since):
                self.covered += 1
                portable.execute(
                    conn,
                    "UPDATE broker_sessions SET established_at = ? WHERE broker = ? AND client_id = ?",
                    (now, *key),
                )
                log.warning(
                    "broker session: %s %s (%s); already asked of the devices from %s or earlier",
                    self.broker,
                    what,
                    self.link.client_id,
                    _wire(since),
                )
                return None
            portable.execute(  # the claim: the other workers deciding meanwhile leave it to this one
                conn,
                "UPDATE broker_sessions SET resent_at = ?, resent_since = ? WHERE broker = ? AND client_id = ?",
                (now, since, *key),
            )
            targets = portable.execute(
                conn, "SELECT site, device_id FROM devices WHERE revoked_at IS NULL AND site IS NOT NULL"
            ).fetchall()
        log.error(
            "broker session: %s %s (%s); asking %d device(s) to send again what was delivered since %s",
            self.broker,
            what,
            self.link.client_id,
            len(targets),
            _wire(since),
        )
        happened = "restarted" if session_present else "lost central's session"
        reason = f"the broker at {self.broker} {happened}"[:200]
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

    def _covered(self, conn, asked_after: float, since: float) -> bool:
        """Has another worker's session asked (or claimed to ask) every device about this broker after
        ``asked_after``, from ``since`` or earlier?"""
        return (
            portable.execute(
                conn,
                "SELECT 1 FROM broker_sessions WHERE broker = ? AND client_id <> ? AND resent_at >= ?"
                " AND resent_since <= ? LIMIT 1",
                (self.broker, self.link.client_id, asked_after, since),
            ).fetchone()
            is not None
        )


@dataclass(frozen=True)
class _Connection:
    present: bool  # the broker still had central's session
    lost_at: float | None  # when central had lost the broker before it (None: not seen, central was down)
    until: float  # time.monotonic() after which it is judged without the broker's uptime

    @classmethod
    def merge(cls, pending: _Connection | None, present: bool, lost_at: float | None) -> _Connection:
        """A new connection, judged together with the one still waiting (lost again before the uptime came):
        the earlier loss and a lost session count."""
        until = time.monotonic() + UPTIME_WAIT_S
        if pending is None:
            return cls(present, lost_at, until)
        earliest = None if pending.lost_at is None or lost_at is None else min(pending.lost_at, lost_at)
        return cls(pending.present and present, earliest, until)


def _wire(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
