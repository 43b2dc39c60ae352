"""Write side of the ``events`` and ``event_updates`` tables: the latest edge state of each event, and its
timeline.

A device sends one event several times (open, updates, closed) with the same ``event_id`` and a rising
``seq``, each message with an id of its own. Storing is idempotent: a message id already stored changes
nothing, and a message older than the stored state (lower or equal ``seq``) joins the timeline without
overwriting the newer state. The operators' workflow columns (status, assignment, hold) are never touched here.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from pydantic_core import from_json

from kuzet.shared import timeutil
from kuzet.shared.messages import SEVERITY_RANK, Event

# Columns the edge owns; everything else in ``events`` belongs to the operators' workflow.
EDGE_COLUMNS = (
    "event_id",
    "device",
    "site",
    "event_type",
    "severity",
    "severity_rank",
    "edge_state",
    "seq",
    "label",
    "score",
    "zone",
    "track_ids",
    "box",
    "frame_size",
    "lat",
    "lon",
    "started_at",
    "ended_at",
    "snapshot_sha256",
    "clip_id",
    "description",
    "attributes",
    "received_at",
    "updated_at",
)
# Media references arrive in their own messages too: an update without them must not erase them.
KEEP_IF_NULL = {"snapshot_sha256", "clip_id"}
KEEP_ALWAYS = {"event_id", "received_at"}


def _update_clause(column: str) -> str:
    if column in KEEP_IF_NULL:
        return f"{column} = coalesce(excluded.{column}, events.{column})"
    return f"{column} = excluded.{column}"


_UPSERT = (
    f"INSERT INTO events ({', '.join(EDGE_COLUMNS)}) VALUES ({', '.join('?' * len(EDGE_COLUMNS))}) "
    "ON CONFLICT(event_id) DO UPDATE SET "
    + ", ".join(_update_clause(c) for c in EDGE_COLUMNS if c not in KEEP_ALWAYS)
    + " WHERE excluded.seq > events.seq"
)
TIMELINE_COLUMNS = ("msg_id", "event_id", "seq", "state", "ts", "received_at", "box", "score", "track_ids")
_INSERT_TIMELINE = (
    f"INSERT OR IGNORE INTO event_updates ({', '.join(TIMELINE_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(TIMELINE_COLUMNS))})"
)
# Below SQLite's limit on bound parameters, whatever the build.
_IN_CHUNK = 500


@dataclass(frozen=True)
class Received:
    """An event message as ingest hands it over: the message, the site from its topic, when central got it."""

    message: Event
    site: str
    received_at: str


@dataclass
class Applied:
    """What one call of ``apply`` did."""

    changed: list[Received] = field(default_factory=list)  # became the stored state of their event
    new_event_ids: list[str] = field(default_factory=list)
    # The rows of the events this call created, as ``rows`` would read them back (see ``created_row``).
    created_rows: dict[str, dict] = field(default_factory=dict)
    timeline_only: int = 0  # older than the stored state: kept in the timeline only
    duplicates: int = 0  # message id already stored: nothing changed
    # Events of messages stored before this call and sent again: the broker redelivers what was never
    # acknowledged, e.g. after the worker that stored it was killed before the pages were told of it.
    redelivered: set[str] = field(default_factory=set)


def apply(conn: sqlite3.Connection, batch: Sequence[Received]) -> Applied:
    """Store a batch of event messages (in arrival order) inside the caller's transaction."""
    stored_ids = _existing(
        conn, "SELECT msg_id FROM event_updates WHERE msg_id IN ({})", {r.message.id for r in batch}
    )
    stored_seq = dict(
        _rows(
            conn,
            "SELECT event_id, seq FROM events WHERE event_id IN ({})",
            {r.message.event_id for r in batch},
        )
    )
    plan = plan_batch(batch, stored_ids, stored_seq)
    conn.executemany(_INSERT_TIMELINE, plan.timeline)
    conn.executemany(_UPSERT, plan.event_rows.values())
    for event_id in plan.result.new_event_ids:
        plan.result.created_rows[event_id] = created_row(conn, plan.event_rows[event_id])
    return plan.result


@dataclass
class Plan:
    """What a batch changes, worked out from what is stored; each backend writes it its own way."""

    result: Applied
    timeline: list[tuple]  # ``TIMELINE_COLUMNS`` rows, each message once
    event_rows: dict[str, tuple]  # event id -> its newest ``EDGE_COLUMNS`` row, newer than the stored one


def plan_batch(batch: Sequence[Received], stored_ids: set[str], stored_seq: dict[str, int]) -> Plan:
    """Sort a batch (in arrival order) against the stored message ids and each event's stored ``seq``: a
    message seen before is a duplicate; an older one joins the timeline only; the newest of each event
    becomes its state."""
    result = Applied()
    stored_seq = dict(stored_seq)
    timeline: list[tuple] = []
    latest: dict[str, tuple[Received, str | None, str]] = {}  # event id -> (message, box, track ids)
    seen: set[str] = set()
    for item in batch:
        message = item.message
        if message.id in stored_ids or message.id in seen:
            result.duplicates += 1
            if message.id in stored_ids:
                result.redelivered.add(message.event_id)
            continue
        seen.add(message.id)
        box, track_ids = _box_json(message.box), _ids_json(message.track_ids)
        timeline.append(_timeline_row(item, box, track_ids))
        current = stored_seq.get(message.event_id)
        if current is not None and message.seq <= current:
            result.timeline_only += 1
            continue
        if current is None and message.event_id not in latest:
            result.new_event_ids.append(message.event_id)
        stored_seq[message.event_id] = message.seq
        latest[message.event_id] = (item, box, track_ids)
    result.changed = [item for item, _, _ in latest.values()]
    event_rows = {event_id: _event_row(*encoded) for event_id, encoded in latest.items()}
    return Plan(result, timeline, event_rows)


