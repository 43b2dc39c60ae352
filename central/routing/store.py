"""Routing's rows in ``dispatches``, ``dispatch_log`` and ``units``, in plain SQL: these run for every
dispatch state change, where sqlite-utils' per-call table introspection would cost more than the write."""

from __future__ import annotations

import json

import sqlite_utils

from kuzet.central.routing.units import Unit

DISPATCH_COLUMNS = (
    "dispatch_id",
    "event_id",
    "unit",
    "mode",
    "state",
    "created_at",
    "updated_at",
    "deadline_at",
    "distance_m",
    "created_by",
    "note",
    "reason",
    "attempt",
    "site",
    "direction_deg",
    "lat",
    "lon",
    "radius_m",
)
_SELECT = f"select {', '.join(DISPATCH_COLUMNS)} from dispatches"
_INSERT = f"insert into dispatches ({', '.join(DISPATCH_COLUMNS)}) values ({', '.join('?' * len(DISPATCH_COLUMNS))})"
UNIT_COLUMNS = (
    "device_id",
    "site",
    "callsign",
    "lat",
    "lon",
    "duty",
    "online",
    "position_at",
    "current_dispatch",
    "capabilities",
)
_SAVE_UNIT = (
    f"insert or replace into units ({', '.join(UNIT_COLUMNS)}) values ({', '.join('?' * len(UNIT_COLUMNS))})"
)


def insert_dispatch(db: sqlite_utils.Database, row: dict) -> None:
    db.execute(_INSERT, [row.get(c) for c in DISPATCH_COLUMNS])


def update_dispatch(db: sqlite_utils.Database, dispatch_id: str, fields: dict) -> None:
    names = [name for name in fields if name in DISPATCH_COLUMNS]
    db.execute(
        f"update dispatches set {', '.join(f'{n} = ?' for n in names)} where dispatch_id = ?",
        [fields[n] for n in names] + [dispatch_id],
    )


def get_dispatch(db: sqlite_utils.Database, dispatch_id: str) -> dict | None:
    row = db.execute(f"{_SELECT} where dispatch_id = ?", [dispatch_id]).fetchone()
    return dict(zip(DISPATCH_COLUMNS, row, strict=True)) if row else None


def find_dispatches(
    db: sqlite_utils.Database, where: str = "", args: list | None = None, limit: int = 200
) -> list[dict]:
    sql = f"{_SELECT} {'where ' + where if where else ''} order by created_at desc limit ?"
    return [dict(zip(DISPATCH_COLUMNS, r, strict=True)) for r in db.execute(sql, [*(args or []), limit])]


def log_state(db: sqlite_utils.Database, dispatch_id: str, state: str, at: str, by: str, detail: str) -> None:
    db.execute(
        "insert into dispatch_log (dispatch_id, state, at, by, detail) values (?, ?, ?, ?, ?)",
        [dispatch_id, state, at, by, detail],
    )


def history(db: sqlite_utils.Database, dispatch_id: str) -> list[dict]:
    cursor = db.execute(
        "select state, at, by, detail from dispatch_log where dispatch_id = ? order by id", [dispatch_id]
    )
    return [dict(zip(("state", "at", "by", "detail"), r, strict=True)) for r in cursor]


def active(db: sqlite_utils.Database, limit: int = 1000) -> list[dict]:
    """Dispatches under way or awaiting confirmation, with the place each unit is sent to: for the map."""
    return find_dispatches(
        db, "state in ('proposed', 'sent', 'acknowledged', 'en_route', 'on_scene')", [], limit
    )


def save_unit(db: sqlite_utils.Database, unit: Unit) -> None:
    row = unit.as_dict()
    row["online"] = int(unit.online)
    row["capabilities"] = json.dumps(unit.capabilities)
    db.execute(_SAVE_UNIT, [row[c] for c in UNIT_COLUMNS])
