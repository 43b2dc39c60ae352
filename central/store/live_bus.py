"""Live updates across central processes through PostgreSQL ``LISTEN/NOTIFY``: whichever process stored an
event, every web worker's pages see it.

Each process's ``LiveHub`` relays what it publishes to ``PostgresLiveBus.send``, which queues it (the
publisher never waits on the network) for a sender thread that runs ``pg_notify`` on a connection of its own;
a listener thread ``LISTEN``s on another and ``deliver``s what other processes sent to this process's pages
(each process tags its notifications with a random origin and skips its own). Both threads reconnect after a
server restart; updates sent while a connection is down are lost (the pages reload what they show from the
API; live updates are a hint, never the record). ``then`` lets a caller wait until what it queued is sent:
ingest acknowledges a device's messages only then (``LiveHub.after_relayed``), so a worker killed between its
commit and its notification leaves the messages to the broker to send again, and the next worker shows them.

The sender packs the updates waiting in its queue into one notification (a JSON list, in order), so a burst
of device heartbeats costs PostgreSQL one round trip per few updates, not one each. Only a process that serves
pages listens (``listen=True``: the web role and ``all``); ingest and routing workers only send, so PostgreSQL
hands each notification to the web workers alone.

A notification carries at most 8,000 bytes: a larger update is relayed as its identifying keys only, with
``"partial": true``, and the page asks the API for the rest."""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable

import psycopg

from kuzet.central.live import LiveHub

log = logging.getLogger(__name__)

CHANNEL = "kuzet_live"
MAX_PAYLOAD = 7900  # PostgreSQL's limit is 8,000 bytes
_KEYS = ("event_id", "device_id", "device", "dispatch_id", "command_id", "id", "site")
RECONNECT_S = 1.0
# How long the sender waits for more updates to pack with the first: a page sees an update up to this much
# later, and a burst of heartbeats costs a few notifications instead of one each.
GATHER_S = 0.02


