"""A CPU budget for face work: a share of one core, measured in the thread's own CPU time.

Every second of wall time earns ``share`` seconds of credit, up to ``burst_s``; face detection and embedding
spend what they really used. Work starts only while the credit is positive, so over any few seconds faces take
at most about ``share`` of a core and the detector keeps the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class CpuBudget:
    def __init__(
        self,
        share: float,
        burst_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        cpu_clock: Callable[[], float] = time.thread_time,
    ):
        self.share, self.burst_s = share, burst_s
        self._clock, self._cpu_clock = clock, cpu_clock
        self._credit = burst_s
        self._last = clock()
        self.spent_s = 0.0
        self.refused = 0

    def _earn(self) -> None:
        now = self._clock()
        self._credit = min(self.burst_s, self._credit + (now - self._last) * self.share)
        self._last = now

    def allows(self) -> bool:
        """Whether face work may start now; counts a refusal."""
        self._earn()
        if self._credit > 0:
            return True
        self.refused += 1
        return False

    def spend(self) -> _Spending:
        """``with budget.spend(): ...`` charges the block's CPU time."""
        return _Spending(self)

    def charge(self, cpu_s: float) -> None:
        self._earn()
        self._credit -= cpu_s
        self.spent_s += cpu_s


class _Spending:
    def __init__(self, budget: CpuBudget):
        self._budget = budget

    def __enter__(self) -> None:
        self._start = self._budget._cpu_clock()

    def __exit__(self, *exc) -> None:
        self._budget.charge(self._budget._cpu_clock() - self._start)
