"""Incidents: the events that belong together, folded for the triage board. Events of the same camera, zone and
type whose start times follow each other within ``window_s`` are one incident (a re-fire of the same rule, a
crowd that comes and goes), whatever the edge did to reduce its re-fires.

One query reads the open events (an index on status), the folding is a single pass in Python over them in
(camera, zone, type, time) order. Ordered for triage: severity first, then who has waited longest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from kuzet.central.store import portable
from kuzet.shared import timeutil

# The least advanced status among an incident's events is the incident's: one new re-fire needs an answer.
STATUS_ORDER = {
    status: n for n, status in enumerate(("new", "acknowledged", "assigned", "dispatched", "closed"))
}
FILTERS = ("severity", "type", "device", "zone", "status")


@dataclass
class Incident:
    incident_id: str  # the first event's id: stable while the incident grows
    device: str
    camera_name: str | None
    zone: str | None
    event_type: str
    severity: str
    severity_rank: int
    status: str
    count: int
    first_at: str
    last_at: str
    waiting_since: str | None  # the oldest new event's start: what the waiting timer counts from
    latest_event_id: str
    snapshot_sha256: str | None  # the latest snapshot among its events
    label: str | None
    lat: float | None
    lon: float | None
    event_ids: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return asdict(self)


def _seconds_between(earlier: str, later: str) -> float:
    return (timeutil.from_wire(later) - timeutil.from_wire(earlier)).total_seconds()


def open_incidents(
    db,
    window_s: float,
    *,
    filters: dict[str, str] | None = None,
    since: str | None = None,
    until: str | None = None,
    include_closed: bool = False,
) -> list[Incident]:
    """The incidents of the events not closed (or of all events in [since, until] with ``include_closed``),
    most urgent first; ``filters``: severity, type, device, zone, status (an incident's own status)."""
    filters = {key: value for key, value in (filters or {}).items() if value}
    where, params = [], []
    if not include_closed:  # the open statuses by name: the (status, received_at) index answers, not a scan
        where.append(f"e.status IN ({', '.join('?' * (len(STATUS_ORDER) - 1))})")
        params.extend(status for status in STATUS_ORDER if status != "closed")
    if since:
        where.append("e.started_at >= ?")
        params.append(since)
    if until:
        where.append("e.started_at <= ?")
        params.append(until)
    for key, column in (("severity", "e.severity"), ("type", "e.event_type"), ("device", "e.device")):
        if key in filters:
            where.append(f"{column} = ?")
            params.append(filters[key])
    if "zone" in filters:
        where.append("coalesce(e.zone, '') = ?")
        params.append(filters["zone"])
    rows = portable.rows(
        db,
        "SELECT e.event_id, e.device, e.zone, e.event_type, e.severity, e.severity_rank, e.status, e.started_at,"
        " e.snapshot_sha256, e.label, coalesce(e.lat, d.lat) AS lat, coalesce(e.lon, d.lon) AS lon,"
        " d.name AS camera_name FROM events e LEFT JOIN devices d ON d.device_id = e.device"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY e.device, coalesce(e.zone, ''), e.event_type, e.started_at",
        params,
    )
    incidents: list[Incident] = []
    current: Incident | None = None
    for row in rows:
        same = (
            current is not None
            and (current.device, current.zone or "", current.event_type)
            == (row["device"], row["zone"] or "", row["event_type"])
            and _seconds_between(current.last_at, row["started_at"]) <= window_s
        )
        if not same:
            current = Incident(
                incident_id=row["event_id"],
                device=row["device"],
                camera_name=row["camera_name"],
                zone=row["zone"],
                event_type=row["event_type"],
                severity=row["severity"],
                severity_rank=row["severity_rank"] or 0,
                status=row["status"],
                count=0,
                first_at=row["started_at"],
                last_at=row["started_at"],
                waiting_since=None,
                latest_event_id=row["event_id"],
                snapshot_sha256=None,
                label=row["label"],
                lat=row["lat"],
                lon=row["lon"],
            )
            incidents.append(current)
        _add(current, row)
    if "status" in filters:
        incidents = [i for i in incidents if i.status == filters["status"]]
    # Most severe first; among equals, who has waited longest (an answered incident after the waiting ones);
    # the id last, as the board's page orders what it is pushed (incidents.js).
    incidents.sort(
        key=lambda i: (
            -i.severity_rank,
            i.waiting_since is None,
            i.waiting_since or i.first_at,
            i.incident_id,
        )
    )
    return incidents


def _add(incident: Incident, row: dict) -> None:
    incident.count += 1
    incident.event_ids.append(row["event_id"])
    incident.last_at = row["started_at"]
    incident.latest_event_id = row["event_id"]
    incident.label = row["label"] or incident.label
    if row["snapshot_sha256"]:
        incident.snapshot_sha256 = row["snapshot_sha256"]
    if (row["severity_rank"] or 0) > incident.severity_rank:
        incident.severity, incident.severity_rank = row["severity"], row["severity_rank"]
    if STATUS_ORDER.get(row["status"], 0) < STATUS_ORDER.get(incident.status, 0):
        incident.status = row["status"]
    if row["status"] == "new" and incident.waiting_since is None:
        incident.waiting_since = row["started_at"]
    if row["lat"] is not None:
        incident.lat, incident.lon = row["lat"], row["lon"]
