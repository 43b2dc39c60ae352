"""Which broker of an ordered list (primary first, then standbys) a link connects to next.

A site's brokers do not share state: a device is connected to one of them at a time and its durable outbox
resends whatever that broker had not acknowledged, so moving between them loses nothing. The rules, for the
``Link`` that calls ``connecting`` before each attempt and ``connected`` / ``lost`` from its callbacks:

- the broker in use keeps being tried (paho's backoff) until ``failover_after_s`` have passed since the link
  lost it, or since it was first tried; then the next broker in the list is tried, for as long again, and so
  round (after the last comes the primary);
- while connected to a standby, the primary is checked every ``return_to_primary_s`` to twice that, each wait
  drawn anew (0: never); once it accepts connections the link goes back to it (``Link`` does the clean
  disconnect). The draw is for the return what ``reconnect_delays`` is for the loss: the city's cameras that
  moved to the standby within seconds of each other go back over a whole period, not in step, so that the
  restarted primary does not take thousands of TLS handshakes at once (10,000 devices returning within 20 s cut
  each other off for silence on two cores, docs/scale.md).

Each link also draws its own reconnect backoff (``reconnect_delays``), so that thousands of devices that lost
the same broker at the same moment do not knock on it, or on the standby, in step.

No I/O here: the clock and the random source are passed in so that the rules are tested without brokers.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable


def reconnect_delays(
    failover_after_s: float, several: bool, rng: random.Random | None = None
) -> tuple[float, float]:
    """paho's backoff for one link, in seconds: the first wait (1 to 2 s) doubling up to the longest. With a
    standby to go to the longest is at most ``failover_after_s / 2`` (attempts must come often enough to notice
    that time has passed), else 30 s; each link draws its own, between three quarters of that and all of it,
    so that a city's cameras cut off at once spread their attempts instead of arriving together."""
    rng = rng or random.Random()
    longest = max(1.0, min(30.0, failover_after_s / 2)) if several else 30.0
    first = 1.0 + rng.random()
    return first, max(first, longest * (0.75 + 0.25 * rng.random()))


class BrokerChoice:
    def __init__(
        self,
        urls: list[str],
        failover_after_s: float,
        return_to_primary_s: float,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ):
        if not urls:
            raise ValueError("at least one broker URL is needed")
        self.urls = list(urls)
        self.failover_after_s = failover_after_s
        self.return_to_primary_s = return_to_primary_s
        self.clock = clock
        self._rng = rng or random.Random()
        self.index = 0  # the broker in use (or being tried)
        self.moves = 0  # how many times the link moved to another broker
        self._trying_since: float | None = None  # None while connected, or before the first attempt
        self._primary_check_at: float | None = None  # when to check the primary next (on a standby only)
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.urls[self.index]

    @property
    def on_standby(self) -> bool:
        return self.index != 0

    def connecting(self) -> str:
        """Before a connection attempt: the URL to try (moving on when the current one had its time)."""
        with self._lock:
            now = self.clock()
            if self._trying_since is None:
                self._trying_since = now
            elif len(self.urls) > 1 and now - self._trying_since >= self.failover_after_s:
                self._move((self.index + 1) % len(self.urls), now)
            return self.url

    def connected(self) -> None:
        with self._lock:
            self._trying_since = None
            if self.on_standby and self.return_to_primary_s > 0:
                self._primary_check_at = self.clock() + self._check_wait()
            else:
                self._primary_check_at = None

    def lost(self) -> None:
        """The connection dropped: the current broker now has ``failover_after_s`` to come back."""
        with self._lock:
            if self._trying_since is None:
                self._trying_since = self.clock()
            self._primary_check_at = None

    def primary_check_due(self) -> bool:
        """Connected to a standby and it is time to see whether the primary is back (then call again later:
        each ``True`` schedules the next check)."""
        with self._lock:
            now = self.clock()
            if self._primary_check_at is None or now < self._primary_check_at:
                return False
            self._primary_check_at = now + self._check_wait()
            return True

    def _check_wait(self) -> float:
        return self.return_to_primary_s * (1 + self._rng.random())

    def back_to_primary(self) -> None:
        """The primary accepts connections again: the next attempt goes there."""
        with self._lock:
            self._move(0, self.clock())

    def _move(self, index: int, now: float) -> None:
        self.index = index
        self.moves += 1
        self._trying_since = now
        self._primary_check_at = None
