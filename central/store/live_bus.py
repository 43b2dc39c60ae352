"""Live updates across central processes through PostgreSQL ``LISTEN/NOTIFY``: whichever process stored an
event, every web worker's pages see it.

Each process's ``LiveHub`` relays what it publishes to ``PostgresLiveBus.send``, which queues it (the
publisher never waits on the network) for a sender thread that runs ``pg_notify`` on a connection of its own;
a listener thread ``LISTEN``s on another and ``deliver``s what other processes sent to this process's pages
(each process tags its notifications with a random origin and skips its own). Both threads reconnect after a
server restart; updates sent while a connection is down are lost (the pages reload what they show from the
API; live updates are a hint, never the record).

A notification carries at most 8,000 bytes: a larger update is relayed as its identifying keys only, with
``"partial": true``, and the page asks the API for the rest."""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading

import psycopg

from kuzet.central.live import LiveHub

log = logging.getLogger(__name__)

CHANNEL = "kuzet_live"
MAX_PAYLOAD = 7900  # PostgreSQL's limit is 8,000 bytes
_KEYS = ("event_id", "device_id", "device", "dispatch_id", "command_id", "id", "site")
RECONNECT_S = 1.0


class PostgresLiveBus:
    def __init__(self, url: str, hub: LiveHub):
        self.url = url
        self.hub = hub
        self.origin = secrets.token_hex(8)
        self._outgoing: queue.Queue[str | None] = queue.Queue(maxsize=10_000)
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._threads = [
            threading.Thread(target=self._send_loop, name="live-bus-send", daemon=True),
            threading.Thread(target=self._listen_loop, name="live-bus-listen", daemon=True),
        ]

    def start(self, timeout_s: float = 10.0) -> PostgresLiveBus:
        """Start both threads and wait until this process is listening (what others send from then on
        arrives); relays this hub's updates from now on."""
        for thread in self._threads:
            thread.start()
        if not self._listening.wait(timeout_s):
            log.warning("live bus: not listening on PostgreSQL yet; it goes on trying")
        self.hub.relay_to(self.send)
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

    def _send_loop(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    while (payload := self._outgoing.get()) is not None:
                        conn.execute("SELECT pg_notify(%s, %s)", [CHANNEL, payload])
                    return
            except psycopg.Error as exc:
                log.warning("live bus: sending failed (%s); reconnecting", exc)
                self._stop.wait(RECONNECT_S)

    def _listen_loop(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self._listening.set()
                    while not self._stop.is_set():
                        for notify in conn.notifies(timeout=0.5):
                            self._receive(notify.payload)
            except psycopg.Error as exc:
                log.warning("live bus: listening failed (%s); reconnecting", exc)
                self._stop.wait(RECONNECT_S)

    def _receive(self, payload: str) -> None:
        try:
            message = json.loads(payload)
        except ValueError:
            log.warning("live bus: a notification that is not JSON was ignored")
            return
        if message.get("o") == self.origin:
            return  # our own, already delivered here
        self.hub.deliver(message["c"], message["d"])


def _payload(origin: str, channel: str, data: dict) -> str:
    text = json.dumps({"o": origin, "c": channel, "d": data}, ensure_ascii=False, default=str)
    if len(text.encode("utf-8")) <= MAX_PAYLOAD:
        return text
    keys = {key: data[key] for key in _KEYS if key in data}
    return json.dumps({"o": origin, "c": channel, "d": {**keys, "partial": True}}, default=str)
