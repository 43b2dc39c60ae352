"""Response times, for the statistics: how long after an event reached central it was acknowledged by an
operator, a patrol was sent, a patrol arrived (on scene) and it was resolved; per shift (the shift the event
arrived in) and per patrol unit. Every time is counted from the event's arrival at central (``received_at``);
for a unit, "acknowledged" is the unit's own acknowledgement of its dispatch."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from zoneinfo import ZoneInfo

import sqlite_utils

from kuzet.central.store import shifts
from kuzet.shared import timeutil

# Each measure: the column holding the moment it was reached.
MEASURES = {
    "to_acknowledge": "acknowledged_at",
    "to_dispatch": "dispatched_at",
    "to_arrival": "arrived_at",
    "to_resolution": "resolved_at",
}

_FIRST_DISPATCH_STATE = """(SELECT min(l.at) FROM dispatches d JOIN dispatch_log l ON l.dispatch_id = d.dispatch_id
    WHERE d.event_id = e.event_id AND l.state = '{state}')"""

_PER_EVENT = f"""
SELECT e.event_id, e.received_at,
    (SELECT min(ts) FROM audit WHERE target = 'event:' || e.event_id
        AND action IN ('event.acknowledge', 'event.assign')) AS acknowledged_at,
    {_FIRST_DISPATCH_STATE.format(state="sent")} AS dispatched_at,
    {_FIRST_DISPATCH_STATE.format(state="on_scene")} AS arrived_at,
    coalesce((SELECT min(ts) FROM audit WHERE target = 'event:' || e.event_id AND action = 'event.close'),
             {_FIRST_DISPATCH_STATE.format(state="resolved")}) AS resolved_at
FROM events e WHERE e.received_at >= ? AND e.received_at < ?
"""

_PER_DISPATCH = """
SELECT d.unit, e.received_at,
    min(CASE WHEN l.state = 'acknowledged' THEN l.at END) AS acknowledged_at,
    min(CASE WHEN l.state = 'sent' THEN l.at END) AS dispatched_at,
    min(CASE WHEN l.state = 'on_scene' THEN l.at END) AS arrived_at,
    min(CASE WHEN l.state = 'resolved' THEN l.at END) AS resolved_at
FROM dispatches d JOIN events e ON e.event_id = d.event_id JOIN dispatch_log l ON l.dispatch_id = d.dispatch_id
WHERE e.received_at >= ? AND e.received_at < ?
GROUP BY d.dispatch_id
HAVING dispatched_at IS NOT NULL
"""


def _seconds(since: str, until: str | None) -> float | None:
    if until is None:
        return None
    return max(0.0, (timeutil.from_wire(until) - timeutil.from_wire(since)).total_seconds())


def summarise(rows: Iterable[dict], group_of: Callable[[dict], str]) -> dict[str, dict]:
    """{group: {"count": rows, measure: {"n": rows that reached it, "median": s, "p90": s} or None}}."""
    durations: dict[str, dict[str, list[float]]] = {}
    counts: dict[str, int] = {}
    for row in rows:
        group = group_of(row)
        counts[group] = counts.get(group, 0) + 1
        per_measure = durations.setdefault(group, {measure: [] for measure in MEASURES})
        for measure, column in MEASURES.items():
            seconds = _seconds(row["received_at"], row[column])
            if seconds is not None:
                per_measure[measure].append(seconds)
    return {
        group: {"count": counts[group], **{m: _figures(values) for m, values in durations[group].items()}}
        for group in counts
    }


def _figures(values: list[float]) -> dict | None:
    if not values:
        return None
    p90 = statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]
    return {"n": len(values), "median": statistics.median(values), "p90": p90}


def per_shift(
    db: sqlite_utils.Database, recent: list[shifts.Shift], starts: list[str], zone: ZoneInfo
) -> list:
    """[(shift, summary or None)] for each of ``recent`` (newest first), by the shift each event arrived in."""
    rows = db.query(_PER_EVENT, [recent[-1].start_wire, recent[0].end_wire])
    by_key = summarise(
        rows, lambda row: shifts.shift_of(timeutil.from_wire(row["received_at"]), starts, zone).key
    )
    return [(shift, by_key.get(shift.key)) for shift in recent]


def per_unit(db: sqlite_utils.Database, since: str, until: str) -> dict[str, dict]:
    """{unit: summary} over the dispatches sent for events that arrived in [since, until), busiest first."""
    summary = summarise(db.query(_PER_DISPATCH, [since, until]), lambda row: row["unit"])
    return dict(sorted(summary.items(), key=lambda item: (-item[1]["count"], item[0])))
