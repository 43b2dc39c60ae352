"""Operators' shifts: which shift a moment falls in, from the site's shift starts (``[site] shifts``, local
times of day) in its time zone. Pure time arithmetic; no database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from kuzet.shared import timeutil


@dataclass(frozen=True)
class Shift:
    start: datetime  # local, in the site's zone
    end: datetime

    @property
    def start_wire(self) -> str:
        return timeutil.to_wire(self.start.astimezone(UTC))

    @property
    def end_wire(self) -> str:
        return timeutil.to_wire(self.end.astimezone(UTC))

    @property
    def key(self) -> str:
        """The shift's name in data (CSV, URLs): its local start, '2026-12-05T08:00'."""
        return self.start.strftime("%Y-%m-%dT%H:%M")


def _starts(starts: list[str]) -> list[time]:
    return sorted(time.fromisoformat(start) for start in starts)


def _boundaries(day, starts: list[time], zone: ZoneInfo) -> list[datetime]:
    return [datetime.combine(day, start, tzinfo=zone) for start in starts]


def shift_of(moment: datetime, starts: list[str], zone: ZoneInfo) -> Shift:
    """The shift ``moment`` (aware) falls in."""
    local = moment.astimezone(zone)
    times = _starts(starts)
    around = [
        boundary
        for day in (local.date() - timedelta(days=1), local.date(), local.date() + timedelta(days=1))
        for boundary in _boundaries(day, times, zone)
    ]
    start = max(boundary for boundary in around if boundary <= local)
    end = min(boundary for boundary in around if boundary > start)
    return Shift(start, end)


def recent(now: datetime, starts: list[str], zone: ZoneInfo, count: int) -> list[Shift]:
    """The shift running at ``now`` and the ``count - 1`` before it, newest first."""
    shifts = [shift_of(now, starts, zone)]
    while len(shifts) < count:
        shifts.append(shift_of(shifts[-1].start - timedelta(seconds=1), starts, zone))
    return shifts
