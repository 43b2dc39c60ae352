"""The outbox's one door: what a device must deliver is queued here (``enqueue``, or several writes at once
with ``transaction``), made durable in the outbox, drained over MQTT with QoS 1, and taken out of the queue
only once the broker has acknowledged it. What was acknowledged is kept a while longer (``keep_delivered_s``,
``keep_delivered_bytes``): central asks for it again (``resend``) when the broker lost it before central had it.

Two lanes, so that a long backlog never delays what is happening now:

- *live*: rows queued since the current connection came up go out at once (highest priority first);
- *backlog*: rows queued before it (while the link was down, or before a restart) drain oldest-first at a
  bounded rate, so a camera coming back after an hour offline does not flood the uplink or central.

A bounded window of unacknowledged messages is kept in flight. Paho re-sends those itself after a reconnect;
a message still unacknowledged after ``resend_after_s`` is sent again. Central drops repeats by message id,
so a re-send can never create a duplicate event: delivery is at-least-once on the wire, exactly-once in store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from kuzet.edge.delivery.outbox import Outbox, Row, Writes
from kuzet.shared.mqtt import Link, MqttError

log = logging.getLogger(__name__)

# Builds the payload of a row queued by reference (a clip chunk read from its file); None: it is gone.
Resolver = Callable[[Row], bytes | None]


@dataclass(frozen=True)
class DeliverySettings:
    max_inflight: int = 50
    backlog_per_s: float = 20.0  # backlog messages per second
    max_bytes_per_s: float = 2_000_000  # all lanes together: a cellular uplink must stay usable
    resend_after_s: float = 60.0
    # Acknowledged messages kept for central's resend requests: a day, at most this many payload bytes (the
    # oldest are dropped first, and counted).
    keep_delivered_s: float = 24 * 3600.0
    keep_delivered_bytes: int = 128 * 1024 * 1024
    prune_every_s: float = 10.0


class _TokenBucket:
    def __init__(self, rate: float, burst: float):
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def ready(self) -> bool:
        self._refill()
        return self.tokens >= 1

    def take(self, amount: float) -> bool:
        self._refill()
        # A single item larger than the burst may still pass when the bucket is full, else it never would.
        if self.tokens >= amount or self.tokens >= self.burst:
            self.tokens -= amount
            return True
        return False


class Publisher:
    def __init__(
        self,
        outbox: Outbox,
        link: Link,
        settings: DeliverySettings | None = None,
        resolvers: dict[str, Resolver] | None = None,
    ):
        self.outbox = outbox
        self.link = link
        self.settings = settings or DeliverySettings()
        self.resolvers = dict(resolvers or {})
        self.stats = {"published": 0, "acknowledged": 0, "resent": 0, "unresolvable": 0, "refused": 0}
        self.stats["redelivered"] = 0  # queued again at central's request (``resend``)
        self._inflight: dict[int, tuple[object, float]] = {}
        # MQTT 5: the broker acknowledged but refused (e.g. "not authorized" by its ACL). Such a row is kept
        # and tried again later, never deleted: a misconfigured ACL must not silently eat events.
        self._refused_mids: dict[int, str] = {}
        self._held: dict[int, float] = {}  # row id -> monotonic time it may be tried again
        link.client.on_publish = self._on_publish  # one Publisher per Link: it owns the acknowledgements
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backlog_upto = outbox.last_id()  # queued before this process started: backlog
        self._resend_requests: list[tuple[str, float]] = []  # (request id, since epoch s), for the thread
        self._next_prune = 0.0
        s = self.settings
        self._backlog_bucket = _TokenBucket(s.backlog_per_s, max(1.0, s.backlog_per_s))
        self._bytes_bucket = _TokenBucket(s.max_bytes_per_s, max(s.max_bytes_per_s, 1.0))

    # --- the one door -----------------------------------------------------------------------------------

    def enqueue(
        self,
        topic: str,
        payload: bytes | None,
        *,
        kind: str,
        priority: int = 0,
        ref: str | None = None,
        count: str | None = None,
    ) -> int:
        """Make ``payload`` durable, then have it sent as soon as the link allows."""
        with self.transaction() as tx:
            row_id = tx.put(topic, payload, kind=kind, priority=priority, ref=ref)
            if count:
                tx.count(count)
        return row_id

    @contextmanager
    def transaction(self) -> Iterator[Writes]:
        """``Outbox.transaction`` whose queued messages are sent as soon as it commits (several messages, or a
        message and the state that goes with it, made durable at once)."""
        with self.outbox.transaction() as tx:
            yield tx
        if tx.row_ids and not self.link.connected.is_set():
            self._backlog_upto = max(self._backlog_upto, *tx.row_ids)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def resend(self, request_id: str, since: float) -> None:
        """Central asked for what was acknowledged since ``since`` (epoch seconds) again: queued on the
        publisher's thread, once per ``request_id`` (any thread may call this; it returns at once)."""
        self._resend_requests.append((request_id, since))
        self._wake.set()

    def start(self) -> Publisher:
        self._thread = threading.Thread(target=self._run, name="outbox-publisher", daemon=True)
        self._thread.start()
        return self

    def stop(self, drain_s: float = 0.0) -> None:
        """Stop; with ``drain_s``, first wait that long for in-flight messages to be acknowledged."""
        deadline = time.monotonic() + drain_s
        while self._inflight and time.monotonic() < deadline:
            time.sleep(0.02)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._reap()

    @property
    def inflight(self) -> int:
        return len(self._inflight)

    # --- the publisher thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._reap()
                self._housekeeping()
                if self.link.connected.is_set():
                    self._send(live=True)
                    self._send(live=False)
                else:
                    # What is queued while the link is down is backlog for the next connection.
                    self._backlog_upto = max(self._backlog_upto, self.outbox.last_id())
            except Exception:  # keep delivering whatever one bad row or a disk hiccup did
                log.exception("outbox publisher: unexpected error; retrying")
                self._stop.wait(1.0)
            self._wake.wait(0.02 if self._inflight else 0.25)
            self._wake.clear()

    def _housekeeping(self) -> None:
        while self._resend_requests:
            request_id, since = self._resend_requests.pop(0)
            count = self.outbox.redeliver(request_id, since)
            if count is not None:
                log.warning(
                    "outbox: %s: what was delivered since %.3f queued again: %d", request_id, since, count
                )
                self.stats["redelivered"] += count
                if not self.link.connected.is_set():
                    self._backlog_upto = max(self._backlog_upto, self.outbox.last_id())
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + self.settings.prune_every_s
            s = self.settings
            dropped = self.outbox.prune_delivered(s.keep_delivered_s, s.keep_delivered_bytes)
            if dropped:
                log.warning("outbox: %d delivered messages dropped under the size cap", dropped)

    def _send(self, live: bool) -> None:
        room = self.settings.max_inflight - len(self._inflight)
        if room <= 0:
            return
        now = time.monotonic()
        for row_id in [r for r, until in self._held.items() if until <= now]:
            del self._held[row_id]
        skip = set(self._inflight) | set(self._held)
        if live:
            rows = self.outbox.next_rows(room, after_id=self._backlog_upto, skip=skip)
        else:
            if not self._backlog_bucket.ready():
                return  # no need to look at the backlog before the rate allows another message
            rows = self.outbox.next_rows(room, up_to_id=self._backlog_upto, skip=skip)
        for row in rows:
            if not live and not self._backlog_bucket.take(1):
                return
            payload = row.payload if row.payload is not None else self._resolve(row)
            if payload is None:
                continue
            if not self._bytes_bucket.take(len(payload)):
                return
            if not self.link.connected.is_set():
                return
            try:
                info = self.link.publish(row.topic, payload, qos=1)
            except MqttError as exc:
                log.warning("outbox: %s; row %d stays queued", exc, row.id)
                return
            self._inflight[row.id] = (info, time.monotonic())
            self.stats["published"] += 1

    def _resolve(self, row: Row) -> bytes | None:
        resolver = self.resolvers.get(row.kind)
        payload = resolver(row) if resolver is not None else None
        if payload is None:
            log.warning("outbox: row %d (%s %s) refers to something gone; dropped", row.id, row.kind, row.ref)
            self.outbox.delete([row.id])
            self.outbox.add(f"unresolvable_{row.kind}")
            self.stats["unresolvable"] += 1
        return payload

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        # Paho calls this before it marks the message published, so _reap always sees the verdict.
        if getattr(reason_code, "is_failure", False):
            self._refused_mids[mid] = str(reason_code)

    def _reap(self) -> None:
        """Delete acknowledged rows; forget messages that waited too long so they are sent again."""
        acked, stale, held = [], [], []
        now = time.monotonic()
        for row_id, (info, sent_at) in list(self._inflight.items()):
            try:
                done = info.is_published()
            except (ValueError, RuntimeError):  # paho refused to queue it: send it again
                done, sent_at = False, -1e9
            refusal = self._refused_mids.pop(info.mid, None) if done else None
            if refusal is not None:
                log.error("outbox: the broker refused row %d (%s); kept, tried again later", row_id, refusal)
                self.stats["refused"] += 1
                self._held[row_id] = now + self.settings.resend_after_s
                held.append(row_id)
            elif done:
                acked.append(row_id)
            elif now - sent_at > self.settings.resend_after_s and self.link.connected.is_set():
                stale.append(row_id)
        if acked:
            self.outbox.mark_delivered(acked)
            self.stats["acknowledged"] += len(acked)
        for row_id in acked + stale + held:
            self._inflight.pop(row_id, None)
        self.stats["resent"] += len(stale)
