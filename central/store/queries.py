"""The read side of central's database for the page and the API: events with filters, one event with its
timeline, media, dispatch history and viewers, devices with their health, units, statistics, dead letters.

Rows come back as plain dicts ready for JSON: JSON text columns parsed, flags as booleans.
"""

from __future__ import annotations

import json
from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

from kuzet.central import alerts
from kuzet.central.routing.repository import SqliteRoutingRepository
from kuzet.central.routing.repository_pg import NEAREST_SQL, PostgresRoutingRepository
from kuzet.central.store import portable
from kuzet.shared import timeutil

EVENT_FILTERS = {
    "status": "status",
    "type": "event_type",
    "severity": "severity",
    "device": "device",
    "zone": "zone",
}
_JSON_COLUMNS = ("track_ids", "box", "frame_size", "attributes", "capabilities")
MAX_LIMIT = 1000
# A device that has said nothing for this long is shown offline whatever its last availability message said.
STALE_AFTER = timedelta(minutes=3)


def _parse(row: dict) -> dict:
    row = dict(row)
    for column in _JSON_COLUMNS:
        if isinstance(row.get(column), str):
            try:
                row[column] = json.loads(row[column])
            except ValueError:
                pass  # shown as the text it is
    return row


def _event(row: dict) -> dict:
    row = _parse(row)
    row["hold"] = bool(row.get("hold"))
    return row


def with_changes(event: dict, changes: dict) -> dict:
    """``event`` as ``get_event`` would read it once ``changes`` (column values as written) are stored: the
    writer that just made them need not read the row back."""
    return _event({**event, **changes})


def list_events(db, filters: dict | None = None, limit: int = 200, before: str = "") -> list[dict]:
    """Newest first. ``filters`` keys are those of EVENT_FILTERS (empty values ignored); ``before`` is a
    received_at to page back from. Status "open" means anything not closed."""
    where, params = [], []
    for key, value in (filters or {}).items():
        if not value:
            continue
        if key not in EVENT_FILTERS:
            raise ValueError(f"unknown filter {key!r}; one of {', '.join(EVENT_FILTERS)}")
        if key == "status" and value == "open":
            where.append("status != 'closed'")
        else:
            where.append(f"{EVENT_FILTERS[key]} = ?")
            params.append(value)
    if before:
        where.append("received_at < ?")
        params.append(before)
    sql = "SELECT * FROM events"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY received_at DESC, event_id DESC LIMIT ?"
    params.append(max(1, min(int(limit), MAX_LIMIT)))
    return [_event(row) for row in portable.rows(db, sql, params)]


def get_event(db, event_id: str) -> dict | None:
    rows = list(portable.rows(db, "SELECT * FROM events WHERE event_id = ?", [event_id]))
    return _event(rows[0]) if rows else None


def event_timeline(db, event_id: str) -> list[dict]:
    """Every state the edge sent for the event, in order: the track's boxes and scores over time."""
    rows = portable.rows(db, "SELECT * FROM event_updates WHERE event_id = ? ORDER BY seq, ts", [event_id])
    return [_parse(row) for row in rows]


def media(db, sha256: str) -> dict | None:
    rows = list(portable.rows(db, "SELECT * FROM media WHERE sha256 = ?", [sha256]))
    return rows[0] if rows else None


def clip(db, clip_id: str) -> dict | None:
    rows = list(portable.rows(db, "SELECT * FROM clips WHERE clip_id = ?", [clip_id]))
    return rows[0] if rows else None


def event_media(db, event: dict) -> dict:
    """The event's snapshot and clip as far as they have arrived: {"snapshot": media row or None,
    "clip": clips row or None, "clip_media": media row once the clip is complete and verified}."""
    snapshot = media(db, event["snapshot_sha256"]) if event.get("snapshot_sha256") else None
    clip_row = clip(db, event["clip_id"]) if event.get("clip_id") else None
    if clip_row is None:
        found = list(
            portable.rows(
                db,
                "SELECT * FROM clips WHERE event_id = ? ORDER BY created_at DESC LIMIT 1",
                [event["event_id"]],
            )
        )
        clip_row = found[0] if found else None
    clip_media = media(db, clip_row["sha256"]) if clip_row and clip_row.get("sha256") else None
    return {"snapshot": snapshot, "clip": clip_row, "clip_media": clip_media}


def dispatch_history(db, event_id: str) -> list[dict]:
    """The event's dispatches, oldest first, each with its state changes under "log"."""
    dispatches = list(
        portable.rows(db, "SELECT * FROM dispatches WHERE event_id = ? ORDER BY created_at", [event_id])
    )
    for dispatch in dispatches:
        dispatch["log"] = list(
            portable.rows(
                db,
                "SELECT state, at, by, detail, detail_key, detail_params FROM dispatch_log"
                " WHERE dispatch_id = ? ORDER BY id",
                [dispatch["dispatch_id"]],
            )
        )
        for entry in dispatch["log"]:
            entry["detail_params"] = json.loads(entry["detail_params"]) if entry["detail_params"] else {}
    return dispatches


