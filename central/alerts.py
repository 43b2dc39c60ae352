"""Alerts for the operators: no patrol free, a dispatch escalated or not confirmed, a unit gone offline on a
dispatch, broken evidence. Each is stored, so an alert raised while nobody looked at the page is not lost with
its toast. Warnings and critical alerts stay open until an operator acknowledges them (audited); "info" ones
(a proposal to confirm) are notices, kept in the history but never waiting for anyone."""

from __future__ import annotations

import sqlite_utils

from kuzet.central.auth import audit
from kuzet.shared import timeutil

LEVELS = ("info", "warning", "critical")
_COLUMNS = (
    "id",
    "at",
    "level",
    "message",
    "event_id",
    "dispatch_id",
    "device",
    "acknowledged_at",
    "acknowledged_by",
)


class AlertError(LookupError):
    pass


def add(
    db: sqlite_utils.Database,
    level: str,
    message: str,
    *,
    event_id: str | None = None,
    dispatch_id: str | None = None,
    device: str | None = None,
) -> dict:
    """Store an alert (inside the caller's transaction, if any); returns its row."""
    if level not in LEVELS:
        raise ValueError(f"alert level {level!r} is not one of {LEVELS}")
    at = timeutil.now_wire()
    cursor = db.execute(
        "insert into alerts (at, level, message, event_id, dispatch_id, device) values (?, ?, ?, ?, ?, ?)",
        [at, level, message, event_id, dispatch_id, device],
    )
    return get(db, cursor.lastrowid)


def acknowledge(db: sqlite_utils.Database, alert_id: int, actor: str) -> dict:
    """Mark the alert seen and dealt with by ``actor``; acknowledging twice keeps the first."""
    with audit.transaction(db):
        row = get(db, alert_id)
        if row is None:
            raise AlertError(f"no alert {alert_id}")
        if row["acknowledged_at"] is None:
            db.execute(
                "update alerts set acknowledged_at = ?, acknowledged_by = ? where id = ?",
                [timeutil.now_wire(), actor, alert_id],
            )
            audit.append(db, actor, "alert.acknowledge", f"alert:{alert_id}", {"message": row["message"]})
    return get(db, alert_id)


def get(db: sqlite_utils.Database, alert_id: int) -> dict | None:
    row = db.execute(f"select {', '.join(_COLUMNS)} from alerts where id = ?", [alert_id]).fetchone()
    return dict(zip(_COLUMNS, row, strict=True)) if row else None


_OPEN = "acknowledged_at is null and level != 'info'"


def listing(db: sqlite_utils.Database, open_only: bool = True, limit: int = 200) -> list[dict]:
    """Newest first; ``open_only``: warnings and critical alerts not acknowledged yet."""
    where = f"where {_OPEN}" if open_only else ""
    rows = db.execute(f"select {', '.join(_COLUMNS)} from alerts {where} order by id desc limit ?", [limit])
    return [dict(zip(_COLUMNS, row, strict=True)) for row in rows]


def open_count(db: sqlite_utils.Database) -> int:
    return db.execute(f"select count(*) from alerts where {_OPEN}").fetchone()[0]