class PostgresLiveBus:
    def __init__(self, url: str, hub: LiveHub, listen: bool = True):
        self.url = url
        self.hub = hub
        self.origin = secrets.token_hex(8)
        self._outgoing: queue.Queue[str | _Then | None] = queue.Queue(maxsize=10_000)
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._carried: str | None = None  # what did not fit the last notification: first in the next
        self._waiting: list[Callable[[], None]] = []  # ``then`` callbacks due once the current pack is sent
        self._threads = [threading.Thread(target=self._send_loop, name="live-bus-send", daemon=True)]
        if listen:
            self._threads.append(
                threading.Thread(target=self._listen_loop, name="live-bus-listen", daemon=True)
            )

    def start(self, timeout_s: float = 10.0) -> PostgresLiveBus:
        """Start the threads and, if this process listens, wait until it does (what others send from then on
        arrives); relays this hub's updates from now on."""
        for thread in self._threads:
            thread.start()
        if len(self._threads) > 1 and not self._listening.wait(timeout_s):
            log.warning("live bus: not listening on PostgreSQL yet; it goes on trying")
        self.hub.relay_to(self.send, self.then)
        return self

    def stop(self) -> None:
        self._stop.set()
        self._outgoing.put(None)
        for thread in self._threads:
            thread.join(timeout=5)

    def send(self, channel: str, data: dict) -> None:
        """The hub's relay: queue the update for the other processes (dropped, logged, when the queue is
        full: the sender has been unable to reach the server for a long while)."""
        try:
            self._outgoing.put_nowait(_payload(self.origin, channel, data))
        except queue.Full:
            log.warning("live bus: the queue to PostgreSQL is full; a %s update is not relayed", channel)

    def then(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (on the sender's thread) once the updates queued before now are sent, or given up
        on because the server cannot be reached."""
        try:
            self._outgoing.put_nowait(_Then(callback))
        except queue.Full:  # what came before it waits behind thousands of others: do not hold the caller
            callback()

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    while (packed := self._next_notification()) is not None:
                        if packed != "[]":
                            conn.execute("SELECT pg_notify(%s, %s)", [CHANNEL, packed])
                        self._call_waiting()
                    return
            except Exception as exc:  # not only the server's: ingest's acknowledgements wait on this thread
                if isinstance(exc, psycopg.Error):
                    log.warning("live bus: sending failed (%s); reconnecting", exc)
                else:
                    log.exception(
                        "live bus: the sender failed; what was queued is dropped and it starts again"
                    )
                self._give_up_queued()
                self._stop.wait(RECONNECT_S)

    def _next_notification(self) -> str | None:
        """The next updates: the first and those that follow within ``GATHER_S`` up to a ``then`` marker (left
        in ``_waiting``), as many as fit one notification, as a JSON list (None: stopping). An update that
        does not fit goes first in the next one."""
        first = self._carried if self._carried is not None else self._outgoing.get()
        self._carried = None
        if first is None:
            return None
        if isinstance(first, _Then):
            self._waiting.append(first.callback)
            return "[]"
        packed, size = [first], len(first.encode("utf-8")) + 2
        gathered_by = time.monotonic() + GATHER_S
        while True:
            try:
                payload = self._outgoing.get(timeout=max(0.0, gathered_by - time.monotonic()))
            except queue.Empty:
                break
            if payload is None:
                self._outgoing.put(None)  # stop after this one
                break
            if isinstance(payload, _Then):  # someone waits on what is packed so far: send it now
                self._waiting.append(payload.callback)
                break
            grown = size + len(payload.encode("utf-8")) + 1
            if grown > MAX_PAYLOAD:
                self._carried = payload
                break
            packed.append(payload)
            size = grown
        return "[" + ",".join(packed) + "]"

    def _call_waiting(self) -> None:
        waiting, self._waiting = self._waiting, []
        for callback in waiting:
            try:
                callback()
            except Exception:
                log.exception("live bus: a callback waiting on sent updates failed")

    def _give_up_queued(self) -> None:
        """The server cannot be reached: what is queued is lost (live updates are a hint) and whoever waits on
        it goes on now, not when the server is back."""
        self._carried = None
        lost = 0
        while True:
            try:
                item = self._outgoing.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._outgoing.put(None)
                break
            if isinstance(item, _Then):
                self._waiting.append(item.callback)
            else:
                lost += 1
        self._call_waiting()
        if lost:
            log.warning("live bus: %d updates not relayed while PostgreSQL cannot be reached", lost)

    def _listen_loop(self) -> None:
        listen(self.url, CHANNEL, self._receive, self._stop, self._listening, "live bus")

    def _receive(self, payload: str) -> None:
        try:
            packed = json.loads(payload)
        except ValueError:
            log.warning("live bus: a notification that is not JSON was ignored")
            return
        for message in packed if isinstance(packed, list) else [packed]:  # one update: a sender of before
            if message.get("o") == self.origin:
                continue  # our own, already delivered here
            self.hub.deliver(message["c"], message["d"])


class _Then:
    """A marker in the sender's queue: ``callback`` is due once the updates queued before it are sent."""

    __slots__ = ("callback",)

    def __init__(self, callback: Callable[[], None]):
        self.callback = callback


def _payload(origin: str, channel: str, data: dict) -> str:
    text = json.dumps({"o": origin, "c": channel, "d": data}, ensure_ascii=False, default=str)
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        # A lone surrogate (from a JSON escape) is not UTF-8, which is all PostgreSQL takes: escape it.
        text = json.dumps({"o": origin, "c": channel, "d": data}, default=str)
        size = len(text)
    if size <= MAX_PAYLOAD:
        return text
    keys = {key: data[key] for key in _KEYS if key in data}
    return json.dumps({"o": origin, "c": channel, "d": {**keys, "partial": True}}, default=str)


def listen(
    url: str,
    channel: str,
    receive: Callable[[str], None],
    stop: threading.Event,
    listening: threading.Event,
    what: str,
) -> None:
    """``LISTEN`` on ``channel`` on a connection of its own and call ``receive(payload)`` for each notification
    until ``stop``; ``listening`` is set once the first connection listens. After a lost connection it
    reconnects every ``RECONNECT_S`` (what was notified meanwhile is missed; ``what`` names the listener in
    the log)."""
    while not stop.is_set():
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f"LISTEN {channel}")
                listening.set()
                while not stop.is_set():
                    for notify in conn.notifies(timeout=0.5):
                        receive(notify.payload)
        except psycopg.Error as exc:
            log.warning("%s: listening failed (%s); reconnecting", what, exc)
            stop.wait(RECONNECT_S)
