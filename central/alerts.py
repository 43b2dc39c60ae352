"""Alerts for the operators: no patrol free, a dispatch escalated or not confirmed, a unit gone offline on a
dispatch, broken evidence. Each is stored, so an alert raised while nobody looked at the page is not lost with
its toast. Warnings and critical alerts stay open until an operator acknowledges them (audited); "info" ones
(a proposal to confirm) are notices, kept in the history but never waiting for anyone."""

from __future__ import annotations

from datetime import timedelta

from kuzet.central.auth import audit
from kuzet.central.store import portable
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
    "condition",
    "count",
    "last_at",
)
# What one device's messages may raise: at most this many new alerts a minute; beyond it they are counted in one
# open "too many alerts" alert of the device (see ``raise_for_device``).
DEVICE_ALERTS_PER_MINUTE = 10
RATE_LIMITED = "rate_limited"


_OPEN = "acknowledged_at is null and level != 'info'"


class AlertError(LookupError):
    pass


def add(
    db,
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
    cursor = portable.execute(
        db,
        "insert into alerts (at, level, message, event_id, dispatch_id, device, count, last_at)"
        " values (?, ?, ?, ?, ?, ?, 1, ?) returning id",
        [at, level, message, event_id, dispatch_id, device, at],
    )
    return get(db, cursor.fetchone()[0])


def raise_for_device(
    db,
    level: str,
    message: str,
    device: str,
    condition: str,
    *,
    event_id: str | None = None,
    dispatch_id: str | None = None,
) -> dict:
    """An alert a device's message raised (inside the caller's transaction): one open alert per (device,
    condition), whose ``count`` and ``last_at`` (and message, the latest) grow with each repeat, and at most
    ``DEVICE_ALERTS_PER_MINUTE`` new ones a minute per device; the rest are counted in the device's open
    ``rate_limited`` alert. A device sending nonsense over and over cannot bury the operators' other alerts."""
    if level not in LEVELS:
        raise ValueError(f"alert level {level!r} is not one of {LEVELS}")
    now = timeutil.now_wire()
    if _bump(db, device, condition, message, now):
        return _open(db, device, condition)
    minute_ago = timeutil.to_wire(timeutil.utc_now() - timedelta(minutes=1))
    recent = portable.execute(
        db,
        "select count(*) from alerts where device = ? and condition is not null and at >= ?",
        [device, minute_ago],
    ).fetchone()[0]
    if recent >= DEVICE_ALERTS_PER_MINUTE:
        condition, level = RATE_LIMITED, "warning"
        message = (
            f"{device} raises more than {DEVICE_ALERTS_PER_MINUTE} alerts a minute; the latest: {message}"
        )
        if _bump(db, device, condition, message, now):
            return _open(db, device, condition)
    row = add(db, level, message, event_id=event_id, dispatch_id=dispatch_id, device=device)
    portable.execute(db, "update alerts set condition = ? where id = ?", [condition, row["id"]])
    return {**row, "condition": condition}


def _bump(db, device: str, condition: str, message: str, now: str) -> bool:
    """Count a repeat into the open alert of (device, condition); False if there is none."""
    cursor = portable.execute(
        db,
        f"update alerts set count = coalesce(count, 1) + 1, last_at = ?, message = ?"
        f" where device = ? and condition = ? and {_OPEN}",
        [now, message, device, condition],
    )
    return cursor.rowcount > 0


def _open(db, device: str, condition: str) -> dict:
    row = portable.execute(
        db,
        f"select {', '.join(_COLUMNS)} from alerts where device = ? and condition = ? and {_OPEN}"
        " order by id desc limit 1",
        [device, condition],
    ).fetchone()
    return dict(zip(_COLUMNS, row, strict=True))


def acknowledge(db, alert_id: int, actor: str) -> dict:
    """Mark the alert seen and dealt with by ``actor``; acknowledging twice keeps the first."""
    with audit.transaction(db):
        row = get(db, alert_id)
        if row is None:
            raise AlertError(f"no alert {alert_id}")
        if row["acknowledged_at"] is None:
            portable.execute(
                db,
                "update alerts set acknowledged_at = ?, acknowledged_by = ? where id = ?",
                [timeutil.now_wire(), actor, alert_id],
            )
            audit.append(db, actor, "alert.acknowledge", f"alert:{alert_id}", {"message": row["message"]})
    return get(db, alert_id)


def get(db, alert_id: int) -> dict | None:
    row = portable.execute(
        db, f"select {', '.join(_COLUMNS)} from alerts where id = ?", [alert_id]
    ).fetchone()
    return dict(zip(_COLUMNS, row, strict=True)) if row else None


def listing(db, open_only: bool = True, limit: int = 200) -> list[dict]:
    """Newest first; ``open_only``: warnings and critical alerts not acknowledged yet."""
    where = f"where {_OPEN}" if open_only else ""
    rows = portable.execute(
        db, f"select {', '.join(_COLUMNS)} from alerts {where} order by id desc limit ?", [limit]
    )
    return [dict(zip(_COLUMNS, row, strict=True)) for row in rows]


def open_count(db) -> int:
    return portable.execute(db, f"select count(*) from alerts where {_OPEN}").fetchone()[0]