def created_row(conn: sqlite3.Connection, inserted: tuple) -> dict:
    """The row an insert of ``inserted`` (an ``_event_row``) made, as ``rows`` would read it back: the edge's
    columns as inserted, the others at their defaults. Ingest announces thousands of new events a second to
    the open pages; this spares reading each one back."""
    row = _column_defaults(conn) | dict(zip(EDGE_COLUMNS, inserted, strict=True))
    return decode_row(row)


_defaults: dict[str, object] | None = None


def _column_defaults(conn: sqlite3.Connection) -> dict[str, object]:
    """Every column of ``events`` with the value a new row gets when the insert leaves it out."""
    global _defaults
    if _defaults is None:
        found = {}
        for _, name, _, _, default, _ in conn.execute("PRAGMA table_info(events)"):
            if default is None or default.upper() == "NULL":
                found[name] = None
            elif default.startswith("'"):
                found[name] = default[1:-1].replace("''", "'")
            else:
                found[name] = float(default) if "." in default else int(default)
        _defaults = found
    return _defaults


def rows(conn: sqlite3.Connection, event_ids: Iterable[str]) -> list[dict]:
    """The stored rows of these events as the page shows them (the shape of ``queries.get_event``: JSON
    columns decoded, ``hold`` a boolean), in no particular order."""
    wanted = list(dict.fromkeys(event_ids))
    out: list[dict] = []
    for start in range(0, len(wanted), _IN_CHUNK):
        chunk = wanted[start : start + _IN_CHUNK]
        cursor = conn.execute(
            f"SELECT * FROM events WHERE event_id IN ({', '.join('?' * len(chunk))})", chunk
        )
        names = [d[0] for d in cursor.description]
        out.extend(decode_row(dict(zip(names, row, strict=True))) for row in cursor)
    return out


def decode_row(row: dict) -> dict:
    for column in ("track_ids", "box", "frame_size", "attributes"):
        if isinstance(row.get(column), str):
            row[column] = from_json(row[column])  # pydantic's parser: several times json.loads' speed
    row["hold"] = bool(row.get("hold"))
    return row


def _event_row(item: Received, box: str | None, track_ids: str) -> tuple:
    m = item.message
    return (
        m.event_id,
        m.device,
        item.site,
        m.event_type,
        m.severity,
        SEVERITY_RANK[m.severity],
        m.state,
        m.seq,
        m.label,
        m.score,
        m.zone,
        track_ids,
        box,
        f"[{m.frame_size[0]}, {m.frame_size[1]}]" if m.frame_size else None,
        m.location.lat if m.location else None,
        m.location.lon if m.location else None,
        _wire(m.started_at),
        _wire(m.ended_at) if m.ended_at else None,
        m.snapshot_sha256,
        m.clip_id,
        m.description,
        json.dumps(m.attributes) if m.attributes else "{}",
        item.received_at,
        item.received_at,
    )


def _timeline_row(item: Received, box: str | None, track_ids: str) -> tuple:
    m = item.message
    return (m.id, m.event_id, m.seq, m.state, _wire(m.ts), item.received_at, box, m.score, track_ids)


def _wire(moment: datetime) -> str:
    """``timeutil.to_wire``, a little quicker for the UTC times validated messages carry (every message has
    several, and this runs thousands of times a second)."""
    if moment.tzinfo is None or moment.utcoffset():
        return timeutil.to_wire(moment)  # converts, or refuses a naive time
    return moment.isoformat(timespec="milliseconds")[:-6] + "Z"


# Hand-written JSON for the two small shapes every event carries: json.dumps costs more than the rest of
# the row at thousands of events a second. Output is identical to json.dumps.
def _ids_json(track_ids: list[int]) -> str:
    return "[" + ", ".join(map(str, track_ids)) + "]"


def _box_json(box) -> str | None:
    if box is None:
        return None
    return f'{{"x": {box.x!r}, "y": {box.y!r}, "w": {box.w!r}, "h": {box.h!r}}}'


def _rows(conn: sqlite3.Connection, sql: str, keys: set[str]) -> list[tuple]:
    keys_list = list(keys)
    found: list[tuple] = []
    for start in range(0, len(keys_list), _IN_CHUNK):
        chunk = keys_list[start : start + _IN_CHUNK]
        found.extend(conn.execute(sql.format(", ".join("?" * len(chunk))), chunk).fetchall())
    return found


def _existing(conn: sqlite3.Connection, sql: str, keys: set[str]) -> set[str]:
    return {row[0] for row in _rows(conn, sql, keys)}
