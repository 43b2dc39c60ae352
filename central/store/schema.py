"""The database schema, in one place. Every table central uses is created here; modules that own a table
read and write it through their own functions in ``central.store``/``central.auth``/``central.routing``.

Timestamps are UTC ISO-8601 strings as on the wire (they sort correctly as text). JSON columns hold
lists/objects as text.
"""

from __future__ import annotations

import fcntl
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from kuzet.central.store.migrate import migrate_sqlite

TABLES: dict[str, dict] = {
    # One row per event, the latest state the edge sent (highest seq) plus the operators' workflow.
    "events": dict(
        columns={
            "event_id": str,
            "device": str,
            "site": str,
            "event_type": str,
            "severity": str,
            "severity_rank": int,
            "edge_state": str,
            "seq": int,
            "label": str,
            "score": float,
            "zone": str,
            "track_ids": str,
            "box": str,
            "frame_size": str,
            "lat": float,
            "lon": float,
            "started_at": str,
            "ended_at": str,
            "snapshot_sha256": str,
            "clip_id": str,
            "description": str,
            "attributes": str,
            "received_at": str,
            "updated_at": str,
            # operator workflow: new -> acknowledged -> assigned/dispatched -> closed
            "status": str,
            "assigned_to": str,  # the account following the event up (operators' workflow)
            "dispatched_unit": str,  # the patrol unit routing last sent (routing's, never an account)
            "closed_note": str,
            "hold": int,
        },
        pk="event_id",
        not_null={"device", "event_type", "severity", "started_at", "status"},
        defaults={"status": "new", "hold": 0},
        indexes=[
            ["received_at"],
            ["status", "received_at"],
            ["device", "received_at"],
            ["event_type"],
            # one incident group of the triage board (central.store.incidents): without it SQLite reads every
            # event of the type (a quarter of the store) for each changed group
            ["device", "event_type", "started_at"],
        ],
    ),
    # Every event message as received: the track timeline of an event, and the idempotency key (msg_id).
    "event_updates": dict(
        columns={
            "msg_id": str,
            "event_id": str,
            "seq": int,
            "state": str,
            "ts": str,
            "received_at": str,
            "box": str,
            "score": float,
            "track_ids": str,
        },
        pk="msg_id",
        indexes=[["event_id", "seq"]],
    ),
    # Files on disk under media_dir/<sha256[:2]>/<sha256>; one row per distinct file.
    "media": dict(
        columns={
            "sha256": str,
            "kind": str,
            "content_type": str,
            "size": int,
            "path": str,
            "created_at": str,
            "event_id": str,
            "device": str,
            "width": int,
            "height": int,
        },
        pk="sha256",
        indexes=[["event_id"], ["created_at"]],
    ),
    # Clips (and badge evidence segments) being reassembled from chunks, then verified.
    "clips": dict(
        columns={
            "clip_id": str,
            "device": str,
            "event_id": str,
            "purpose": str,
            "sha256": str,
            "size": int,
            "count": int,
            "received": int,
            "content_type": str,
            # receiving -> joining -> verified | failed (central/ingest/clip_claims.py); lost, abandoned, and
            # expired by retention. The claim to join it (claim_id, claimed_at): migration 0007.
            "state": str,
            "created_at": str,
            "completed_at": str,
            "bad_chunks": int,
            "site": str,  # where to send a clip_request for missing chunks
            "updated_at": str,  # the last chunk received: a clip quiet for long is asked for again
            "lost_reason": str,  # state 'lost': why the device will never send it (its clip_lost message)
            "spooled": int,  # bytes of its chunks in the spool: never more than ``size``
        },
        pk="clip_id",
        defaults={"received": 0, "bad_chunks": 0, "state": "receiving"},
        indexes=[["event_id"], ["state"]],
    ),
    "devices": dict(
        columns={
            "device_id": str,
            "site": str,
            "kind": str,
            "name": str,
            "lat": float,
            "lon": float,
            "online": int,
            "last_seen": str,
            "status": str,
            "status_at": str,
            "registered_at": str,
            "revoked_at": str,
            "software_version": str,
            "heading_deg": float,  # a camera's view on the map (registry.Registration)
            "fov_deg": float,
            "view_m": float,
        },
        pk="device_id",
        defaults={"online": 0},
    ),
    # Messages that broke the contract, kept for inspection (payload bounded to 64 KiB).
    "dead_letters": dict(
        columns={
            "id": int,
            "topic": str,
            "payload": bytes,
            "payload_size": int,
            "reason": str,
            "received_at": str,
        },
        pk="id",
        indexes=[["received_at"]],
    ),
    # Snapshots acknowledged to their device whose file the media folder could not take (full, failing): kept
    # whole here and written again by ingest every clip-check round (``central.ingest.media_retry``).
    "media_retry": dict(
        columns={
            "id": int,
            "topic": str,
            "payload": bytes,
            "received_at": str,
            "error": str,
            "attempts": int,
        },
        pk="id",
    ),
    "users": dict(
        columns={
            "username": str,
            "password_hash": str,
            "role": str,
            "display_name": str,
            "created_at": str,
            "disabled": int,
            "failed_logins": int,
            "locked_until": str,
            "session_version": int,  # raised by a password reset or disabling: ends the account's sessions
        },
        pk="username",
        not_null={"password_hash", "role"},
        defaults={"disabled": 0, "failed_logins": 0},
    ),
    "api_tokens": dict(
        columns={
            "token_hash": str,
            "username": str,
            "name": str,
            "created_at": str,
            "last_used_at": str,
            "revoked": int,
        },
        pk="token_hash",
        defaults={"revoked": 0},
    ),
    # Append-only, hash-chained: hash = sha256(prev_hash + canonical JSON of the row's other fields).
    "audit": dict(
        columns={
            "seq": int,
            "ts": str,
            "actor": str,
            "action": str,
            "target": str,
            "detail": str,
            "prev_hash": str,
            "hash": str,
        },
        pk="seq",
        indexes=[["target"], ["actor"]],
    ),
    # Patrol units (badges) as routing sees them.
    "units": dict(
        columns={
            "device_id": str,
            "callsign": str,
            "lat": float,
            "lon": float,
            "duty": str,
            "capabilities": str,
            "position_at": str,
            "online": int,
            "current_dispatch": str,
            "site": str,  # the site in the badge's topics, to address its dispatches
            "status_since": str,  # when its online, duty or dispatch last changed (the unit board)
        },
        pk="device_id",
        defaults={"duty": "off_duty", "online": 0, "capabilities": "[]"},
    ),
    "dispatches": dict(
        columns={
            "dispatch_id": str,
            "event_id": str,
            "unit": str,
            "mode": str,
            "state": str,
            "created_at": str,
            "updated_at": str,
            "deadline_at": str,
            "distance_m": float,
            "created_by": str,
            "note": str,
            "reason": str,
            "attempt": int,
            "site": str,  # the badge's site, to address the dispatch
            "direction_deg": float,  # intercept: the suspect's direction of travel
            "lat": float,  # the place the unit is sent to
            "lon": float,
            "radius_m": float,  # intercept: the radius the units were gathered from
        },
        pk="dispatch_id",
        indexes=[["event_id"], ["unit", "state"], ["state"]],
    ),
    # Badge body-camera evidence segments as announced, with the result of checking their hash chain.
    "evidence_segments": dict(
        columns={
            "segment_id": str,
            "device": str,
            "idx": int,
            "started_at": str,
            "ended_at": str,
            "size": int,
            "sha256": str,
            "prev_chain_sha256": str,
            "chain_sha256": str,
            "content_type": str,
            "dispatch_id": str,
            "received_at": str,
            "chain_ok": int,
            "problem": str,
        },
        pk="segment_id",
        indexes=[["device", "idx"]],
    ),
    # The newest evidence segment each badge announced (kept when its row goes): a deleted tail shows.
    "evidence_heads": dict(
        columns={"device": str, "idx": int, "segment_id": str, "chain_sha256": str, "received_at": str},
        pk="device",
    ),
    # Commands sent to devices (down/command) and the result each device sent back (up/command_result).
    "commands": dict(
        columns={
            "command_id": str,
            "device": str,
            "site": str,
            "name": str,
            "args": str,
            "created_at": str,
            "created_by": str,
            "state": str,  # sent -> ok | failed; unsent when central could not publish it
            "result_at": str,
            "result_message": str,
            "result_data": str,
        },
        pk="command_id",
        indexes=[["device", "created_at"], ["created_at"]],
    ),
    # Alerts for the operators (no free unit, escalations, offline units, broken evidence), until acknowledged.
    "alerts": dict(
        columns={
            "id": int,
            "at": str,
            "level": str,
            "message": str,
            "event_id": str,
            "dispatch_id": str,
            "device": str,
            "acknowledged_at": str,
            "acknowledged_by": str,
            "condition": str,  # raised by a device's messages: one open alert per (device, condition)
            "count": int,  # how often it was raised while open
            "last_at": str,  # when it was last raised
            "message_key": str,  # the words as a key of central.alerts.MESSAGES (message: the English)
            "message_params": str,  # JSON: the words' parameters
        },
        pk="id",
        indexes=[["acknowledged_at"], ["at"], ["device", "condition"]],
    ),
    # The operators' shift log: notes and hand-overs, each also in the audit log.
    "shift_log": dict(
        columns={"id": int, "at": str, "author": str, "kind": str, "text": str},
        pk="id",
        not_null={"at", "author", "kind", "text"},
        indexes=[["at"]],
    ),
    # Every state change of a dispatch, for the timeline and the audit (detail_key and detail_params: migration
    # 0006, which adds them to databases old and new alike).
    "dispatch_log": dict(
        columns={"id": int, "dispatch_id": str, "state": str, "at": str, "by": str, "detail": str},
        pk="id",
        indexes=[["dispatch_id"]],
    ),
}


