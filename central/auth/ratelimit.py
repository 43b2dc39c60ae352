"""Slowing password guessing at log-in, without locking out an operations centre.

Only failed log-ins count (in this process's memory; ``users.authenticate`` adds the lock-out kept in the
database, per address and account, that a supervisor can lift). They are counted per (client address, username), so that one mistyped account
does not hold up the others, and per client address with a looser limit, so that one address cannot try a few
passwords on every account (the per-account lock-out in ``users.authenticate`` alone would allow that). A
whole shift logging in through one NAT address at handover is never refused: successes are not counted.
"""

from __future__ import annotations

import threading
import time
from collections import deque

FAILURES_PER_ACCOUNT = 10  # per (address, username) in the window
FAILURES_PER_ADDRESS = 100  # per address in the window, whatever the usernames
WINDOW_S = 300.0


class FailureWindow:
    """Failures per key in a sliding window."""

    # Keys with nothing recent are dropped once there are this many, so random usernames cannot grow memory.
    SWEEP_AT = 10_000

    def __init__(self, limit: int, window_s: float, clock=time.monotonic):
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        seen = self._seen.get(key)
        if seen is None:
            return deque()
        while seen and seen[0] <= now - self.window_s:
            seen.popleft()
        if not seen:
            del self._seen[key]
        return seen

    def retry_after(self, key: str) -> int:
        """0 if the key may try now, else the seconds until its oldest counted failure leaves the window."""
        now = self._clock()
        with self._lock:
            seen = self._recent(key, now)
            if len(seen) < self.limit:
                return 0
            return max(1, int(seen[0] + self.window_s - now) + 1)

    def fail(self, key: str) -> None:
        now = self._clock()
        with self._lock:
            if len(self._seen) >= self.SWEEP_AT:
                for stale in list(self._seen):
                    self._recent(stale, now)
            self._seen.setdefault(key, deque()).append(now)

    def forget(self, key: str) -> None:
        with self._lock:
            self._seen.pop(key, None)

    def forget_matching(self, matches) -> None:
        with self._lock:
            for key in [key for key in self._seen if matches(key)]:
                del self._seen[key]


class LoginLimiter:
    def __init__(
        self,
        per_account: int = FAILURES_PER_ACCOUNT,
        per_address: int = FAILURES_PER_ADDRESS,
        window_s: float = WINDOW_S,
        clock=time.monotonic,
    ):
        self._accounts = FailureWindow(per_account, window_s, clock)
        self._addresses = FailureWindow(per_address, window_s, clock)
        self._unlocks: dict[str, int] = {}

    @staticmethod
    def _account(address: str, username: str) -> str:
        return f"{address} {username.strip().lower()}"

    def retry_after(self, address: str, username: str) -> int:
        """0 if this log-in may be tried now, else how many seconds to wait."""
        return max(
            self._accounts.retry_after(self._account(address, username)), self._addresses.retry_after(address)
        )

    def failed(self, address: str, username: str) -> None:
        self._accounts.fail(self._account(address, username))
        self._addresses.fail(address)

    def unlocked(self, username: str, unlock_seq: int) -> None:
        """A supervisor unlocked the account (``unlock_seq``: that unlock's audit entry, 0 if none): its
        failures from every address are forgotten, once per unlock. The addresses' own counts stand."""
        if unlock_seq <= self._unlocks.get(username.strip().lower(), 0):
            return
        self._unlocks[username.strip().lower()] = unlock_seq
        self._accounts.forget_matching(lambda key: key.split(" ", 1)[-1] == username.strip().lower())

    def succeeded(self, address: str, username: str) -> None:
        """The right password: that account's failures from this address are forgotten (the address's are not,
        so a guesser who knows one password cannot reset the address limit with it)."""
        self._accounts.forget(self._account(address, username))
