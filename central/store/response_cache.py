"""Response times of the shifts that have ended, kept between loads of the statistics page instead of computed
again on each (``central.store.response_times`` computes them); the running shift is always computed afresh.

An ended shift's figures change only when one of its events is answered later (an audit entry acknowledging,
assigning or closing it; a dispatch-log entry) or when its events change in number (retention, a restore).
Each load reads what the audit and the dispatch log gained since the load before (their ids only grow) and
the number of events in each kept shift, and forgets the shifts these touch: they are computed again.
"""

from __future__ import annotations

import bisect
import threading
from dataclasses import dataclass

from kuzet.central.store import portable, response_times, shifts

ANSWERS = ("event.acknowledge", "event.assign", "event.close")  # the audit entries response_times reads

_ANSWERED_SINCE = f"""
SELECT e.received_at FROM audit a JOIN events e ON e.event_id = substr(a.target, 7)
WHERE a.seq > ? AND a.seq <= ? AND a.target LIKE 'event:%' AND a.action IN ({", ".join("?" * len(ANSWERS))})
UNION ALL
SELECT e.received_at FROM dispatch_log l JOIN dispatches d ON d.dispatch_id = l.dispatch_id
JOIN events e ON e.event_id = d.event_id WHERE l.id > ? AND l.id <= ?
"""


@dataclass
class _Ended:
    events: int  # how many events arrived in it, when computed
    summary: dict | None
    dispatches: list[dict]  # response_times.dispatch_rows, for the figures per unit


class EndedShifts:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[str, _Ended] = {}
        self._audit_seq = self._log_id = 0  # read up to these

    def figures(self, db, recent: list[shifts.Shift]) -> tuple[list, dict]:
        """(per shift, per unit) over ``recent`` (the running shift first, then those before it, newest
        first), as ``response_times.per_shift`` and ``per_unit`` give them."""
        running, ended = recent[0], recent[1:]
        with self._lock:
            self._forget_changed(db, ended)
            for shift in ended:
                if shift.key not in self._kept:
                    # Counted first: an event arriving meanwhile makes the count differ next time, never the
                    # figures stale.
                    events = _count(db, shift)
                    [(_, summary)] = response_times.per_shift(db, [shift])
                    rows = response_times.dispatch_rows(db, shift.start_wire, shift.end_wire)
                    self._kept[shift.key] = _Ended(events, summary, rows)
            kept = [self._kept[shift.key] for shift in ended]
        [(_, now)] = response_times.per_shift(db, [running])
        running_rows = response_times.dispatch_rows(db, running.start_wire, running.end_wire)
        per_shift = [
            (running, now),
            *((shift, entry.summary) for shift, entry in zip(ended, kept, strict=True)),
        ]
        per_unit = response_times.by_unit(
            [*running_rows, *(row for entry in kept for row in entry.dispatches)]
        )
        return per_shift, per_unit

    def _forget_changed(self, db, ended: list[shifts.Shift]) -> None:
        wanted = {shift.key for shift in ended}
        for key in [key for key in self._kept if key not in wanted]:  # out of the page's range now
            del self._kept[key]
        audit_seq = portable.row(db, "SELECT coalesce(max(seq), 0) AS n FROM audit")["n"]
        log_id = portable.row(db, "SELECT coalesce(max(id), 0) AS n FROM dispatch_log")["n"]
        if self._kept:
            oldest_first = ended[::-1]
            starts = [shift.start_wire for shift in oldest_first]
            answered = portable.rows(
                db, _ANSWERED_SINCE, [self._audit_seq, audit_seq, *ANSWERS, self._log_id, log_id]
            )
            for received_at in (row["received_at"] for row in answered):
                at = bisect.bisect_right(starts, received_at) - 1
                if at >= 0 and received_at < oldest_first[at].end_wire:
                    self._kept.pop(oldest_first[at].key, None)
            for shift in ended:
                entry = self._kept.get(shift.key)
                if entry is not None and _count(db, shift) != entry.events:
                    del self._kept[shift.key]
        self._audit_seq, self._log_id = audit_seq, log_id


def _count(db, shift: shifts.Shift) -> int:
    return portable.row(
        db,
        "SELECT count(*) AS n FROM events WHERE received_at >= ? AND received_at < ?",
        [shift.start_wire, shift.end_wire],
    )["n"]