def viewers(db, event_id: str) -> list[dict]:
    """Who opened the event or its evidence, and when (from the audit log), newest first."""
    rows = portable.rows(
        db,
        "SELECT ts, actor, action FROM audit WHERE target = ? AND action IN ('event.view', 'media.view')"
        " ORDER BY seq DESC LIMIT 200",
        [f"event:{event_id}"],
    )
    return list(rows)


def distinct_values(db) -> dict[str, list[str]]:
    """What the queue's filter menus offer."""
    values = {}
    for key, column in (("device", "device"), ("zone", "zone"), ("type", "event_type")):
        rows = portable.execute(
            db, f"SELECT DISTINCT {column} FROM events WHERE {column} IS NOT NULL ORDER BY 1"
        )
        values[key] = [row[0] for row in rows]
    return values


def queue_counters(db) -> dict:
    """The live counters above the queue: open events by status and by severity."""
    by_status = dict(
        portable.execute(
            db, "SELECT status, count(*) FROM events WHERE status != 'closed' GROUP BY status"
        ).fetchall()
    )
    by_severity = dict(
        portable.execute(
            db, "SELECT severity, count(*) FROM events WHERE status != 'closed' GROUP BY severity"
        ).fetchall()
    )
    return {"by_status": by_status, "by_severity": by_severity, "open": sum(by_status.values())}


# --- devices and units --------------------------------------------------------------------------------------


def device_health(device: dict, now=None) -> list[alerts.Text]:
    """What is wrong with a device, in words an operator understands (each in its reader's language where
    shown: central/web/i18n.py); empty when healthy."""
    problems = []
    if device.get("revoked_at"):
        return [alerts.say("device_revoked_state")]
    if not device["online"]:
        problems.append(alerts.say("device_offline"))
    status = device.get("status") or {}
    if status.get("cpu_temp_c") is not None and status["cpu_temp_c"] >= 80:
        problems.append(alerts.say("device_hot", celsius=f"{status['cpu_temp_c']:.0f}"))
    if status.get("disk_free_mb") is not None and status["disk_free_mb"] < 500:
        problems.append(alerts.say("device_disk_full", free_mb=f"{status['disk_free_mb']:.0f}"))
    if status.get("outbox_depth") is not None and status["outbox_depth"] >= 100:
        problems.append(alerts.say("device_outbox_backlog", count=status["outbox_depth"]))
    if status.get("battery_pct") is not None and status["battery_pct"] < 15:
        problems.append(alerts.say("device_battery_low", percent=f"{status['battery_pct']:.0f}"))
    if status.get("source_state") not in (None, "ok", "running", "streaming", "idle", "recording"):
        problems.append(alerts.say("device_source", source_state=status["source_state"]))
    return problems


def _device(row: dict, now) -> dict:
    row = dict(row)
    status = row.get("status")
    try:
        row["status"] = json.loads(status) if status else {}
    except ValueError:
        row["status"] = {}
    stale = not row.get("last_seen") or timeutil.from_wire(row["last_seen"]) < now - STALE_AFTER
    row["online"] = bool(row.get("online")) and not stale and not row.get("revoked_at")
    found = device_health(row)
    row["problems"] = [problem.english for problem in found]  # the API's English, as before
    row["problem_keys"] = [{"key": problem.key, "params": problem.stored()} for problem in found]
    return row


def list_devices(db) -> list[dict]:
    now = timeutil.utc_now()
    return [_device(row, now) for row in portable.rows(db, "SELECT * FROM devices ORDER BY kind, device_id")]


def get_device(db, device_id: str) -> dict | None:
    rows = list(portable.rows(db, "SELECT * FROM devices WHERE device_id = ?", [device_id]))
    return _device(rows[0], timeutil.utc_now()) if rows else None


def list_units(db) -> list[dict]:
    return [_parse(row) for row in portable.rows(db, "SELECT * FROM units ORDER BY callsign, device_id")]


def map_events(db, limit: int = 200) -> list[dict]:
    """Open events that have a position, for the map."""
    rows = portable.rows(
        db,
        "SELECT event_id, device, event_type, severity, status, label, zone, lat, lon, received_at,"
        " dispatched_unit, snapshot_sha256 FROM events"
        " WHERE status != 'closed' AND lat IS NOT NULL ORDER BY received_at DESC LIMIT ?",
        [limit],
    )
    return list(rows)