def open_database(path: str | Path, *, any_thread_may_close: bool = False) -> sqlite_utils.Database:
    """Open (creating if needed) the database in WAL mode with every table and index in place.

    ``any_thread_may_close``: the connection is used by one thread but may be closed by another (central closes
    every thread's connection when it stops)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite_utils.Database(sqlite3.connect(str(path), check_same_thread=not any_thread_may_close))
    db.execute("PRAGMA busy_timeout=5000")
    # Central's threads and a command run beside it (`create-token`) may open a fresh database at the same
    # moment: switching it to WAL and creating its tables from several connections at once fails with
    # "database is locked" (SQLite's busy handler does not cover those), so one opener at a time does it.
    # Every thread of central opens its own connection (a web server's hundred and more at the first pages):
    # the schema is checked once per process and file, again only when the file's schema changed since
    # (SQLite's schema_version counts every change; a new or replaced file starts again from 0), or when it
    # is not in WAL mode (a file restored from elsewhere).
    key = str(path.resolve())
    if _ensured.get(key) != _schema_version(db) or db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        with _schema_lock(path):
            db.execute("PRAGMA journal_mode=WAL")
            _ensure_schema(db)
        with _ensured_lock:
            _ensured[key] = _schema_version(db)
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    return db


_ensured: dict[str, int] = {}  # file -> its schema_version when this process last checked its schema
_ensured_lock = threading.Lock()


def _schema_version(db: sqlite_utils.Database) -> int:
    return db.execute("PRAGMA schema_version").fetchone()[0]


@contextmanager
def _schema_lock(path: Path) -> Iterator[None]:
    """An exclusive lock beside the database, across processes and threads (each call opens its own file)."""
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _ensure_schema(db: sqlite_utils.Database) -> None:
    for name, spec in TABLES.items():
        table = db.table(name)
        if not table.exists():
            table.create(
                spec["columns"], pk=spec["pk"], not_null=spec.get("not_null"), defaults=spec.get("defaults")
            )
        else:  # a database from an older version: add the columns it lacks (all are nullable)
            for column, kind in spec["columns"].items():
                if column not in table.columns_dict:
                    table.add_column(column, kind)
        for columns in spec.get("indexes", []):
            table.create_index(columns, if_not_exists=True)
    # Ingest and routing ask "which of these are revoked?" all the time; the answer is usually "none".
    db.execute(
        "CREATE INDEX IF NOT EXISTS idx_devices_revoked ON devices(device_id) WHERE revoked_at IS NOT NULL"
    )
    migrate_sqlite(db.conn)  # the versioned changes after the tables above (central/store/migrations/sqlite)
