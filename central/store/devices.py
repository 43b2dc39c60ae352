"""Write side of the ``devices`` table: every device central hears from, its latest status and whether it is
online. A device that is heard from before it was registered is created with ``registered_at`` empty, which
is what marks it unregistered on the page."""

from __future__ import annotations

from collections.abc import Container, Iterable
from dataclasses import dataclass

from kuzet.central.store import portable
from kuzet.shared import messages, timeutil
from kuzet.shared.messages import Status

_IN_CHUNK = 500


@dataclass(frozen=True)
class Known:
    """What central holds of a device before a batch: who it is (authority), whether it is revoked, and its
    latest heartbeat (the JSON and time the heartbeat filter compares a new one with)."""

    kind: str | None
    registered_at: str | None
    revoked_at: str | None
    status: str | None
    status_at: str | None


def of_batch(conn, device_ids: Iterable[str]) -> dict[str, Known]:
    """The rows of these devices that central has, one query a batch (a device it never heard of is absent)."""
    sql = "SELECT device_id, kind, registered_at, revoked_at, status, status_at FROM devices WHERE device_id IN ({})"
    return {row[0]: Known(*row[1:]) for row in _select(conn, sql, device_ids)}


@dataclass
class Heard:
    """One device's share of a batch, as ``record`` writes it."""

    site: str
    last_seen: str  # when central received its latest message
    # What its last heartbeat (1) or availability said, in arrival order; None: nothing.
    online: int | None = None
    status: Status | None = None  # its newest heartbeat by the device's clock


def heard_in(batch: Iterable[tuple[object, str, str]]) -> dict[str, Heard]:
    """Fold a batch's (message, site, received_at), in arrival order, into what each device's row becomes.
    A heartbeat older than one kept changes nothing but ``online``; a last will after a heartbeat leaves the
    device offline, a heartbeat after it online again."""
    heard: dict[str, Heard] = {}
    for message, site, received_at in batch:
        device = heard.get(message.device)
        if device is None:
            device = heard[message.device] = Heard(site, received_at)
        else:
            device.site, device.last_seen = site, received_at
        if message.type == "status":
            device.online = 1
            if device.status is None or device.status.ts <= message.ts:
                device.status = message
        elif message.type == "availability":
            device.online = int(message.state == "online")
    return heard


_COLUMNS = ("device_id", "site", "last_seen", "online", "kind", "status", "software_version", "status_at")
_NEWER = "excluded.status_at IS NOT NULL AND (devices.status_at IS NULL OR devices.status_at <= excluded.status_at)"
_UNSAID = -1  # ``online`` of a device whose batch said nothing of it: its stored value stays
_ON_CONFLICT = (
    "ON CONFLICT(device_id) DO UPDATE SET "
    "last_seen = CASE WHEN excluded.last_seen > coalesce(devices.last_seen, '') THEN excluded.last_seen "
    "ELSE devices.last_seen END, "
    f"online = CASE WHEN excluded.online = {_UNSAID} THEN devices.online ELSE excluded.online END, "
    f"kind = CASE WHEN {_NEWER} THEN coalesce(devices.kind, excluded.kind) ELSE devices.kind END, "
    f"status = CASE WHEN {_NEWER} THEN excluded.status ELSE devices.status END, "
    f"software_version = CASE WHEN {_NEWER} THEN excluded.software_version ELSE devices.software_version END, "
    f"status_at = CASE WHEN {_NEWER} THEN excluded.status_at ELSE devices.status_at END"
)
_RECORD_SQLITE = (
    f"INSERT INTO devices ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))}) {_ON_CONFLICT}"
)
# PostgreSQL: the whole batch as one statement over arrays (one row per device, so no row is hit twice),
# instead of a statement per row: at 10,000 devices, psycopg's per-row work was a quarter of an ingest worker.
_RECORD_POSTGRESQL = (
    f"INSERT INTO devices ({', '.join(_COLUMNS)}) SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], "
    f"%s::bigint[], %s::text[], %s::text[], %s::text[], %s::text[]) {_ON_CONFLICT}"
)


def record(conn, heard: dict[str, Heard], existing: Container[str]) -> None:
    """Write each heard device's row in one statement for the batch (a device never heard of is created,
    unregistered): when it was last heard, whether it is online, and its newest heartbeat (the whole message
    as JSON) unless a newer one is kept. At 10,000 devices heartbeats are most of what ingest stores: one row
    written each, not two. ``existing``: the devices that had a row when the batch began (``of_batch``)."""
    rows = []
    # In one order for every ingest worker: workers sharing the stream each lock their batch's devices here,
    # and in arrival order two of them deadlocked on PostgreSQL (a batch retried each time).
    for device_id, heard_of in sorted(heard.items()):
        status = heard_of.status
        rows.append(
            (
                device_id,
                heard_of.site,
                heard_of.last_seen,
                _UNSAID if heard_of.online is None else heard_of.online,
                status.kind if status else None,
                messages.encode(status).decode() if status else None,
                status.software_version if status else None,
                timeutil.to_wire(status.ts) if status else None,
            )
        )
    if rows:
        _upsert(conn, rows)
    unsaid_new = [row[0] for row in rows if row[3] == _UNSAID and row[0] not in existing]
    if unsaid_new:  # created now (unless another worker did meanwhile): offline until they say otherwise
        offline = f"UPDATE devices SET online = 0 WHERE online = {_UNSAID} AND device_id IN ({{}})"
        list(_execute_in(conn, offline, unsaid_new))  # every chunk run


def rows(conn, device_ids: Iterable[str]) -> list[dict]:
    cursor_rows = []
    for names, row in _select_named(conn, "SELECT * FROM devices WHERE device_id IN ({})", device_ids):
        cursor_rows.append(dict(zip(names, row, strict=True)))
    return cursor_rows


def _upsert(conn, rows: list[tuple]) -> None:
    if portable.is_sqlite(conn):
        portable.executemany(conn, _RECORD_SQLITE, rows)
    else:
        conn.execute(_RECORD_POSTGRESQL, [list(column) for column in zip(*rows, strict=True)])


def _select(conn, sql: str, keys: Iterable[str]) -> list[tuple]:
    return [row for _, row in _select_named(conn, sql, keys)]


def _select_named(conn, sql: str, keys: Iterable[str]):
    for cursor in _execute_in(conn, sql, keys):
        names = [d[0] for d in cursor.description]
        for row in cursor:
            yield names, row


def _execute_in(conn, sql: str, keys: Iterable[str]):
    """Run ``sql`` (``... IN ({})``) over ``keys``, ``_IN_CHUNK`` at a time; yields each chunk's cursor."""
    wanted = list(dict.fromkeys(keys))
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        yield portable.execute(conn, sql.format(", ".join("?" * len(chunk))), chunk)
