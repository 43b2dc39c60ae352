"""In-process fan-out of live updates (new events, device status, unit positions, dispatch changes) from
ingest and routing to the page's server-sent-event streams. Slow clients lose their oldest updates, never
block the publisher.

With several central processes a relay (``relay_to``; ``central.store.live_bus`` on PostgreSQL) also carries
each update to the other processes, which ``deliver`` it to their own pages only, so nothing echoes back."""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Update:
    seq: int
    channel: str  # "event", "device", "unit", "dispatch", "dead_letter", "incidents", ...
    data: dict
    # What one stream made of it that every other stream would make the same (stream.py: the message sent).
    shared: dict = field(default_factory=dict, compare=False, repr=False)


class Subscription:
    def __init__(self, hub: LiveHub, maxsize: int):
        self._hub = hub
        self.queue: queue.Queue[Update] = queue.Queue(maxsize)
        self.dropped = 0

    def get(self, timeout: float | None = None) -> Update | None:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._hub._remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LiveHub:
    def __init__(self, maxsize: int = 1000):
        self._maxsize = maxsize
        self._subscriptions: set[Subscription] = set()
        self._lock = threading.Lock()
        self._seq = itertools.count(1)
        self._relays: list[Callable[[str, dict], None]] = []
        self._relays_then: list[Callable[[Callable[[], None]], None]] = []
        self._listeners: list[Callable[[Update], None]] = []

    def relay_to(
        self, relay: Callable[[str, dict], None], then: Callable[[Callable[[], None]], None] | None = None
    ) -> None:
        """Also hand every update published here to ``relay`` (which must not block). ``then(callback)``, if
        given, calls ``callback`` once the relay has passed on (or given up on) what it was handed so far."""
        self._relays.append(relay)
        if then is not None:
            self._relays_then.append(then)

    def after_relayed(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once every update published here so far has left this process (now, where no
        relay holds any back). Ingest acknowledges a device's messages this way: a worker killed before the
        other processes' pages were told of what it stored has not acknowledged it either, so the broker
        sends it again and the next worker shows it."""
        relays = list(self._relays_then)
        if not relays:
            callback()
            return
        waiting = [len(relays)]
        lock = threading.Lock()

        def one_done() -> None:
            with lock:
                waiting[0] -= 1
                last = waiting[0] == 0
            if last:
                callback()

        for then in relays:
            then(one_done)

    def listen(self, listener: Callable[[Update], None]) -> None:
        """Also call ``listener`` with every update delivered here, on the delivering thread (so it must only
        take note and return: the triage board's cache, ``central.web.board``)."""
        with self._lock:
            self._listeners.append(listener)

    def unlisten(self, listener: Callable[[Update], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def subscribe(self) -> Subscription:
        subscription = Subscription(self, self._maxsize)
        with self._lock:
            self._subscriptions.add(subscription)
        return subscription

    def _remove(self, subscription: Subscription) -> None:
        with self._lock:
            self._subscriptions.discard(subscription)

    def publish(self, channel: str, data: dict) -> None:
        """An update made in this process: to this process's pages and through every relay."""
        self.deliver(channel, data)
        for relay in self._relays:
            try:
                relay(channel, data)
            except Exception:  # the other processes miss one update; this process's pages have it
                log.exception("live: relaying a %s update failed", channel)

    def deliver(self, channel: str, data: dict) -> None:
        """An update to this process's pages only (one another process relayed here)."""
        update = Update(next(self._seq), channel, data)
        with self._lock:
            subscriptions, listeners = list(self._subscriptions), list(self._listeners)
        for subscription in subscriptions:
            while True:
                try:
                    subscription.queue.put_nowait(update)
                    break
                except queue.Full:
                    try:
                        subscription.queue.get_nowait()
                        subscription.dropped += 1
                    except queue.Empty:
                        pass
        for listener in listeners:
            try:
                listener(update)
            except Exception:
                log.exception("live: a listener failed on a %s update", channel)

    @property
    def watched(self) -> bool:
        """Whether an update published here reaches anyone (a page's stream, a listener such as the triage
        board's cache, or through a relay another process's pages): if not, a publisher may skip reading back
        what it would publish."""
        with self._lock:
            return bool(self._subscriptions or self._listeners or self._relays)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscriptions)
