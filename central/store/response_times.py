"""Response times, for the statistics: how long after an event reached central it was acknowledged by an
operator, a patrol was sent, a patrol arrived (on scene) and it was resolved; per shift (the shift the event
arrived in) and per patrol unit. Every time is counted from the event's arrival at central (``received_at``);
for a unit, "acknowledged" is the unit's own acknowledgement of its dispatch."""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Callable, Iterable

from kuzet.central.store import portable, shifts

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
SELECT received_at, {{seconds}} FROM (
SELECT e.event_id, e.received_at,
    (SELECT min(ts) FROM audit WHERE target = 'event:' || e.event_id
        AND action IN ('event.acknowledge', 'event.assign')) AS acknowledged_at,
    {_FIRST_DISPATCH_STATE.format(state="sent")} AS dispatched_at,
    {_FIRST_DISPATCH_STATE.format(state="on_scene")} AS arrived_at,
    coalesce((SELECT min(ts) FROM audit WHERE target = 'event:' || e.event_id AND action = 'event.close'),
             {_FIRST_DISPATCH_STATE.format(state="resolved")}) AS resolved_at
FROM events e WHERE e.received_at >= ? AND e.received_at < ?) AS per_event
"""

_PER_DISPATCH = """
SELECT unit, received_at, {seconds} FROM (
SELECT d.unit, e.received_at,
    min(CASE WHEN l.state = 'acknowledged' THEN l.at END) AS acknowledged_at,
    min(CASE WHEN l.state = 'sent' THEN l.at END) AS dispatched_at,
    min(CASE WHEN l.state = 'on_scene' THEN l.at END) AS arrived_at,
    min(CASE WHEN l.state = 'resolved' THEN l.at END) AS resolved_at
FROM dispatches d JOIN events e ON e.event_id = d.event_id JOIN dispatch_log l ON l.dispatch_id = d.dispatch_id
WHERE e.received_at >= ? AND e.received_at < ?
GROUP BY d.dispatch_id, d.unit, e.received_at
HAVING min(CASE WHEN l.state = 'sent' THEN l.at END) IS NOT NULL) AS per_dispatch
"""


def _seconds(db) -> str:
    """Each measure in seconds from arrival, to the millisecond, never negative, NULL where not reached:
    computed by the database (parsing the times in Python cost more than the queries)."""
    if portable.is_sqlite(db):
        between = "max(0, round((julianday({column}) - julianday(received_at)) * 86400, 3))"
    else:  # PostgreSQL's greatest() skips a NULL: the CASE keeps "not reached" NULL
        between = (
            "CASE WHEN {column} IS NOT NULL THEN CAST(greatest(0, round(CAST(extract(epoch FROM"
            " CAST({column} AS timestamptz) - CAST(received_at AS timestamptz)) AS numeric), 3))"
            " AS double precision) END"
        )
    return ", ".join(f"{between.format(column=column)} AS {measure}" for measure, column in MEASURES.items())


def summarise(rows: Iterable[dict], group_of: Callable[[dict], str]) -> dict[str, dict]:
    """{group: {"count": rows, measure: {"n": rows that reached it, "median": s, "p90": s} or None}}."""
    durations: dict[str, dict[str, list[float]]] = {}
    counts: dict[str, int] = {}
    for row in rows:
        group = group_of(row)
        counts[group] = counts.get(group, 0) + 1
        per_measure = durations.setdefault(group, {measure: [] for measure in MEASURES})
        for measure in MEASURES:
            if row[measure] is not None:
                per_measure[measure].append(row[measure])
    return {
        group: {"count": counts[group], **{m: _figures(values) for m, values in durations[group].items()}}
        for group in counts
    }


def _figures(values: list[float]) -> dict | None:
    if not values:
        return None
    p90 = statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]
    return {"n": len(values), "median": statistics.median(values), "p90": p90}


def per_shift(db, recent: list[shifts.Shift]) -> list:
    """[(shift, summary or None)] for each of ``recent`` (consecutive shifts, newest first), by the shift each
    event arrived in."""
    rows = portable.rows(
        db, _PER_EVENT.format(seconds=_seconds(db)), [recent[-1].start_wire, recent[0].end_wire]
    )
    oldest_first = recent[::-1]
    starts_at = [shift.start_wire for shift in oldest_first]  # wire times sort as text

    def shift_key(row: dict) -> str:
        return oldest_first[bisect.bisect_right(starts_at, row["received_at"]) - 1].key

    by_key = summarise(rows, shift_key)
    return [(shift, by_key.get(shift.key)) for shift in recent]


def per_unit(db, since: str, until: str) -> dict[str, dict]:
    """{unit: summary} over the dispatches sent for events that arrived in [since, until), busiest first."""
    return by_unit(dispatch_rows(db, since, until))


def dispatch_rows(db, since: str, until: str) -> list[dict]:
    """Each dispatch sent for an event that arrived in [since, until): its unit and measures."""
    return list(portable.rows(db, _PER_DISPATCH.format(seconds=_seconds(db)), [since, until]))


def by_unit(rows: Iterable[dict]) -> dict[str, dict]:
    summary = summarise(rows, lambda row: row["unit"])
    return dict(sorted(summary.items(), key=lambda item: (-item[1]["count"], item[0])))