def routing_reads(db) -> SqliteRoutingRepository:
    """Routing's repository on ``db``'s engine, for what the page reads of the dispatches (the map's, a unit's);
    nearest units are never asked for here."""
    if portable.is_sqlite(db):
        return SqliteRoutingRepository(db)
    return PostgresRoutingRepository(lambda: db, nearest_method=NEAREST_SQL)


def has_evidence(db, device_id: str) -> bool:
    """Whether the badge has sent any evidence segment (its page then offers the chain check)."""
    found = portable.execute(db, "SELECT 1 FROM evidence_segments WHERE device = ? LIMIT 1", [device_id])
    return found.fetchone() is not None


def ping(db) -> None:
    """A read that raises the database's error when it does not answer (/healthz)."""
    portable.execute(db, "SELECT 1 FROM events LIMIT 1").fetchall()


def gauges(db) -> dict:
    """What /metrics counts in the database besides events and devices: dispatches by state, those that are a
    later attempt for their event, unacknowledged alerts by level, dead letters, audit entries."""

    def count(sql: str) -> int:
        return portable.execute(db, sql).fetchone()[0]

    def by(sql: str) -> dict[str, int]:
        return dict(portable.execute(db, sql).fetchall())

    return {
        "dispatches": by("SELECT state, count(*) FROM dispatches GROUP BY state"),
        "escalations": count("SELECT count(*) FROM dispatches WHERE attempt > 1"),
        "alerts_open": by("SELECT level, count(*) FROM alerts WHERE acknowledged_at IS NULL GROUP BY level"),
        "dead_letters": count("SELECT count(*) FROM dead_letters"),
        "audit_entries": count("SELECT count(*) FROM audit"),
    }


def dead_letters(db, limit: int = 200) -> list[dict]:
    rows = portable.rows(
        db,
        "SELECT id, topic, payload, payload_size, reason, received_at FROM dead_letters ORDER BY id DESC LIMIT ?",
        [limit],
    )
    letters = []
    for row in rows:
        payload = row.pop("payload") or b""
        row["payload_preview"] = payload[:2000].decode("utf-8", errors="replace")
        letters.append(row)
    return letters


# --- statistics -----------------------------------------------------------------------------------------------

STAT_GROUPS = {
    "type": "event_type",
    "camera": "device",
    "zone": "coalesce(zone, '(none)')",
    "severity": "severity",
}
STAT_PERIODS = {"hour": (13, timedelta(hours=1), 24), "day": (10, timedelta(days=1), 14)}


def event_counts(
    db,
    period: str = "hour",
    by: str = "type",
    buckets: int | None = None,
    zone: ZoneInfo | None = None,
) -> dict:
    """Events per hour (last 24) or per day (last 14) split by type, camera, zone or severity, the hours and
    days being those of the site's time ``zone`` (UTC without one).

    Returns {"buckets": [bucket labels oldest first], "groups": [names, busiest first],
    "counts": {group: [count per bucket]}, "total": n}; buckets with no events are present with zeros.
    Exact for zones whose offset is whole hours (Kazakhstan, UTC+5); others are counted to the hour."""
    if period not in STAT_PERIODS or by not in STAT_GROUPS:
        raise ValueError(f"period is one of {list(STAT_PERIODS)} and by one of {list(STAT_GROUPS)}")
    width, step, default_buckets = STAT_PERIODS[period]
    buckets = buckets or default_buckets
    now = timeutil.utc_now().astimezone(zone or UTC)
    labels = [(now - step * i).strftime("%Y-%m-%dT%H")[:width] for i in range(buckets - 1, -1, -1)]
    # Grouped by UTC hour in SQL (the same text on SQLite and PostgreSQL), then each hour moved into the
    # zone's hour or day here: a few hundred rows, whatever the number of events.
    hourly = portable.execute(
        db,
        f"SELECT substr(started_at, 1, 13) AS hour, {STAT_GROUPS[by]} AS grp, count(*) FROM events"
        " WHERE started_at >= ? GROUP BY hour, grp",
        [timeutil.to_wire(now - step * buckets)],
    ).fetchall()
    rows = [
        (timeutil.from_wire(f"{hour}:00:00Z").astimezone(now.tzinfo).strftime("%Y-%m-%dT%H")[:width], grp, n)
        for hour, grp, n in hourly
    ]
    counts: dict[str, list[int]] = {}
    index = {label: i for i, label in enumerate(labels)}
    for bucket, group, count in rows:
        if bucket in index:
            counts.setdefault(group, [0] * buckets)[index[bucket]] += count
    groups = sorted(counts, key=lambda g: -sum(counts[g]))
    return {
        "period": period,
        "by": by,
        "buckets": labels,
        "groups": groups,
        "counts": counts,
        "total": sum(sum(v) for v in counts.values()),
    }
