"""Write side of the ``devices`` table: every device central hears from, its latest status and whether it is
online. A device that is heard from before it was registered is created with ``registered_at`` empty, which
is what marks it unregistered on the page."""

from __future__ import annotations

from collections.abc import Iterable

from kuzet.central.store import portable
from kuzet.shared import messages, timeutil
from kuzet.shared.messages import Availability, Status

_IN_CHUNK = 500


def touch(conn, seen: dict[str, tuple[str, str]]) -> list[str]:
    """Record that each device in ``seen`` (device -> (site, received_at)) was heard from.

    Returns the devices that were not known before (created now, unregistered)."""
    known = {row[0] for row in _select(conn, "SELECT device_id FROM devices WHERE device_id IN ({})", seen)}
    portable.executemany(
        conn,
        "INSERT INTO devices (device_id, site, last_seen, online) VALUES (?, ?, ?, 0) "
        "ON CONFLICT(device_id) DO UPDATE SET last_seen = CASE WHEN excluded.last_seen > coalesce(devices.last_seen, '')"
        " THEN excluded.last_seen ELSE devices.last_seen END",
        # In one order for every ingest worker: workers sharing the stream each lock their batch's devices here
        # first, and in arrival order two of them deadlocked on PostgreSQL (a batch retried each time).
        [(device, site, received_at) for device, (site, received_at) in sorted(seen.items())],
    )
    return [device for device in seen if device not in known]


def revoked_among(conn, device_ids: Iterable[str]) -> set[str]:
    """Which of these devices are revoked (their messages are refused). Revoked devices are few: reading
    them all (a partial index holds just them) costs less than looking each device of a batch up."""
    revoked = {
        row[0] for row in portable.execute(conn, "SELECT device_id FROM devices WHERE revoked_at IS NOT NULL")
    }
    return revoked.intersection(device_ids) if revoked else set()


def previous_statuses(conn, device_ids: Iterable[str]) -> dict[str, tuple[str | None, str | None]]:
    """{device: (its latest heartbeat as stored JSON, its time)} of these devices, before a batch's."""
    rows = _select(
        conn, "SELECT device_id, status, status_at FROM devices WHERE device_id IN ({})", device_ids
    )
    return {row[0]: (row[1], row[2]) for row in rows}


def apply_statuses(conn, statuses: Iterable[Status]) -> None:
    """Keep each device's latest heartbeat (the whole message as JSON; one older than what is kept changes
    nothing but this): a heartbeat means the device is online. One statement for the lot (psycopg pipelines
    it): at 10,000 devices, heartbeats are most of what ingest stores."""
    newer = "(status_at IS NULL OR status_at <= ?)"  # SET's expressions all read the row as it was
    portable.executemany(
        conn,
        f"UPDATE devices SET online = 1, kind = CASE WHEN {newer} THEN coalesce(kind, ?) ELSE kind END, "
        f"status = CASE WHEN {newer} THEN ? ELSE status END, "
        f"software_version = CASE WHEN {newer} THEN ? ELSE software_version END, "
        f"status_at = CASE WHEN {newer} THEN ? ELSE status_at END WHERE device_id = ?",
        [
            (
                ts,
                message.kind,
                ts,
                messages.encode(message).decode(),
                ts,
                message.software_version,
                ts,
                ts,
                message.device,
            )
            for message in statuses
            for ts in [timeutil.to_wire(message.ts)]
        ],
    )


def apply_availabilities(conn, changes: Iterable[Availability]) -> None:
    # Applied in arrival order, not by timestamp: a last will carries the time the device connected.
    portable.executemany(
        conn,
        "UPDATE devices SET online = ? WHERE device_id = ?",
        [(int(message.state == "online"), message.device) for message in changes],
    )


def rows(conn, device_ids: Iterable[str]) -> list[dict]:
    cursor_rows = []
    for names, row in _select_named(conn, "SELECT * FROM devices WHERE device_id IN ({})", device_ids):
        cursor_rows.append(dict(zip(names, row, strict=True)))
    return cursor_rows


def _select(conn, sql: str, keys: Iterable[str]) -> list[tuple]:
    return [row for _, row in _select_named(conn, sql, keys)]


def _select_named(conn, sql: str, keys: Iterable[str]):
    wanted = list(dict.fromkeys(keys))
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        cursor = portable.execute(conn, sql.format(", ".join("?" * len(chunk))), chunk)
        names = [d[0] for d in cursor.description]
        for row in cursor:
            yield names, row
