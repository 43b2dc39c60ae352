"""Sliding-window limit on attempts per key (a client address): slows password guessing across accounts,
where the per-account lock-out alone would let one address try a few passwords on every account."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque


class RateLimiter:
    def __init__(self, attempts: int, window_s: float, clock=time.monotonic):
        self.attempts = attempts
        self.window_s = window_s
        self._clock = clock
        self._seen: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Record an attempt; False when the key has used up its attempts in the window."""
        now = self._clock()
        with self._lock:
            seen = self._seen[key]
            while seen and seen[0] <= now - self.window_s:
                seen.popleft()
            if len(seen) >= self.attempts:
                return False
            seen.append(now)
            return True

    def retry_after(self, key: str) -> int:
        with self._lock:
            seen = self._seen.get(key)
            if not seen:
                return 0
            return max(1, int(seen[0] + self.window_s - self._clock()) + 1)
